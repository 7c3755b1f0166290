"""Turn an uploaded document into pages of clean text.

PDF, images, text and Markdown are read here; the other families (Office,
OpenDocument, HTML, EPUB, RTF, CSV/TSV) in :mod:`bot.ingest.formats`, one module each.
Images and PDF pages without a text layer are read by OCR (bot/ingest/ocr.py) when
the ``ocr`` extra is installed.

This runs the parser in the calling process.  Bytes from users should go through
:func:`bot.ingest.sandbox.extract_sandboxed`, which runs this same function in a
time- and memory-limited worker process.
"""

from __future__ import annotations

import re
from dataclasses import replace
from io import BytesIO
from typing import Any

from bot.ingest import ocr
from bot.ingest.document import (
    HAS_WORD_RE,
    Extracted,
    Page,
    clean_pdf_text,
    clean_plain_text,
    clean_title,
    markdown_title,
    title_from_filename,
)
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
from bot.ingest.furniture import without_running_lines

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


def extract(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    max_mb: float | None = None,
    ocr_options: ocr.OcrOptions | None = None,
) -> Extracted:
    """Read the text of a document, page by page (or slide, sheet rows, section).

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
        if kind in (FileKind.TEXT, FileKind.MARKDOWN):
            return _extract_text(data, filename, kind)
        # Imported here: each family's parser library loads only when a file needs it.
        from bot.ingest.formats import extract_format

        return extract_format(kind, data, filename)
    except RecursionError:
        raise ExtractionRefused(
            RefusalCode.BROKEN,
            f"{display_name(filename)} could not be read: "
            "its structure is nested too deeply or loops back on itself.",
        ) from None
    except MemoryError:
        raise ExtractionRefused(
            RefusalCode.MEMORY,
            f"{display_name(filename)} needed more memory than allowed and was not read.",
        ) from None


_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_ATX_LINE_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")


def _markdown_sections(text: str) -> list[Page] | None:
    """Pages per section of a Markdown file with ATX headings, labelled by heading path.

    None when the file has no heading (it is then read as pages like a text file).
    Headings inside fenced code blocks are code, not headings.
    """
    from bot.ingest.formats.common import Sections

    sections = Sections()
    body: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        fenced = _FENCE_RE.match(line)
        if fenced:
            fence = None if fence == fenced.group(1) else (fence or fenced.group(1))
        heading = None if fence or fenced else _ATX_LINE_RE.match(line)
        if heading:
            sections.paragraph("\n".join(body))
            body = []
            sections.heading(len(heading.group(1)), heading.group(2))
        else:
            body.append(line)
    sections.paragraph("\n".join(body))
    return sections.pages() if sections.any_heading else None


def _extract_text(data: bytes, filename: str, kind: FileKind) -> Extracted:
    text = decode_text(data, filename)
    if kind is FileKind.MARKDOWN:
        cleaned = clean_plain_text(text.replace("\f", "\n\n"))
        sectioned = _markdown_sections(cleaned)
        if sectioned:
            return Extracted(
                pages=sectioned,
                page_count=text.count("\f") + 1,  # pages, as for a text file
                media_type=MEDIA_TYPES[kind],
                title=markdown_title(cleaned) or title_from_filename(filename),
            )
    raw_pages = text.split("\f")
    pages = []
    for number, raw in enumerate(raw_pages, start=1):
        cleaned = clean_plain_text(raw)
        if HAS_WORD_RE.search(cleaned):
            pages.append(Page(number, cleaned))
    if not pages:
        raise ExtractionRefused(RefusalCode.EMPTY, f"{display_name(filename)} has no text in it.")
    title = None
    if kind is FileKind.MARKDOWN:
        title = markdown_title(pages[0].text)
    return Extracted(
        pages=pages,
        page_count=len(raw_pages),
        media_type=MEDIA_TYPES[kind],
        title=title or title_from_filename(filename),
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
        if text and HAS_WORD_RE.search(text):
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
        title=title_from_filename(filename),
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
        if text and HAS_WORD_RE.search(text):
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

    from bot.ingest.pdftext import page_text

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
            raw = page_text(reader.pages[index])
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
        if HAS_WORD_RE.search(text):
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

    # A running head or foot ("52 THE SIEGE OF VICKSBURG.") is kept on its first page only.
    running = without_running_lines([page.text for page in pages])
    pages = [replace(page, text=text) for page, text in zip(pages, running, strict=True)]

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
        title=clean_title(raw_title) or title_from_filename(filename),
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
