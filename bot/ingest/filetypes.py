"""What kind of file is this, may we read it, and how is its text encoded?

Detection trusts the bytes first and the name or the platform's media type second:
chat platforms label uploads loosely, and a renamed PNG is still a PNG.  Every refusal
is an :class:`ExtractionRefused` (or one of its subclasses) with a reason code the
caller can branch on and a plain one-line message it can show to the user as is.

One unit although long (over 600 lines): it holds the one declaration of what can
be ingested (:data:`KINDS`) and every rule that reads it (detection, the download
predicate, refusal wording); apart, the rules would drift from the declaration.
"""

from __future__ import annotations

import codecs
import math
import re
import struct
from dataclasses import dataclass
from enum import StrEnum

from bot.errors import LibrarianError
from bot.ingest.zipsniff import DamagedZip, member_head, zip_directory

__all__ = [
    "KINDS",
    "IMAGE_KINDS",
    "MEDIA_TYPES",
    "SUPPORTED_DESCRIPTION",
    "SUPPORTED_FORMATS",
    "ExtractionRefused",
    "FileKind",
    "FileTooLarge",
    "RefusalCode",
    "UnsupportedFileType",
    "check_size",
    "count_label",
    "decode_text",
    "describe_binary",
    "detect_image",
    "detect_kind",
    "display_name",
    "may_download",
    "not_downloaded",
]


class RefusalCode(StrEnum):
    """Why a file was not ingested.  Values are stable: callers store and compare them."""

    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    EMPTY = "empty"
    SCANNED = "scanned"
    ENCRYPTED = "encrypted"
    BROKEN = "broken"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASHED = "crashed"
    OVER_LIMIT = "over_limit"  # more pages, characters or chunks than the limits allow


class ExtractionRefused(LibrarianError):
    """A file was not ingested, for a reason its owner can act on.

    ``reason_code`` is one of :class:`RefusalCode`; ``message`` is a plain sentence fit
    to show the user (it names the file).  Every way extraction can fail on bad input
    ends here; anything else that escapes is a bug.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = RefusalCode(reason_code)
        self.message = message

    @property
    def code(self) -> RefusalCode:
        """Short alias of :attr:`reason_code`."""
        return self.reason_code

    def __reduce__(self):  # keep pickling working despite the custom __init__
        return (refusal, (str(self.reason_code), self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.reason_code)!r}, {self.message!r})"


class UnsupportedFileType(ExtractionRefused):
    """The bytes are not a PDF, plain text or Markdown file (code ``unsupported_type``)."""

    def __init__(self, message: str) -> None:
        super().__init__(RefusalCode.UNSUPPORTED_TYPE, message)


class FileTooLarge(ExtractionRefused):
    """The file is over the configured size limit (code ``too_large``)."""

    def __init__(self, message: str) -> None:
        super().__init__(RefusalCode.TOO_LARGE, message)


def refusal(reason_code: str, message: str) -> ExtractionRefused:
    """Rebuild a refusal from its code and message, as the most specific class."""
    code = RefusalCode(reason_code)
    if code is RefusalCode.UNSUPPORTED_TYPE:
        return UnsupportedFileType(message)
    if code is RefusalCode.TOO_LARGE:
        return FileTooLarge(message)
    return ExtractionRefused(code, message)


class FileKind(StrEnum):
    """The kinds of file that can be ingested."""

    PDF = "pdf"
    TEXT = "text"
    MARKDOWN = "markdown"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    ODT = "odt"
    ODS = "ods"
    ODP = "odp"
    HTML = "html"
    EPUB = "epub"
    RTF = "rtf"
    CSV = "csv"
    TSV = "tsv"
    # Images are read by OCR (bot/ingest/ocr.py), one kind per format so that each
    # keeps its exact media type.
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"
    BMP = "bmp"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How a supported kind is named: the media type stored for it, and the extensions
    and media types by which a file shared in chat announces it (before its bytes are
    seen).  The bytes still decide (:func:`detect_kind`)."""

    media_type: str
    extensions: tuple[str, ...]
    media_types: frozenset[str]


def _spec(media_type: str, extensions: tuple[str, ...], *aliases: str) -> KindSpec:
    return KindSpec(media_type, extensions, frozenset({media_type, *aliases}))


_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."

# The one declaration of what can be ingested.  Adapters decide what to download from
# it (:func:`may_download`), detection reads its names, documents store its media type.
KINDS: dict[FileKind, KindSpec] = {
    FileKind.PDF: _spec("application/pdf", (".pdf",), "application/x-pdf"),
    FileKind.TEXT: _spec("text/plain", (".txt", ".text")),
    FileKind.MARKDOWN: _spec(
        "text/markdown", (".md", ".markdown", ".mdown", ".mkd", ".mkdn"), "text/x-markdown"
    ),
    FileKind.DOCX: _spec(_OOXML + "wordprocessingml.document", (".docx",)),
    FileKind.PPTX: _spec(_OOXML + "presentationml.presentation", (".pptx",)),
    FileKind.XLSX: _spec(
        _OOXML + "spreadsheetml.sheet",
        (".xlsx", ".xlsm"),
        "application/vnd.ms-excel.sheet.macroenabled.12",
    ),
    FileKind.ODT: _spec(_ODF + "text", (".odt",)),
    FileKind.ODS: _spec(_ODF + "spreadsheet", (".ods",)),
    FileKind.ODP: _spec(_ODF + "presentation", (".odp",)),
    FileKind.HTML: _spec("text/html", (".html", ".htm", ".xhtml"), "application/xhtml+xml"),
    FileKind.EPUB: _spec("application/epub+zip", (".epub",)),
    FileKind.RTF: _spec("application/rtf", (".rtf",), "text/rtf"),
    FileKind.CSV: _spec("text/csv", (".csv",), "application/csv"),
    FileKind.TSV: _spec("text/tab-separated-values", (".tsv",)),
    FileKind.PNG: _spec("image/png", (".png",)),
    FileKind.JPEG: _spec("image/jpeg", (".jpg", ".jpeg"), "image/jpg", "image/pjpeg"),
    FileKind.TIFF: _spec("image/tiff", (".tif", ".tiff")),
    FileKind.WEBP: _spec("image/webp", (".webp",)),
    FileKind.BMP: _spec("image/bmp", (".bmp",), "image/x-ms-bmp"),
}

IMAGE_KINDS = frozenset({FileKind.PNG, FileKind.JPEG, FileKind.TIFF, FileKind.WEBP, FileKind.BMP})

MEDIA_TYPES: dict[FileKind, str] = {kind: spec.media_type for kind, spec in KINDS.items()}

# What a document's page count counts, by kind (PDF, text and Word: pages).
_COUNTED_AS: dict[FileKind, tuple[str, str]] = {
    FileKind.PPTX: ("slide", "slides"),
    FileKind.ODP: ("slide", "slides"),
    FileKind.XLSX: ("sheet", "sheets"),
    FileKind.ODS: ("sheet", "sheets"),
    FileKind.CSV: ("row", "rows"),
    FileKind.TSV: ("row", "rows"),
    FileKind.ODT: ("section", "sections"),
    FileKind.HTML: ("section", "sections"),
    FileKind.EPUB: ("section", "sections"),
    FileKind.RTF: ("part", "parts"),
}
_KIND_BY_MEDIA_TYPE = {media: kind for kind, media in MEDIA_TYPES.items()}


def count_label(media_type: str | None, count: int) -> str:
    """A document's page count in its own unit: "3 pages", "6 slides", "30 sheets"."""
    kind = _KIND_BY_MEDIA_TYPE.get(media_type or "")
    one, many = _COUNTED_AS.get(kind, ("page", "pages")) if kind else ("page", "pages")
    return f"{count} {one if count == 1 else many}"


# What users are told Librarian reads, one entry per family, in the order they are
# listed.  The refusal message and the README's list are derived from this one table.
SUPPORTED_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PDF", (".pdf",)),
    ("Word", (".docx",)),
    ("PowerPoint", (".pptx",)),
    ("Excel", (".xlsx", ".xlsm")),
    ("OpenDocument", (".odt", ".ods", ".odp")),
    ("web pages", (".html", ".htm")),
    ("EPUB e-books", (".epub",)),
    ("RTF", (".rtf",)),
    ("CSV/TSV tables", (".csv", ".tsv")),
    ("plain text", (".txt",)),
    ("Markdown", (".md",)),
    ("images, read by OCR", (".png", ".jpg", ".tiff", ".webp", ".bmp")),
)


def _supported_description() -> str:
    parts = [f"{name} ({', '.join(exts)})" for name, exts in SUPPORTED_FORMATS]
    return "Librarian can read " + ", ".join(parts[:-1]) + " and " + parts[-1] + "."


SUPPORTED_DESCRIPTION = _supported_description()

_MB = 1024 * 1024
_MARKDOWN_EXTENSIONS = KINDS[FileKind.MARKDOWN].extensions
_MARKDOWN_MEDIA_TYPES = KINDS[FileKind.MARKDOWN].media_types
_PDF_MEDIA_TYPES = KINDS[FileKind.PDF].media_types
_DOWNLOADABLE_EXTENSIONS = tuple(ext for spec in KINDS.values() for ext in spec.extensions)
_DOWNLOADABLE_MEDIA_TYPES = frozenset(m for spec in KINDS.values() for m in spec.media_types)
_PDF_MAGIC = b"%PDF-"
_PDF_MAGIC_WINDOW = 1024  # the spec lets junk precede the header; readers accept 1 KB

# Leading bytes of formats people plausibly upload by mistake.  Order matters only for
# prefixes of each other (none here).  Short or text-like signatures are left out: a
# text file that happens to start with "BM" or "MZ" must not be refused.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc, .xls or .ppt)"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS", "an Ogg audio or video file"),
    (b"fLaC", "a FLAC audio file"),
    (b"%!PS", "a PostScript file"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
)
# Images whose text is read by OCR.  WebP is RIFF....WEBP; BMP is checked apart (its
# two-byte "BM" alone would match text files).
_IMAGE_SIGNATURES: tuple[tuple[bytes, FileKind], ...] = (
    (b"\x89PNG\r\n\x1a\n", FileKind.PNG),
    (b"\xff\xd8\xff", FileKind.JPEG),
    (b"II*\x00", FileKind.TIFF),
    (b"MM\x00*", FileKind.TIFF),
)
# Sizes of the BMP info headers that follow the 14-byte file header (BITMAPCOREHEADER,
# BITMAPINFOHEADER and its V2-V5 successors).
_BMP_INFO_SIZES = (12, 40, 52, 56, 64, 108, 124)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZIP_BY_EXTENSION = {
    ".jar": "a Java archive",
    ".apk": "an Android app package",
}
_MARKUP_EXTENSIONS = {
    ".svg": "an SVG image",
}
_MARKUP_MEDIA_TYPES = {
    "image/svg+xml": "an SVG image",
}
_HTML_EXTENSIONS = (".html", ".htm", ".xhtml")
_HTML_MEDIA_TYPES = {"text/html", "application/xhtml+xml"}
_HTML_STARTS = (b"<!doctype html", b"<html")
_CSV_EXTENSIONS = (".csv",)
_TSV_EXTENSIONS = (".tsv", ".tab")
_CSV_MEDIA_TYPES = {"text/csv", "application/csv"}
_TSV_MEDIA_TYPES = {"text/tab-separated-values"}
_RTF_MAGIC = b"{\\rtf"

# Zipped documents are told apart by what is inside: an ODF or EPUB file's first
# member is ``mimetype`` holding its media type; an OOXML file names its main part's
# content type in ``[Content_Types].xml`` (macro-enabled workbooks have their own).
_ZIP_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": FileKind.ODT,
    b"application/vnd.oasis.opendocument.spreadsheet": FileKind.ODS,
    b"application/vnd.oasis.opendocument.presentation": FileKind.ODP,
    b"application/epub+zip": FileKind.EPUB,
}
_OOXML_MAIN_TYPES = (
    (b"wordprocessingml.document.main+xml", FileKind.DOCX),
    (b"ms-word.document.macroEnabled.main+xml", FileKind.DOCX),
    (b"presentationml.presentation.main+xml", FileKind.PPTX),
    (b"ms-powerpoint.presentation.macroEnabled.main+xml", FileKind.PPTX),
    (b"spreadsheetml.sheet.main+xml", FileKind.XLSX),
    (b"ms-excel.sheet.macroEnabled.main+xml", FileKind.XLSX),
)
_ZIPPED_KIND_EXTENSIONS = {
    ".docx": FileKind.DOCX,
    ".docm": FileKind.DOCX,
    ".pptx": FileKind.PPTX,
    ".xlsx": FileKind.XLSX,
    ".xlsm": FileKind.XLSX,
    ".odt": FileKind.ODT,
    ".ods": FileKind.ODS,
    ".odp": FileKind.ODP,
    ".epub": FileKind.EPUB,
}
_KIND_NAMES = {
    FileKind.DOCX: "a Word document",
    FileKind.PPTX: "a PowerPoint presentation",
    FileKind.XLSX: "an Excel workbook",
    FileKind.ODT: "an OpenDocument text",
    FileKind.ODS: "an OpenDocument spreadsheet",
    FileKind.ODP: "an OpenDocument presentation",
    FileKind.EPUB: "an EPUB e-book",
}

# C0 control bytes that never occur in real text.  Tab, LF, VT, FF, CR and ESC (ANSI
# colour codes in logs) are allowed.  In UTF-8 these bytes only ever encode these same
# characters, so one byte-level count serves UTF-8 and the 8-bit encodings alike.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_CONTROL_CHARS_RE = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_UNPRINTABLE_IN_NAME_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MAX_CONTROL_FRACTION = 0.01
# Text in a legacy 8-bit encoding (cp1252, Latin-1) has accented letters and curly
# quotes here and there, rarely more than two in a row.  Multi-byte encodings such as
# GBK or Shift-JIS put every character in a run of high bytes; cp1252 would turn them
# into mojibake, so such files are refused rather than guessed at.
_HIGH_RUN_RE = re.compile(rb"[\x80-\xff]{4,}")
_MAX_HIGH_IN_RUNS_FRACTION = 0.5
_SNIFF_BYTES = 64 * 1024


def display_name(filename: str | None) -> str:
    """A file name safe to put in a message: base name only, no control characters.

    Names come from chat uploads and may contain paths, newlines or be very long.
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(_UNPRINTABLE_IN_NAME_RE.sub(" ", name).split())
    if len(name) > 80:
        name = name[:77] + "..."
    return name or "the file"


def _extension(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _base_media_type(media_type: str | None) -> str:
    return (media_type or "").split(";", 1)[0].strip().lower()


def _format_mb(size_bytes: int) -> str:
    # Round up so a file just over the limit never prints as equal to it.
    mb = math.ceil(size_bytes / _MB * 10) / 10
    return f"{mb:g} MB"


def check_size(size_bytes: int, limit_mb: float | None, filename: str | None = None) -> None:
    """Refuse with :class:`FileTooLarge` if ``size_bytes`` is over ``limit_mb`` (1 MB = 2**20 B).

    ``limit_mb=None`` means no limit.
    """
    if limit_mb is None or size_bytes <= limit_mb * _MB:
        return
    raise FileTooLarge(
        f"{display_name(filename)} is {_format_mb(size_bytes)}; the limit is {limit_mb:g} MB."
    )


def may_download(
    filename: str | None,
    media_type: str | None = None,
    size: int | None = None,
    *,
    max_mb: float | None = None,
) -> bool:
    """Whether an adapter should fetch a file shared in chat, before seeing its bytes.

    True when its name ends with the extension of a supported kind or the platform
    labels it with one of their media types (:data:`KINDS`), and its size, when known
    and a limit is given, is within ``max_mb``.  The same declaration the extractor
    reads decides, so every adapter downloads exactly what Librarian may index.
    """
    if size is not None and max_mb is not None and size > max_mb * _MB:
        return False
    return (
        _extension(filename) in _DOWNLOADABLE_EXTENSIONS
        or _base_media_type(media_type) in _DOWNLOADABLE_MEDIA_TYPES
    )


def not_downloaded(filename: str | None) -> UnsupportedFileType:
    """Why a shared file that :func:`may_download` turns down is not taken, in plain words.

    Told from its name alone, since its bytes are never fetched: the same sentence
    whichever platform it was shared on, ending with what Librarian does read.
    """
    return _unsupported(filename, "not a kind of file Librarian reads")


def _describe_zip(ext: str) -> str:
    if ext in _ZIP_BY_EXTENSION:
        return _ZIP_BY_EXTENSION[ext]
    return "a ZIP archive"


def _zip_kind(data: bytes, filename: str | None) -> FileKind | None:
    """The document kind of a zip by its members, or None for another kind of zip.

    Only the central directory and at most 64 KB of one small member are read, so a
    zip bomb costs nothing here.

    Raises:
        ExtractionRefused: code ``broken`` when the name says Word, Excel, ... but the
            zip is damaged or lacks their parts; ``encrypted`` for a zip with a password.
    """
    ext = _extension(filename)
    named = _ZIPPED_KIND_EXTENSIONS.get(ext)
    what = _KIND_NAMES[named] if named is not None else None
    try:
        directory = zip_directory(data)
        if any(flags & 1 for flags, *_ in directory.values()):
            raise ExtractionRefused(
                RefusalCode.ENCRYPTED,
                f"{display_name(filename)} is encrypted, needs a password. "
                "Save a copy without a password and upload that.",
            )
        if b"mimetype" in directory:
            declared = member_head(data, directory[b"mimetype"], 200).strip()
            if declared in _ZIP_MIMETYPES:
                return _ZIP_MIMETYPES[declared]
        if b"[Content_Types].xml" in directory:
            types = member_head(data, directory[b"[Content_Types].xml"], _SNIFF_BYTES)
            for marker, kind in _OOXML_MAIN_TYPES:
                if marker in types:
                    return kind
    except (DamagedZip, struct.error):
        if what is not None:
            raise ExtractionRefused(
                RefusalCode.BROKEN,
                f"{display_name(filename)} could not be read as {what}: "
                "its zip container is damaged.",
            ) from None
        return None
    if what is not None:
        raise ExtractionRefused(
            RefusalCode.BROKEN,
            f"{display_name(filename)} could not be read as {what}: it is a zip archive "
            "without the parts such a file has.",
        )


def detect_image(data: bytes) -> FileKind | None:
    """The image kind (PNG, JPEG, TIFF, WebP, BMP) from the leading bytes, or None."""
    for magic, kind in _IMAGE_SIGNATURES:
        if data.startswith(magic):
            return kind
    if len(data) >= 16 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return FileKind.WEBP
    if (
        len(data) >= 26
        and data.startswith(b"BM")
        and int.from_bytes(data[14:18], "little") in _BMP_INFO_SIZES
        and data[6:10] == b"\x00\x00\x00\x00"  # reserved fields, zero in real files
    ):
        return FileKind.BMP
    return None


def describe_binary(data: bytes, filename: str | None = None) -> str | None:
    """Name a well-known non-document format from its leading bytes, e.g. ``"a PNG image"``.

    Returns None when no signature matches (the bytes may still be binary).
    """
    if data.startswith(_ZIP_MAGICS):
        return _describe_zip(_extension(filename))
    for magic, description in _SIGNATURES:
        if data.startswith(magic):
            return description
    if len(data) >= 12:
        if data.startswith(b"RIFF"):
            return {
                b"WEBP": "a WebP image",
                b"WAVE": "a WAV audio file",
                b"AVI ": "an AVI video",
            }.get(data[8:12], "a RIFF media file")
        if data[4:8] == b"ftyp":
            brand = data[8:12]
            if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
                return "a HEIC/AVIF image"
            if brand.startswith(b"M4A"):
                return "an M4A audio file"
            return "an MP4 or QuickTime video"
    if data.startswith(b"ID3") and len(data) > 3 and data[3] < 10:
        return "an MP3 audio file"
    return None


def _unsupported(filename: str | None, what: str) -> UnsupportedFileType:
    return UnsupportedFileType(f"{display_name(filename)} is {what}. {SUPPORTED_DESCRIPTION}")


def _has_text_bom(data: bytes) -> bool:
    return data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _looks_binary_8bit(data: bytes) -> bool:
    """True if raw bytes (no BOM) are not plausibly UTF-8 or 8-bit text."""
    if not data:
        return False
    if b"\x00" in data:
        return True
    controls = len(data.translate(None, _NOT_CONTROL_BYTES))  # deletes all but controls
    return controls > _MAX_CONTROL_FRACTION * len(data)


def detect_kind(data: bytes, filename: str | None, media_type: str | None = None) -> FileKind:
    """Decide which kind of document ``data`` is (see :class:`FileKind`).

    The bytes decide first (a ``%PDF-`` header within the first 1 KB, image magic
    numbers, the members of a zip for OOXML, OpenDocument and EPUB, ``{\\rtf``, known
    binary signatures, NUL and control bytes); the name's extension and the platform's
    media type then choose among the text formats (text, Markdown, CSV, TSV, HTML,
    which is also recognised by its opening tag), or mark a file that claims to be a
    PDF or an Office file but is not one as broken.

    Raises:
        UnsupportedFileType: an image, archive, old binary Office file or other binary
            data (the message names what was detected and what is supported).
        ExtractionRefused: code ``empty`` for a 0-byte file; code ``broken`` for a file
            that claims to be a PDF but has no PDF header.
    """
    name = display_name(filename)
    if not data:
        raise ExtractionRefused(RefusalCode.EMPTY, f"{name} is empty (0 bytes).")
    if _PDF_MAGIC in data[:_PDF_MAGIC_WINDOW]:
        return FileKind.PDF
    if data.startswith(_ZIP_MAGICS):
        zipped = _zip_kind(data, filename)
        if zipped is not None:
            return zipped
    if data.startswith(_RTF_MAGIC):
        return FileKind.RTF
    image = detect_image(data)
    if image is not None:
        return image
    described = describe_binary(data, filename)
    if described is not None:
        raise _unsupported(filename, described)

    ext = _extension(filename)
    mtype = _base_media_type(media_type)
    if ext == ".pdf" or (mtype in _PDF_MEDIA_TYPES and not ext):
        raise ExtractionRefused(
            RefusalCode.BROKEN,
            f"{name} could not be read as a PDF: it has no PDF header (%PDF-).",
        )
    if ext in _ZIPPED_KIND_EXTENSIONS:
        raise ExtractionRefused(
            RefusalCode.BROKEN,
            f"{name} could not be read as {_KIND_NAMES[_ZIPPED_KIND_EXTENSIONS[ext]]}: "
            "it is not a zip container, as such files are.",
        )
    head = data[:_SNIFF_BYTES]
    if (
        not _has_text_bom(head)
        and not data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
        and _looks_binary_8bit(head)
    ):
        raise _unsupported(filename, "binary data, not a text document")
    if ext in _MARKUP_EXTENSIONS:
        raise _unsupported(filename, _MARKUP_EXTENSIONS[ext])
    if mtype in _MARKUP_MEDIA_TYPES and ext not in _MARKDOWN_EXTENSIONS and ext != ".txt":
        raise _unsupported(filename, _MARKUP_MEDIA_TYPES[mtype])
    if ext in _CSV_EXTENSIONS or (mtype in _CSV_MEDIA_TYPES and not ext):
        return FileKind.CSV
    if ext in _TSV_EXTENSIONS or (mtype in _TSV_MEDIA_TYPES and not ext):
        return FileKind.TSV
    if ext in _MARKDOWN_EXTENSIONS or (mtype in _MARKDOWN_MEDIA_TYPES and ext != ".txt"):
        return FileKind.MARKDOWN
    if ext == ".txt":
        return FileKind.TEXT
    if ext in _HTML_EXTENSIONS or mtype in _HTML_MEDIA_TYPES or _looks_like_html(head):
        return FileKind.HTML
    return FileKind.TEXT


def _looks_like_html(head: bytes) -> bool:
    """True if the bytes open like an HTML page (after a BOM, blanks and comments)."""
    start = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    while start.startswith(b"<!--"):
        end = start.find(b"-->")
        if end < 0:
            return False
        start = start[end + 3 :].lstrip()
    return start.startswith(_HTML_STARTS)


def decode_text(data: bytes, filename: str | None = None) -> str:
    """Decode a text file: UTF-8 (BOM optional), UTF-16/32 with a BOM, else cp1252/Latin-1.

    The 8-bit fallback is used only if the bytes look like text; NUL bytes or many
    control characters without a UTF-16/32 BOM mean binary data.

    Raises:
        UnsupportedFileType: the bytes are binary or in an encoding we cannot guess.
    """
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        text = data.decode("utf-32", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    elif data.startswith(codecs.BOM_UTF8):
        # The BOM declares the encoding; a few damaged bytes should not sink the file.
        return _checked_text(data.decode("utf-8-sig", errors="replace"), filename)
    else:
        if _looks_binary_8bit(data):
            raise _unsupported(filename, "binary data, not a text document")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        high = len(data) - len(data.translate(None, bytes(range(0x80, 0x100))))
        in_runs = sum(len(run) for run in _HIGH_RUN_RE.findall(data))
        if high >= 8 and in_runs > _MAX_HIGH_IN_RUNS_FRACTION * high:
            raise _unsupported(
                filename,
                "binary data or text in an encoding other than UTF-8, UTF-16 or Latin-1",
            ) from None
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            # cp1252 leaves five bytes undefined; Latin-1 maps every byte.
            return data.decode("latin-1")
    return _checked_text(text, filename)


def _checked_text(text: str, filename: str | None) -> str:
    """Refuse decoded text that is mostly control characters (binary behind a BOM)."""
    if text and _CONTROL_CHARS_RE.subn("", text)[1] > _MAX_CONTROL_FRACTION * len(text):
        raise _unsupported(filename, "binary data, not a text document")
    return text
