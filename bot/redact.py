"""Passwords masked out of connection strings, in any text we print or log.

One function, ``mask_secrets``, used by everything that shows a connection string
(``status``, ``db`` commands, error messages) and by the log formatter the CLI
installs, so a password never reaches a terminal or a log in any of the forms
libpq accepts: ``postgresql://user:pw@host/db``, ``...?password=pw`` and the
key/value form ``host=h password=pw``.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://user:password@ — the password ends at the last '@' before any whitespace;
# masking a little too much of a malformed URL is better than leaking any of it.
_URL_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^\s]*)@", re.I)
# password=... as a URL query parameter or a key/value DSN entry, quoted or not.
_PASSWORD_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\")]+)",
    re.I,
)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every connection string in it replaced by ``***``.

    An empty password in a URL (``user:@host``, the embedded server's trust login)
    is shown as no password at all (``user@host``).
    """

    def userinfo(match: re.Match[str]) -> str:
        return f"{match['head']}:{MASK}@" if match["pw"] else f"{match['head']}@"

    # Greedy, so a password holding '@' is masked whole; but stop at the first
    # whitespace so two URLs on one line are masked separately.
    text = _URL_USERINFO.sub(userinfo, text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


class MaskingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments, traceback) has passwords masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def mask_log_handlers(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (the root logger by default) mask passwords."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        current = handler.formatter
        if isinstance(current, MaskingFormatter):
            continue
        fmt = current._fmt if current is not None else None  # noqa: SLF001
        datefmt = current.datefmt if current is not None else None
        handler.setFormatter(MaskingFormatter(fmt, datefmt))
