"""OpenDocument files (.odt, .ods, .odp), read from their ``content.xml`` with lxml.

ODF's XML is plain and documented; reading it directly with lxml keeps the structure
citations need (heading outline levels, sheet names and row numbers, slides with
their titles and notes) at a few dozen lines per format, where odfpy (unchanged since
2020) would only add a DOM on top of the same parse.  The parser resolves no entities,
loads nothing from the network and keeps libxml2's default limits on depth and size.
Locations are as for Office files: "section A > B", "sheet Ducks, rows 2-7",
"slide 3 (Title)".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.ingest.archive import open_archive
from bot.ingest.document import Extracted, Page, clean_title, title_from_filename
from bot.ingest.filetypes import ExtractionRefused, FileKind
from bot.ingest.formats.common import (
    Sections,
    broken,
    extracted,
    has_text,
    inline,
    row_blocks,
    slide_page,
    table_lines,
)

__all__ = ["extract_odp", "extract_ods", "extract_odt"]

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{_NS[prefix]}}}{local}"


_P, _H = _q("text:p"), _q("text:h")
_SPACE, _TAB, _BREAK = _q("text:s"), _q("text:tab"), _q("text:line-break")
_SKIPPED = {_q("office:annotation"), _q("text:tracked-changes"), _q("text:note-citation")}
_TABLE, _ROW, _CELL = _q("table:table"), _q("table:table-row"), _q("table:table-cell")
_COVERED = _q("table:covered-table-cell")
_NOTES = _q("presentation:notes")
_ROWS_REPEATED = _q("table:number-rows-repeated")
_COLUMNS_REPEATED = _q("table:number-columns-repeated")
# Repeats are how ODF writes "the rest of the sheet is empty" (often 1,048,576 rows or
# 16,384 columns).  Empty repeats only advance the counters; repeated content is
# written at most this many times.
_MAX_REPEAT = 1000
_MAX_COLUMNS = 1024


def _parse(raw: bytes, filename: str, what: str) -> Any:
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True
    )
    try:
        return etree.fromstring(raw, parser)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, what, exc) from None


def _text(element: Any) -> str:
    """The text of a paragraph: spaces, tabs and line breaks kept, annotations dropped."""
    from lxml import etree

    parts: list[str] = []
    walker = etree.iterwalk(element, events=("start", "end"))
    for event, node in walker:
        if event == "start":
            if node.tag in _SKIPPED:
                walker.skip_subtree()
                if node.tail:
                    parts.append(node.tail)
                continue
            if node.tag == _SPACE:
                count = node.get(_q("text:c"), "1")
                parts.append(" " * min(int(count) if count.isdigit() else 1, 100))
            elif node.tag in (_TAB, _BREAK):
                parts.append(" ")
            elif node.text:
                parts.append(node.text)
        elif node is not element and node.tail:
            parts.append(node.tail)
    return "".join(parts)


def _cells(row: Any) -> list[str]:
    cells: list[str] = []
    for cell in row:
        if cell.tag not in (_CELL, _COVERED):
            continue
        repeat = cell.get(_COLUMNS_REPEATED, "1")
        repeat = int(repeat) if repeat.isdigit() else 1
        text = inline(" ".join(_text(p) for p in cell.iter(_P)))
        cells.extend([text] * min(repeat, _MAX_REPEAT if text else 64))
        if len(cells) >= _MAX_COLUMNS:
            break
    return cells[:_MAX_COLUMNS]


def _table_rows(table: Any) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of a table; rows inside row groups and header rows too."""
    number = 0
    for row in table.iter(_ROW):
        repeat = row.get(_ROWS_REPEATED, "1")
        repeat = int(repeat) if repeat.isdigit() else 1
        cells = _cells(row)
        if not any(cells):
            number += repeat
            continue
        for _ in range(min(repeat, _MAX_REPEAT)):
            number += 1
            yield number, cells
        number += max(0, repeat - _MAX_REPEAT)


def _walk_blocks(root: Any, sections: Sections) -> None:
    """Headings, paragraphs and tables of a text body, in order, without recursion."""
    stack = list(reversed(root))
    while stack:
        node = stack.pop()
        if not isinstance(node.tag, str) or node.tag in _SKIPPED:
            continue
        if node.tag == _H:
            level = node.get(_q("text:outline-level"), "1")
            sections.heading(int(level) if level.isdigit() else 1, _text(node))
        elif node.tag == _P:
            sections.paragraph(_text(node))
        elif node.tag == _TABLE:
            sections.table(cells for _, cells in _table_rows(node))
        else:  # lists, sections, frames, indexes: containers
            stack.extend(reversed(node))


def _document(data: bytes, filename: str, what: str, kind: str) -> tuple[Any, str | None]:
    """The ``office:<kind>`` body of ``content.xml`` and the title in ``meta.xml``, each
    part inflated once, through the archive checks (the other parts are never read)."""
    with open_archive(data, filename) as archive:
        content = archive.read("content.xml") if "content.xml" in archive else None
        meta = archive.read("meta.xml") if "meta.xml" in archive else None
    root = None if content is None else _parse(content, filename, what)
    body = None if root is None else root.find(f"office:body/office:{kind}", _NS)
    if body is None:
        raise broken(filename, what)
    title = None
    if meta is not None:
        found = _parse(meta, filename, what).find(".//dc:title", _NS)
        title = clean_title(found.text) if found is not None else None
    return body, title


def extract_odt(data: bytes, filename: str) -> Extracted:
    """Read an OpenDocument text: sections by heading path, tables as rows."""
    what = "an OpenDocument text"
    body, meta_title = _document(data, filename, what, "text")
    sections = Sections()
    _walk_blocks(body, sections)
    title = meta_title or title_from_filename(filename)
    return extracted(sections.pages(), FileKind.ODT, title, filename)


def extract_ods(data: bytes, filename: str) -> Extracted:
    """Read an OpenDocument spreadsheet: per sheet, row blocks with the header repeated."""
    what = "an OpenDocument spreadsheet"
    body, meta_title = _document(data, filename, what, "spreadsheet")
    pages: list[Page] = []
    sheets = body.findall("table:table", _NS)
    for sheet in sheets:
        name = inline(sheet.get(_q("table:name"), "")) or f"{len(pages) + 1}"
        pages += row_blocks(_table_rows(sheet), f"sheet {name}, ", first=len(pages) + 1)
    title = meta_title or title_from_filename(filename)
    return extracted(pages, FileKind.ODS, title, filename, page_count=len(sheets))


def _slide_title(slide: Any) -> str:
    for frame in slide.iter(_q("draw:frame")):
        if frame.get(_q("presentation:class")) == "title":
            return inline(" ".join(_text(p) for p in frame.iter(_P)))
    return ""


def extract_odp(data: bytes, filename: str) -> Extracted:
    """Read an OpenDocument presentation: one page per slide, speaker notes included."""
    what = "an OpenDocument presentation"
    body, meta_title = _document(data, filename, what, "presentation")
    pages: list[Page] = []
    slides = body.findall("draw:page", _NS)
    first_title = ""
    try:
        for number, slide in enumerate(slides, start=1):
            title = _slide_title(slide)
            lines: list[str] = []
            notes: list[str] = []
            stack = list(reversed(slide))
            while stack:
                node = stack.pop()
                if not isinstance(node.tag, str) or node.tag in _SKIPPED:
                    continue
                if node.tag == _NOTES:
                    notes += [inline(_text(p)) for p in node.iter(_P)]
                elif node.tag in (_P, _H):
                    lines.append(inline(_text(node)))
                elif node.tag == _TABLE:
                    lines += ["", *table_lines(c for _, c in _table_rows(node)), ""]
                else:
                    stack.extend(reversed(node))
            note_text = " ".join(n for n in notes if has_text(n))
            page = slide_page(number, title, lines, note_text)
            if page is None:
                continue
            first_title = first_title or title
            pages.append(page)
    except ExtractionRefused:
        raise
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, what, exc) from None
    title = meta_title or clean_title(first_title) or title_from_filename(filename)
    return extracted(pages, FileKind.ODP, title, filename, page_count=len(slides))
