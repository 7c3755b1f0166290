"""Log output: plain text (the default) or one JSON object per line (``LIBRARIAN_LOG_FORMAT``).

JSON lines are for log collectors in a deployment.  They carry the time, level,
logger, the process role, the platform event being handled (its id, from a
context variable the gateway sets for each event) and the log call's *template*
(``"loaded %s model %s in %.2f s"``) with only its numeric arguments.  String
arguments are left out, because a log call may pass message text, a file name or
a server address with credentials; so JSON logs never carry message text or secrets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: The platform event id being handled (set per event by :func:`with_event_id`).
current_event: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "librarian_event", default=None
)


def with_event_id(sink: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Wrap an adapter's sink so that log lines written while handling an event carry its id."""

    async def handle(event: Any) -> None:
        token = current_event.set(str(getattr(event, "event_id", "") or "") or None)
        try:
            await sink(event)
        finally:
            current_event.reset(token)

    return handle


class JsonFormatter(logging.Formatter):
    """One JSON object per record; templates and numbers only, never free text."""

    def __init__(self, role: str = "all") -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "role": self.role,
            "event": str(record.msg),
        }
        event_id = current_event.get()
        if event_id:
            out["event_id"] = event_id
        args = record.args if isinstance(record.args, tuple) else ()
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if numbers:
            out["values"] = numbers
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type only: its message may quote the input that caused it.
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False)


def configure(log_format: str, level: str, role: str) -> None:
    """Switch the root logger's output to ``log_format`` (``text`` leaves it as it is)."""
    if log_format != "json":
        return
    root = logging.getLogger()
    root.setLevel(level)
    formatter = JsonFormatter(role)
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter)
