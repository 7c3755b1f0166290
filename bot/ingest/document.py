"""What extraction returns: a document's pages (with their locations) and its title,
and the text clean-up every reader shares.

Its own module so that :mod:`bot.ingest.extract` and the format readers of
:mod:`bot.ingest.formats`, which the extractor dispatches to, both import it without
importing each other.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bot.ingest.filetypes import display_name

__all__ = [
    "HAS_WORD_RE",
    "Extracted",
    "Page",
    "clean_pdf_text",
    "clean_plain_text",
    "clean_title",
    "markdown_title",
    "title_from_filename",
]


@dataclass(frozen=True, slots=True)
class Page:
    """The text of one page, or of one located part of a document.

    ``number`` is 1-based: a PDF's page as printed in a viewer, a slide's number, or
    the part's position in the document.  ``location`` says where the text is in the
    document's own terms ("slide 7 (Roadmap)", "sheet Budget, rows 12-40", "section
    Onboarding > Laptops"); None means the page number says it ("p. 4").  An empty
    location means the file has no finer place to point at than itself.
    """

    number: int
    text: str
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Extracted:
    """What was read from a file.

    ``pages`` holds only pages that have text, in order, each with its real page number;
    ``page_count`` is the number of pages in the document, blank ones included.
    ``title`` is the document's own title if it has a usable one, else the file name
    without its extension.  ``warnings`` are plain notes for the user, e.g. pages that
    could not be read and were skipped.  ``ocr_pages`` are the numbers of the pages
    whose text was read by OCR (all of an image's; a PDF's pages without a text layer).
    """

    pages: list[Page]
    page_count: int
    media_type: str
    title: str
    warnings: list[str] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All pages' text, separated by blank lines."""
        return "\n\n".join(page.text for page in self.pages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (used to carry results out of the sandbox)."""
        return {
            "pages": [[page.number, page.text, page.location] for page in self.pages],
            "page_count": self.page_count,
            "media_type": self.media_type,
            "title": self.title,
            "warnings": list(self.warnings),
            "ocr_pages": list(self.ocr_pages),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Extracted:
        """The inverse of :meth:`to_dict`."""
        return cls(
            pages=[
                Page(
                    int(row[0]),
                    str(row[1]),
                    None if len(row) < 3 or row[2] is None else str(row[2]),
                )
                for row in data["pages"]
            ],
            page_count=int(data["page_count"]),
            media_type=str(data["media_type"]),
            title=str(data["title"]),
            warnings=[str(w) for w in data.get("warnings", [])],
            ocr_pages=[int(n) for n in data.get("ocr_pages", [])],
        )


# --- text cleanup ---------------------------------------------------------------------

# Control characters other than tab, newline and form feed; NUL is among them.
_CONTROLS_RE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Invisible characters that break words apart for search.  ZWJ/ZWNJ are kept: they
# change meaning in Persian, Indic scripts and emoji.
_INVISIBLE_RE = re.compile("[\u200b\u2060\ufeff]")
# Lone surrogates (from broken font maps) cannot be stored as UTF-8.
_SURROGATES_RE = re.compile("[\ud800-\udfff]")
_SPACES_RE = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# A word broken at the end of a line: "exam-\nple".  Soft hyphen and U+2010 too.
_HYPHEN_BREAK_RE = re.compile(r"([^\W\d_])[-\u00ad\u2010]\n[ \t]*([^\W\d_])")
_SOFT_HYPHEN = "\u00ad"
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")
_TRAILING_SPACE_RE = re.compile(r"[ \t]+\n")
HAS_WORD_RE = re.compile(r"\w")
# Colour and cursor codes in terminal logs ("\x1b[31m"): noise for search.
_ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _join_hyphenated(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    # "exam-\nple" was one word split by the layout; "Jean-\nPierre" or "PDF-\nA" keeps
    # its hyphen because the next part starts with a capital.
    if after.islower():
        return before + after
    return before + "-" + after


def clean_pdf_text(text: str) -> str:
    """Normalize text from a PDF page for indexing.

    NFKC (splits ligatures such as "ﬁ", maps presentation forms to letters), drops NUL
    and other control characters, joins words hyphenated at line ends, collapses runs
    of spaces, trims lines and keeps at most one blank line between paragraphs.
    """
    if not text:
        return ""
    text = _SURROGATES_RE.sub("\ufffd", text)
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = text.replace("\x00", "")
    text = _CONTROLS_RE.sub(" ", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _SPACES_RE.sub(" ", text)
    text = _TRAILING_SPACE_RE.sub("\n", text)
    text = _HYPHEN_BREAK_RE.sub(_join_hyphenated, text)
    text = text.replace(_SOFT_HYPHEN, "")
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_NEWLINES_RE.sub("\n\n", text)
    return text.strip()


def clean_plain_text(text: str) -> str:
    """Normalize a text or Markdown page without disturbing its layout.

    Only newlines are unified, NUL/control and invisible characters dropped, trailing
    spaces removed and long runs of blank lines shortened; indentation (Markdown code
    blocks, lists) and line breaks are kept as written.
    """
    if not text:
        return ""
    text = _SURROGATES_RE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x00", "")
    text = _ANSI_ESCAPE_RE.sub("", text)
    text = _CONTROLS_RE.sub("", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _TRAILING_SPACE_RE.sub("\n", text + "\n")
    text = _MANY_NEWLINES_RE.sub("\n\n", text)
    return text.strip("\n").rstrip()


# --- titles ---------------------------------------------------------------------------

_GENERIC_TITLES = {
    "untitled",
    "document",
    "document1",
    "title",
    "slide 1",
    "powerpoint presentation",
    "microsoft word",
}
_TITLE_PREFIX_RE = re.compile(r"^(microsoft (word|powerpoint|excel) - |untitled - )", re.IGNORECASE)
# "report.docx", "10811.exe", "C:\\temp\\x.pdf": an authoring tool's file name, not a title.
_FILE_NAME_LIKE_RE = re.compile(
    r"(\.(docx?|pptx?|xlsx?|odt|tex|dvi|pdf|indd|qxd)$)|(^\S+\.[A-Za-z0-9]{2,4}$)", re.IGNORECASE
)


def clean_title(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    title = " ".join(_CONTROLS_RE.sub(" ", raw.replace("\x00", "")).split())
    title = _TITLE_PREFIX_RE.sub("", title).strip()
    # A title that is just the authoring tool's file name says nothing the file name
    # we already have does not.
    if not title or _FILE_NAME_LIKE_RE.search(title) or title.lower() in _GENERIC_TITLES:
        return None
    if not HAS_WORD_RE.search(title):
        return None
    return title[:200]


def title_from_filename(filename: str | None) -> str:
    name = display_name(filename)
    if name == "the file":
        return "Untitled"
    dot = name.rfind(".")
    stem = name[:dot] if dot > 0 else name
    return stem.strip() or name


_FRONT_MATTER_TITLE_RE = re.compile(r"\A---\n(?:.*\n)*?title:\s*(.+?)\s*\n(?:.*\n)*?---\n")
_ATX_HEADING_RE = re.compile(r"^#{1,2}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SETEXT_HEADING_RE = re.compile(r"^([^\n]+)\n=+[ \t]*$", re.MULTILINE)


def markdown_title(text: str) -> str | None:
    head = text[:4000]
    match = _FRONT_MATTER_TITLE_RE.match(head)
    if match:
        return clean_title(match.group(1).strip("'\""))
    candidates = [m for m in (_ATX_HEADING_RE.search(head), _SETEXT_HEADING_RE.search(head)) if m]
    if not candidates:
        return None
    first = min(candidates, key=lambda m: m.start())
    return clean_title(first.group(1))


# --- extraction -----------------------------------------------------------------------
