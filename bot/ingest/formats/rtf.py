"""RTF documents, read with striprtf (a small pure-Python RTF-to-text converter).

RTF records neither pages nor a heading structure that survives conversion, so its
text is one part, cited by the file's name alone.  Table cells come out separated by
"|", one row per line, which keeps rows whole.
"""

from __future__ import annotations

import re

from bot.ingest.document import Extracted, Page, clean_plain_text, title_from_filename
from bot.ingest.filetypes import FileKind
from bot.ingest.formats.common import broken, extracted, has_text, row_line

__all__ = ["extract_rtf"]


_CELL_BREAK_RE = re.compile(r"\n(?=\|)")


def _rows_as_lines(text: str) -> str:
    """striprtf ends each cell with "|" after a paragraph break; make each row one line."""
    lines = []
    for line in _CELL_BREAK_RE.sub(" ", text).split("\n"):
        if line.rstrip().endswith("|") and line.count("|") >= 1:
            line = row_line([cell.strip() for cell in line.rstrip().rstrip("|").split("|")])
        lines.append(line)
    return "\n".join(lines)


def extract_rtf(data: bytes, filename: str) -> Extracted:
    """Read an RTF document's text (its destinations such as fonts and pictures dropped)."""
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit ASCII with escapes for everything else; bytes above 127 are the
    # document's code page, cp1252 in practice.
    source = data.decode("cp1252", errors="replace")
    try:
        text = rtf_to_text(source, errors="replace")
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, "an RTF document", exc) from None
    text = _rows_as_lines(clean_plain_text(text))
    pages = [Page(1, text, "")] if has_text(text) else []
    return extracted(pages, FileKind.RTF, title_from_filename(filename), filename)
