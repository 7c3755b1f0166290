"""Turn an uploaded PDF, image, text or Markdown file into pages of clean text.

Images and PDF pages without a text layer are read by OCR (bot/ingest/ocr.py) when
the ``ocr`` extra is installed.

This runs the parser in the calling process.  Bytes from users should go through
:func:`bot.ingest.sandbox.extract_sandboxed`, which runs this same function in a
time- and memory-limited worker process.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from bot.ingest import ocr
from bot.ingest.filetypes import (
    IMAGE_KINDS,
    MEDIA_TYPES,
    ExtractionRefused,
    FileKind,
    FileTooLarge,
    RefusalCode,
    UnsupportedFileType,
    check_size,
    decode_text,
    detect_kind,
    display_name,
)

__all__ = [
    "ExtractionRefused",
    "Extracted",
    "FileTooLarge",
    "Page",
    "RefusalCode",
    "UnsupportedFileType",
    "clean_pdf_text",
    "clean_plain_text",
    "extract",
]


@dataclass(frozen=True, slots=True)
class Page:
    """The text of one page.  ``number`` is 1-based, as printed in a PDF viewer."""

    number: int
    text: str


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
            "pages": [[page.number, page.text] for page in self.pages],
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
            pages=[Page(int(number), str(text)) for number, text in data["pages"]],
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
_HAS_WORD_RE = re.compile(r"\w")
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


def _clean_title(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    title = " ".join(_CONTROLS_RE.sub(" ", raw.replace("\x00", "")).split())
    title = _TITLE_PREFIX_RE.sub("", title).strip()
    # A title that is just the authoring tool's file name says nothing the file name
    # we already have does not.
    if not title or _FILE_NAME_LIKE_RE.search(title) or title.lower() in _GENERIC_TITLES:
        return None
    if not _HAS_WORD_RE.search(title):
        return None
    return title[:200]


def _title_from_filename(filename: str | None) -> str:
    name = display_name(filename)
    if name == "the file":
        return "Untitled"
    dot = name.rfind(".")
    stem = name[:dot] if dot > 0 else name
    return stem.strip() or name


_FRONT_MATTER_TITLE_RE = re.compile(r"\A---\n(?:.*\n)*?title:\s*(.+?)\s*\n(?:.*\n)*?---\n")
_ATX_HEADING_RE = re.compile(r"^#{1,2}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SETEXT_HEADING_RE = re.compile(r"^([^\n]+)\n=+[ \t]*$", re.MULTILINE)


def _markdown_title(text: str) -> str | None:
    head = text[:4000]
    match = _FRONT_MATTER_TITLE_RE.match(head)
    if match:
        return _clean_title(match.group(1).strip("'\""))
    candidates = [m for m in (_ATX_HEADING_RE.search(head), _SETEXT_HEADING_RE.search(head)) if m]
    if not candidates:
        return None
    first = min(candidates, key=lambda m: m.start())
    return _clean_title(first.group(1))


# --- extraction -----------------------------------------------------------------------


def extract(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    max_mb: float | None = None,
    ocr_options: ocr.OcrOptions | None = None,
) -> Extracted:
    """Read the text of a PDF, image, plain text or Markdown file, page by page.

    Runs in the calling process: use :func:`bot.ingest.sandbox.extract_sandboxed` for
    bytes from users.  ``media_type`` is the platform's label and only a hint; the
    bytes decide.  ``max_mb`` refuses larger files before any parsing (None: no limit).

    Text and Markdown files are one page, or one page per form feed (``\\f``).
    Images (each frame of a multi-page TIFF is a page) and the PDF pages that have no
    text layer are read by OCR, within ``ocr_options`` (default: no deadline).

    Raises:
        ExtractionRefused: with ``reason_code`` one of unsupported_type, too_large,
            empty, scanned, encrypted, broken or memory; the message names the file and
            says what to do.
    """
    check_size(len(data), max_mb, filename)
    kind = detect_kind(data, filename, media_type)
    options = ocr_options or ocr.OcrOptions()
    try:
        if kind is FileKind.PDF:
            return _extract_pdf(data, filename, options)
        if kind in IMAGE_KINDS:
            return _extract_image(data, filename, kind, options)
        return _extract_text(data, filename, kind)
    except MemoryError:
        raise ExtractionRefused(
            RefusalCode.MEMORY,
            f"{display_name(filename)} needed more memory than allowed and was not read.",
        ) from None


def _extract_text(data: bytes, filename: str, kind: FileKind) -> Extracted:
    text = decode_text(data, filename)
    raw_pages = text.split("\f")
    pages = []
    for number, raw in enumerate(raw_pages, start=1):
        cleaned = clean_plain_text(raw)
        if _HAS_WORD_RE.search(cleaned):
            pages.append(Page(number, cleaned))
    if not pages:
        raise ExtractionRefused(RefusalCode.EMPTY, f"{display_name(filename)} has no text in it.")
    title = None
    if kind is FileKind.MARKDOWN:
        title = _markdown_title(pages[0].text)
    return Extracted(
        pages=pages,
        page_count=len(raw_pages),
        media_type=MEDIA_TYPES[kind],
        title=title or _title_from_filename(filename),
    )


# Python's own exceptions inside pypdf mean the structure was not what it expected;
# their text ("unhashable type: 'ArrayObject'") means nothing to a user.
_INTERNAL_ERRORS = (TypeError, AttributeError, KeyError, IndexError, AssertionError, LookupError)
# Byte excerpts and object addresses in pypdf messages: "... starting with b')' @54: b'..."
_BYTES_EXCERPT_RE = re.compile(r"""\s*(starting with|@\d+:?)?\s*b(['"]).*$""")
_OBJECT_ADDRESS_RE = re.compile(r", \d{6,}\)")


def _short_reason(exc: BaseException) -> str:
    """One short line about why pypdf gave up, for the user's message."""
    if isinstance(exc, RecursionError):
        return "its structure is nested too deeply or loops back on itself"
    if isinstance(exc, _INTERNAL_ERRORS):
        return "its internal structure is damaged"
    text = " ".join(str(exc).split())
    text = _BYTES_EXCERPT_RE.sub("", text)
    text = _OBJECT_ADDRESS_RE.sub(")", text).rstrip(" .:;,")
    if not text:
        return "its internal structure is damaged"
    if len(text) > 120:
        text = text[:117] + "..."
    return text


def _broken(filename: str, exc: BaseException) -> ExtractionRefused:
    return ExtractionRefused(
        RefusalCode.BROKEN,
        f"{display_name(filename)} could not be read as a PDF: {_short_reason(exc)}.",
    )


def _encrypted(filename: str, detail: str = "") -> ExtractionRefused:
    return ExtractionRefused(
        RefusalCode.ENCRYPTED,
        f"{display_name(filename)} is encrypted, needs a password{detail}. "
        "Save a copy without a password and upload that.",
    )


# --- OCR ------------------------------------------------------------------------------


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10]) + (", ..." if len(numbers) > 10 else "")
    return f"page{'s' if len(numbers) != 1 else ''} {shown}"


class _Recogniser:
    """Runs OCR page by page within the file's options; notes what it could not do."""

    def __init__(self, options: ocr.OcrOptions) -> None:
        self.options = options
        self.started = False
        self.skipped_for_time: list[int] = []

    def text(self, number: int, image: Any) -> str | None:
        """The cleaned text of one page image, or None when out of time."""
        if self.options.out_of_time():
            self.skipped_for_time.append(number)
            return None
        if not self.started:
            self.started = True
            if self.options.before_engine is not None:
                self.options.before_engine()
        return clean_pdf_text(ocr.recognise(image))

    def warnings(self) -> list[str]:
        if not self.skipped_for_time:
            return []
        return [
            f"OCR ran out of time; {_page_list(self.skipped_for_time)} "
            "were not read. Split the file and share the parts."
        ]


def _extract_image(
    data: bytes, filename: str, kind: FileKind, options: ocr.OcrOptions
) -> Extracted:
    name = display_name(filename)
    if not ocr.available():
        raise UnsupportedFileType(f"{name} is an image. {ocr.INSTALL_HINT}")
    recogniser = _Recogniser(options)
    pages: list[Page] = []
    count = 0
    for count, frame in enumerate(ocr.image_frames(data, filename), start=1):
        text = recogniser.text(count, frame)
        if text and _HAS_WORD_RE.search(text):
            pages.append(Page(count, text))
    if not pages:
        if recogniser.skipped_for_time:
            raise ExtractionRefused(
                RefusalCode.TIMEOUT, f"{name}: OCR ran out of time before reading any text."
            )
        raise ExtractionRefused(RefusalCode.EMPTY, f"{name}: OCR found no text in this image.")
    return Extracted(
        pages=pages,
        page_count=count,
        media_type=MEDIA_TYPES[kind],
        title=_title_from_filename(filename),
        warnings=recogniser.warnings(),
        ocr_pages=[page.number for page in pages],
    )


def _ocr_pdf_pages(
    data: bytes, numbers: list[int], options: ocr.OcrOptions
) -> tuple[list[Page], list[str], bool]:
    """OCR the given pages of a PDF (those without a text layer).

    Returns the pages with text, warnings, and whether time ran out.
    """
    recogniser = _Recogniser(options)
    wanted = numbers[: options.max_pages]
    pages: list[Page] = []
    rendered: set[int] = set()
    for number, image in ocr.render_pdf_pages(data, wanted):
        rendered.add(number)
        if image is None:  # no image on the page: nothing for OCR to read
            continue
        text = recogniser.text(number, image)
        if text and _HAS_WORD_RE.search(text):
            pages.append(Page(number, text))
    warnings = recogniser.warnings()
    if len(numbers) > len(wanted):
        warnings.append(
            f"Only the first {options.max_pages} pages without a text layer were read "
            f"by OCR; {len(numbers) - len(wanted)} more were skipped."
        )
    unrendered = [n for n in wanted if n not in rendered and n not in recogniser.skipped_for_time]
    if unrendered:
        warnings.append(f"{_page_list(unrendered)} could not be rendered for OCR.")
    return pages, warnings, bool(recogniser.skipped_for_time)


def _extract_pdf(data: bytes, filename: str, options: ocr.OcrOptions) -> Extracted:
    # Imported here so text-only callers and the sandbox parent do not pay for pypdf.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    name = display_name(filename)
    try:
        reader = PdfReader(BytesIO(data), strict=False)
        # The constructor already tried the empty user password; ask explicitly so the
        # outcome is known rather than discovered at the first page.
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise _encrypted(filename)
        page_count = len(reader.pages)
    except ExtractionRefused:
        raise
    except DependencyError:
        # AES needs the optional 'cryptography' package; without it pypdf cannot even
        # check the empty password.
        raise _encrypted(filename, " or AES support that is not installed") from None
    except (MemoryError, SystemError):
        # CPython reports some failed allocations as SystemError: not the file's
        # structure, so let the caller (the sandbox knows its memory limit) decide.
        raise
    except Exception as exc:  # pypdf raises a wide zoo on malformed input
        raise _broken(filename, exc) from None

    if page_count == 0:
        raise ExtractionRefused(RefusalCode.EMPTY, f"{name} is a PDF with no pages.")

    pages: list[Page] = []
    textless: list[int] = []
    failed: list[int] = []
    first_error: BaseException | None = None
    for index in range(page_count):
        try:
            raw = reader.pages[index].extract_text()
        except (MemoryError, SystemError):
            raise
        except DependencyError as exc:
            if reader.is_encrypted:
                raise _encrypted(filename, " or AES support that is not installed") from None
            # e.g. a JBIG2 stream in the page contents without the jbig2dec tool.
            failed.append(index + 1)
            first_error = first_error or exc
            continue
        except Exception as exc:
            # One damaged page should not cost the rest of the document.
            failed.append(index + 1)
            first_error = first_error or exc
            continue
        text = clean_pdf_text(raw or "")
        if _HAS_WORD_RE.search(text):
            pages.append(Page(index + 1, text))
        else:
            textless.append(index + 1)

    if not pages and first_error is not None and len(failed) == page_count:
        raise _broken(filename, first_error)
    warnings: list[str] = []
    text_layer = {page.number for page in pages}
    if textless:
        pages, ocr_warnings = _ocr_textless(data, filename, pages, textless, page_count, options)
        warnings.extend(ocr_warnings)

    if failed:
        shown = ", ".join(str(n) for n in failed[:10]) + (", ..." if len(failed) > 10 else "")
        warnings.append(
            f"{len(failed)} of {page_count} pages could not be read and were skipped "
            f"(page{'s' if len(failed) != 1 else ''} {shown})."
        )

    try:
        metadata = reader.metadata
        raw_title = metadata.title if metadata is not None else None
    except (MemoryError, SystemError):
        raise
    except Exception:
        raw_title = None  # broken metadata must not cost the text
    return Extracted(
        pages=pages,
        page_count=page_count,
        media_type=MEDIA_TYPES[FileKind.PDF],
        title=_clean_title(raw_title) or _title_from_filename(filename),
        warnings=warnings,
        ocr_pages=[page.number for page in pages if page.number not in text_layer],
    )


def _ocr_textless(
    data: bytes,
    filename: str,
    pages: list[Page],
    textless: list[int],
    page_count: int,
    options: ocr.OcrOptions,
) -> tuple[list[Page], list[str]]:
    """Add OCR text for the pages without a text layer; refuse if no page has text."""
    name = display_name(filename)
    where = (
        "its only page has no text layer"
        if page_count == 1
        else f"no text layer on any of its {page_count} pages"
    )
    if not ocr.available():
        if not pages:
            raise ExtractionRefused(
                RefusalCode.SCANNED, f"{name} looks scanned: {where}. {ocr.INSTALL_HINT}"
            )
        return pages, [
            f"{_page_list(textless)} have no text layer and were skipped. {ocr.INSTALL_HINT}"
        ]
    try:
        read, warnings, timed_out = _ocr_pdf_pages(data, textless, options)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:  # PDFium refusing the whole file: keep the text layer
        if not pages:
            raise _broken(filename, exc) from None
        return pages, [f"{_page_list(textless)} have no text layer and could not be rendered."]
    if not pages and not read:
        if timed_out:
            raise ExtractionRefused(
                RefusalCode.TIMEOUT, f"{name}: OCR ran out of time before reading any text."
            )
        raise ExtractionRefused(
            RefusalCode.SCANNED, f"{name} has no text to read: {where}, and OCR found none."
        )
    return sorted([*pages, *read], key=lambda page: page.number), warnings
