"""Readers for the document families beyond PDF and plain text, one module each.

Each reader takes the file's bytes and name and returns an
:class:`~bot.ingest.extract.Extracted` whose pages carry a location in the document's
own terms (slide, sheet and rows, section path).  They run inside the extraction
sandbox (:mod:`bot.ingest.sandbox`), so a parser that blows up on hostile input costs a
worker process, not the bot; the cheap checks they do themselves (zip sizes, entity
expansion off, nesting walked without recursion) keep the common attacks cheaper still.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from bot.ingest.document import Extracted
from bot.ingest.filetypes import FileKind

__all__ = ["extract_format"]

# kind -> (module, function).  Modules are imported on first use, so reading a CSV never
# loads lxml or openpyxl.
_READERS: dict[FileKind, tuple[str, str]] = {
    FileKind.DOCX: ("office", "extract_docx"),
    FileKind.PPTX: ("office", "extract_pptx"),
    FileKind.XLSX: ("office", "extract_xlsx"),
    FileKind.ODT: ("opendocument", "extract_odt"),
    FileKind.ODS: ("opendocument", "extract_ods"),
    FileKind.ODP: ("opendocument", "extract_odp"),
    FileKind.HTML: ("html", "extract_html"),
    FileKind.EPUB: ("epub", "extract_epub"),
    FileKind.RTF: ("rtf", "extract_rtf"),
    FileKind.CSV: ("table", "extract_csv"),
    FileKind.TSV: ("table", "extract_tsv"),
}


def extract_format(kind: FileKind, data: bytes, filename: str) -> Extracted:
    """Read ``data`` with the reader of its family (``kind`` from ``detect_kind``)."""
    module, function = _READERS[kind]
    reader: Callable[[bytes, str], Extracted] = getattr(
        import_module(f"bot.ingest.formats.{module}"), function
    )
    return reader(data, filename)
