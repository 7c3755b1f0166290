"""A quote on a line of its own: as a reply shows its evidence, and as a model copies it.

The reply writes each quote as ``> "text" (file, place)`` (``quote_line``); a model
imitating it writes ``> "text"``, ``"text"``, ``“text”`` or ``> text``.  The check and
the draft read such lines to tell a quote from a statement, and the benchmark's replay
reads the reply's own (``reply_quotes``).  One place declares the form.
"""

from __future__ import annotations

import re

# The reply's own: > "text" (file, place); a place may hold parentheses ("section (a)").
_REPLY_QUOTE = re.compile(r'^> "(?P<q>.*)" \([^()]*(?:\([^()]*\)[^()]*)*\)$', re.M)
# A model's: the text in quotation marks, maybe after ">" and before a place in
# parentheses, or a line after ">".
_MARKED = re.compile(
    r"^\s*(?:>\s*)?[\"\u201c](?P<q>.*)[\"\u201d]\s*(?:\([^()]*\))?\s*$|^\s*>\s*(?P<bare>.*?)\s*$"
)
# Any line, its marks stripped where it has them.
_ANY = re.compile(r"^\s*(?:>\s*)?[\"\u201c]?(?P<q>.*?)[\"\u201d]?\s*$")


def quote_line(text: str, where: str) -> str:
    """How the reply shows one quote: ``> "text" (where)``."""
    return f'> "{text}" ({where})'


def quoted(line: str, *, marked: bool = True) -> str | None:
    """The text ``line`` quotes, its marks and place dropped; None when it is marked
    neither by quotation marks nor by ">".  With ``marked`` false any line is read as a
    quote, its marks stripped where it has them (a model may quote a table's header row
    bare)."""
    if not marked:
        m = _ANY.match(line)
        return m.group("q") if m else line
    m = _MARKED.match(line)
    if m is None:
        return None
    return m.group("q") if m.group("q") is not None else m.group("bare")


def reply_quotes(block: str) -> list[str]:
    """The quotes of a block of the reply's quote lines (``quote_line``), in order."""
    return [m.group("q") for m in _REPLY_QUOTE.finditer(block)]
