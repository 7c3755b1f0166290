"""CSV and TSV files: rows in blocks that repeat the header, cited as "rows 12-40"."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from bot.ingest.document import Extracted, title_from_filename
from bot.ingest.filetypes import FileKind, decode_text
from bot.ingest.formats.common import broken, extracted, row_blocks

__all__ = ["extract_csv", "extract_tsv"]

_CANDIDATE_DELIMITERS = ",;\t|"


def _delimiter(text: str) -> str:
    """The delimiter of a ".csv": comma unless the first lines clearly use another."""
    sample = text[:16384]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CANDIDATE_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _rows(text: str, delimiter: str, filename: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        yield from enumerate(reader, start=1)
    except csv.Error as exc:  # e.g. a field over csv's size limit (131,072 characters)
        raise broken(filename, "a CSV table", ValueError(f"row {reader.line_num}: {exc}")) from None


def _extract(data: bytes, filename: str, kind: FileKind, delimiter: str | None) -> Extracted:
    text = decode_text(data, filename)
    # csv.reader over lines: a quoted field may span lines; splitlines keeps that working
    # because the reader joins continuation lines itself.
    rows = list(_rows(text, delimiter or _delimiter(text), filename))
    pages = row_blocks(rows, "")
    return extracted(pages, kind, title_from_filename(filename), filename, page_count=len(rows))


def extract_csv(data: bytes, filename: str) -> Extracted:
    """Read a comma- (or semicolon-, tab-, bar-) separated file; the first row is the header."""
    return _extract(data, filename, FileKind.CSV, None)


def extract_tsv(data: bytes, filename: str) -> Extracted:
    """Read a tab-separated file; the first row is the header."""
    return _extract(data, filename, FileKind.TSV, "\t")
