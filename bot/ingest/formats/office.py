"""Microsoft Office files: Word (.docx), PowerPoint (.pptx) and Excel (.xlsx, .xlsm).

Read with python-docx, python-pptx and openpyxl, all of which parse with lxml or
defusedxml without resolving external entities.  Locations:

* Word: the heading path ("section Onboarding > Laptops"), plus the page when Word
  recorded its page breaks in the file (``w:lastRenderedPageBreak``);
* PowerPoint: "slide 7 (Roadmap)", the slide's text, tables, chart data and speaker
  notes;
* Excel: "sheet Budget, rows 12-40", rows in blocks that repeat the header row, with
  the values formulas last computed (the cached values), never the formulas.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from bot.ingest.archive import checked_copy
from bot.ingest.document import Extracted, Page, clean_title, title_from_filename
from bot.ingest.filetypes import ExtractionRefused, FileKind
from bot.ingest.formats.common import (
    Sections,
    broken,
    cell_text,
    extracted,
    has_text,
    inline,
    row_blocks,
    slide_page,
    table_lines,
)

__all__ = ["extract_docx", "extract_pptx", "extract_xlsx"]

_HEADING_STYLE_RE = re.compile(r"^(?:heading|标题|titre|überschrift|título)\s*(\d)", re.IGNORECASE)
_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _core_title(package: Any) -> str | None:
    try:
        return clean_title(package.core_properties.title)
    except Exception:  # damaged docProps must not cost the text
        return None


# --- Word -----------------------------------------------------------------------------


def _heading_level(paragraph: Any) -> int | None:
    """1-9 for a heading paragraph (by style name or outline level), else None."""
    style = paragraph.style
    seen = 0
    while style is not None and seen < 10:  # styles inherit; a loop must end
        match = _HEADING_STYLE_RE.match(style.name or "")
        if match:
            return max(1, int(match.group(1)))
        ppr = style.element.pPr
        level = None if ppr is None else ppr.find(f"{{{_W_NS}}}outlineLvl")
        if level is not None:
            value = level.get(f"{{{_W_NS}}}val", "9")
            return int(value) + 1 if value.isdigit() and int(value) < 9 else None
        style = style.base_style
        seen += 1
    ppr = paragraph._p.pPr
    level = None if ppr is None else ppr.find(f"{{{_W_NS}}}outlineLvl")
    if level is not None:
        value = level.get(f"{{{_W_NS}}}val", "9")
        if value.isdigit() and int(value) < 9:
            return int(value) + 1
    return None


def _table_rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell appears once per spanned column
                continue
            seen.add(id(cell._tc))
            cells.append(inline(cell.text))
        yield cells


_APP_PAGES_RE = re.compile(rb"<(?:\w+:)?Pages>(\d{1,6})</(?:\w+:)?Pages>")


def _saved_page_count(stored: IO[bytes]) -> int | None:
    """The page count Word saved in docProps/app.xml, if it did (``stored``: the checked
    copy, whose parts are stored uncompressed)."""
    try:
        with zipfile.ZipFile(stored) as archive, archive.open("docProps/app.xml") as app:
            match = _APP_PAGES_RE.search(app.read(65536))
    except (KeyError, zipfile.BadZipFile, OSError, EOFError):
        return None
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def extract_docx(data: bytes, filename: str) -> Extracted:
    """Read a Word document: sections by heading, tables as rows, pages if recorded."""
    stored = checked_copy(data, filename)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(stored)
        body = document.element.body
        pages_known = bool(body.xpath(".//w:lastRenderedPageBreak"))
        sections = Sections()
        if pages_known:
            sections.page = 1
        doc_title = None
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                if pages_known and block._p.xpath("./w:r/w:lastRenderedPageBreak"):
                    sections.new_page()
                text = block.text
                if not has_text(text):
                    continue
                style = (block.style.name or "") if block.style is not None else ""
                if style.lower() == "title" and doc_title is None:
                    doc_title = inline(text)
                    sections.heading(1, text)
                    continue
                level = _heading_level(block)
                if level is not None:
                    sections.heading(level, text)
                else:
                    sections.paragraph(text)
            elif isinstance(block, Table):
                sections.table(_table_rows(block))
        pages = sections.pages(pages_known=pages_known)
    except ExtractionRefused:
        raise
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, "a Word document", exc) from None
    title = _core_title(document) or clean_title(doc_title) or title_from_filename(filename)
    count = sections.page if pages_known else _saved_page_count(stored)
    return extracted(pages, FileKind.DOCX, title, filename, page_count=count)


# --- PowerPoint -----------------------------------------------------------------------


def _shape_lines(shapes: Any, depth: int = 0) -> Iterator[str]:
    """Text of the shapes of a slide, in their order, groups opened (to a sane depth)."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP and depth < 20:
            yield from _shape_lines(shape.shapes, depth + 1)
            continue
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                text = inline(paragraph.text)
                if has_text(text):
                    yield text
        if getattr(shape, "has_table", False) and shape.has_table:
            rows = (
                ["" if cell.is_spanned else cell.text for cell in row.cells]
                for row in shape.table.rows
            )
            yield ""
            yield from table_lines(rows)
            yield ""
        if getattr(shape, "has_chart", False) and shape.has_chart:
            yield from _chart_lines(shape.chart)


# A chart's series are read from their cached values, whatever the plot type
# (python-pptx's plots know the common 2-D types only: a 3-D bar chart raised, and its
# slide lost its data; seen by hand in session 19, "What was the revenue in Q2?" was
# "No document mentions: Q2").  Compiled XPath: python-pptx's own elements take no
# namespaces in ``.xpath``.
def _xpath(expr: str) -> Any:
    from lxml import etree

    return etree.XPath(
        expr, namespaces={"c": "http://schemas.openxmlformats.org/drawingml/2006/chart"}
    )


def _chart_lines(chart: Any) -> Iterator[str]:
    """A chart's data as a table: categories down, one column per series."""
    series_of, name_of = _xpath(".//c:plotArea//c:ser"), _xpath("./c:tx//c:v/text()")
    axis_of, values_of = _xpath("./c:cat|./c:xVal"), _xpath("./c:val|./c:yVal")
    points_of, value_of = _xpath(".//c:pt"), _xpath("./c:v/text()")

    def points(node: Any) -> dict[int, str]:
        return {int(pt.get("idx", 0)): "".join(value_of(pt)) for pt in points_of(node)}

    try:
        title = inline(chart.chart_title.text_frame.text) if chart.has_title else ""
        categories: dict[int, str] = {}
        series: list[tuple[str, dict[int, str]]] = []
        for ser in series_of(chart._chartSpace):
            for axis in axis_of(ser)[:1]:
                categories = categories or points(axis)
            values = values_of(ser)
            series.append((inline(" ".join(name_of(ser))), points(values[0]) if values else {}))
    except Exception:  # a chart without readable cached data still has its slide text
        return
    if title:
        yield f"Chart: {title}"
    if not series:
        return
    # The points' own indices, not a range up to the largest: a file may claim any.
    indices = sorted(set(categories).union(*(vals for _, vals in series)))
    rows = [["", *(name for name, _ in series)]]
    for i in indices:
        rows.append([categories.get(i, ""), *(_number(vals.get(i, "")) for _, vals in series)])
    yield ""
    yield from table_lines(rows)
    yield ""


def _number(cached: str) -> str:
    """A cached value as a spreadsheet shows it: "120" for "120.0"."""
    try:
        return cell_text(float(cached)) if cached else ""
    except ValueError:
        return cached


def extract_pptx(data: bytes, filename: str) -> Extracted:
    """Read a presentation: one page per slide, "slide 7 (Title)", speaker notes included."""
    stored = checked_copy(data, filename)
    from pptx import Presentation

    try:
        presentation = Presentation(stored)
        pages: list[Page] = []
        first_title = None
        count = 0
        for number, slide in enumerate(presentation.slides, start=1):
            count = number
            title_shape = slide.shapes.title
            title = inline(title_shape.text) if title_shape is not None else ""
            lines = list(_shape_lines(slide.shapes))
            note_text = ""
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                note_text = inline(notes.text) if notes is not None else ""
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
        raise broken(filename, "a PowerPoint presentation", exc) from None
    title = _core_title(presentation) or clean_title(first_title) or title_from_filename(filename)
    return extracted(pages, FileKind.PPTX, title, filename, page_count=count)


# --- Excel ----------------------------------------------------------------------------


def extract_xlsx(data: bytes, filename: str) -> Extracted:
    """Read a workbook: per sheet, blocks of rows with the header repeated, cached values."""
    stored = checked_copy(data, filename)
    import openpyxl

    try:
        # read_only streams rows; data_only gives the values Excel last computed.
        workbook = openpyxl.load_workbook(stored, read_only=True, data_only=True, keep_links=False)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, "an Excel workbook", exc) from None
    pages: list[Page] = []
    try:
        for sheet in workbook.worksheets:
            # The recorded dimension can claim A1:XFD1048576; rows are then padded to
            # 16,384 cells each.  Without it, each row is as wide as its last cell.
            sheet.reset_dimensions()
            rows = enumerate(sheet.iter_rows(values_only=True), start=1)
            pages += row_blocks(rows, f"sheet {inline(sheet.title)}, ", first=len(pages) + 1)
        title = clean_title(workbook.properties.title) if workbook.properties else None
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, "an Excel workbook", exc) from None
    finally:
        workbook.close()
    return extracted(
        pages,
        FileKind.XLSX,
        title or title_from_filename(filename),
        filename,
        page_count=len(workbook.worksheets),
    )
