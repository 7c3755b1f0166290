"""What the format readers share: sections with heading paths, tables kept as rows,
row blocks that repeat their header, and the refusals in plain words.

Zip containers are opened through :mod:`bot.ingest.archive` (its limits are
:class:`bot.ingest.limits.ArchiveLimits`), never by a reader on its own."""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from bot.ingest.document import HAS_WORD_RE, Extracted, Page, clean_plain_text
from bot.ingest.filetypes import MEDIA_TYPES, ExtractionRefused, FileKind, RefusalCode, display_name

# Rows of a spreadsheet or CSV are grouped into blocks of at most this many tokens as
# estimated by :func:`estimate_tokens` (title lines and header included), so that a block
# fits one chunk of the default 200 tokens and every chunk carries its column names.  The
# extractor runs in the sandbox without the embedding model's tokenizer, hence the
# estimate; it errs high for tables (numbers and "|" cost WordPiece a token per piece).
ROW_BLOCK_TOKENS = 150
# WordPiece splits words into pieces: about one per 6 letters, one per 3 digits; each
# punctuation mark and each CJK character is a token of its own.
_CJK = "\u3000-\u9fff\uac00-\ud7af"
_TOKEN_PIECES_RE = re.compile(rf"[^\W\d_{_CJK}]+|\d+|[{_CJK}]|[^\w\s]")

_SPACES_RE = re.compile(r"[\s\u200b\u2060\ufeff]+")


def estimate_tokens(text: str) -> int:
    """About how many tokens a BERT-style WordPiece tokenizer makes of ``text``."""
    total = 0
    for piece in _TOKEN_PIECES_RE.findall(text):
        if piece.isdigit():
            total += 1 + (len(piece) - 1) // 3
        elif len(piece) > 1 and piece.isalpha():
            total += 1 + (len(piece) - 1) // 6
        else:
            total += 1
    return total


def has_text(text: str) -> bool:
    """True if ``text`` holds at least one letter or digit."""
    return bool(HAS_WORD_RE.search(text))


def inline(text: object) -> str:
    """One line of text: white space (newlines, tabs) collapsed to single spaces."""
    if text is None:
        return ""
    return _SPACES_RE.sub(" ", str(text)).strip()


def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with "…" if cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:") + "…"


def broken(filename: str, what: str, exc: BaseException | None = None) -> ExtractionRefused:
    """A ``broken`` refusal: "<name> could not be read as <what>: <why>."."""
    why = "its internal structure is damaged"
    if isinstance(exc, RecursionError):
        why = "its structure is nested too deeply"
    elif exc is not None and isinstance(exc, (ValueError, zipfile.BadZipFile)) and str(exc):
        why = inline(exc)[:120].rstrip(" .")
    return ExtractionRefused(
        RefusalCode.BROKEN, f"{display_name(filename)} could not be read as {what}: {why}."
    )


def empty(filename: str) -> ExtractionRefused:
    """An ``empty`` refusal: the file parsed but holds no text."""
    return ExtractionRefused(RefusalCode.EMPTY, f"{display_name(filename)} has no text in it.")


# A slide's line (a bullet, a text frame's paragraph) is set apart by a blank line, so
# the chunker keeps it a paragraph of its own and the evidence quotes it alone: "Code
# 660: Astrophysics Science Division", not the slide's whole list run together (the
# chunker joins the lines of a paragraph, as a PDF wraps them).  A line shorter than
# this, without a sentence's end, is a value or a label that means nothing alone: it
# stays with the next.  (Documents' paragraphs were set apart too, and measured: a
# header line such as "Illustrator: C. Fleming Williams" then no longer held the
# book's title the question named, and the title lines were quoted instead; see the
# README, "Document formats and citations".)
SHORT_BLOCK_CHARS = 20
_SENTENCE_END_RE = re.compile(r"[.!?:;\u3002\uff01\uff1f]$")
# A block that is only a parenthesised label names the value above it, as a filing's
# cover page writes "Nevada" over "(State or other jurisdiction of incorporation)".
_LABEL_RE = re.compile(r"^\([^()]*\)$")


def blocks_text(lines: Sequence[str]) -> str:
    """A page's text from its blocks (one per item; "" sets a table apart, whose "| … |"
    rows stay one per line): blocks set apart by blank lines, a short one joined to the
    next, a parenthesised label to the one before."""
    out: list[str] = []
    pending = ""  # short blocks waiting for the next
    table: list[str] = []

    def end_table() -> None:
        if table:
            out.append("\n".join(table))
            table.clear()

    for line in lines:
        block = line.strip()
        if not block:
            end_table()
            continue
        if block.startswith("|") and "\n" not in block:
            if pending:
                out.append(pending)
                pending = ""
            table.append(block)
            continue
        end_table()
        if pending:
            block, pending = f"{pending} {block}", ""
        elif out and _LABEL_RE.match(block) and not out[-1].startswith("|"):
            out[-1] = f"{out[-1]} {block}"
            continue
        if len(block) < SHORT_BLOCK_CHARS and not _SENTENCE_END_RE.search(block):
            pending = block
            continue
        out.append(block)
    end_table()
    if pending:
        out.append(pending)
    return "\n\n".join(out)


def slide_page(number: int, title: str, lines: list[str], notes: str) -> Page | None:
    """A slide as a page: its lines, then its speaker notes, located as "slide 7 (Roadmap)"
    (or "slide 7" when untitled); None when the slide holds no text."""
    if has_text(notes):
        lines = [*lines, f"Speaker notes: {notes}"]
    text = blocks_text(lines)
    if not has_text(text):
        return None
    label = f"slide {number} ({short(title)})" if has_text(title) else f"slide {number}"
    return Page(number, text, label)


def cell_text(value: object) -> str:
    """A spreadsheet value as shown: 12 not 12.0, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.10g}"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return inline(value)


def row_line(cells: Sequence[str]) -> str:
    """A table row as one line, "| a | b | c |", trailing empty cells dropped."""
    cells = [inline(c) for c in cells]
    while cells and not cells[-1]:
        cells.pop()
    return "| " + " | ".join(cells) + " |" if cells else ""


def table_lines(rows: Iterable[Sequence[str]]) -> list[str]:
    """Table rows as lines, empty rows left out (each row stays one line: one unit).

    Readers give a merged cell once, where it starts (python-docx and python-pptx
    repeat it per spanned column; ODF writes covered cells empty).  A column empty in
    every row (a spacer between columns, as word processors lay tables out) is left
    out, and a row of parenthesised labels is read into the row of values above it,
    cell by cell, as a filing's cover writes "Nevada" over "(State of incorporation)".
    """
    table = [[inline(c) for c in row] for row in rows]
    table = [row for row in table if any(has_text(c) for c in row)]
    width = max((len(row) for row in table), default=0)
    used = [i for i in range(width) if any(i < len(row) and row[i] for row in table)]
    table = [[row[i] if i < len(row) else "" for i in used] for row in table]
    merged: list[list[str]] = []
    for row in table:
        filled = [c for c in row if c]
        if merged and all(_LABEL_RE.match(c) for c in filled):
            above = merged[-1]
            merged[-1] = [f"{a} {b}".strip() for a, b in zip(above, row, strict=True)]
            continue
        merged.append(row)
    return [line for row in merged if (line := row_line(row))]


class Sections:
    """Pages from a flow of headings, paragraphs and tables, each labelled by its path.

    A page is the text under one heading (to the next heading of any level), labelled
    "section Onboarding > Laptops"; with ``page`` numbers (Word's recorded page breaks)
    also ", p. 4".  A heading directly followed by a sub-heading is carried into the
    sub-section's text rather than made a page of one line.
    """

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._has_body = False
        self._parts: list[tuple[str, str | None, int | None]] = []
        self.page: int | None = None  # the current page, when the format records pages
        self.any_heading = False

    def heading(self, level: int, text: str) -> None:
        """A heading of ``level`` (1 = top, 0 = a chapter); it opens a new section."""
        text = inline(text)
        if not has_text(text):
            return
        if self._path and self._path[-1][1] == short(text, 80) and not self._has_body:
            return  # a chapter's own first heading repeats its title in the contents
        if self._has_body:
            self._flush()
        # The path is for citations: a "heading" that is really a paragraph is cut short.
        self._path = [(lvl, t) for lvl, t in self._path if lvl < level] + [(level, short(text, 80))]
        if len(self._path) > 1 and self._path[-2][1] == self._path[-1][1]:
            self._path.pop()  # "Chapter II > Chapter II": the chapter's title repeated
        self._lines.append(text)
        self.any_heading = True

    def chapter(self, title: str | None) -> None:
        """A new chapter (an e-book's file): the path restarts at its title, if any."""
        if self._has_body or self._lines:
            self._flush()
        self._lines = []
        self._path = []
        if title and has_text(title):
            self.heading(0, title)

    def paragraph(self, text: str) -> None:
        """A paragraph (or list item, quote, code block line...)."""
        text = text.strip()
        if has_text(text):
            self._lines.append(text)
            self._has_body = True

    def table(self, rows: Iterable[Sequence[str]]) -> None:
        """A table, one line per row, set apart from the text around it."""
        lines = table_lines(rows)
        if lines:
            self._lines.append("")
            self._lines.extend(lines)
            self._lines.append("")
            self._has_body = True

    def new_page(self) -> None:
        """The document's next page starts here (a recorded page break)."""
        if self._has_body:
            self._flush()
        self.page = (self.page or 1) + 1

    def _flush(self) -> None:
        text = clean_plain_text("\n".join(self._lines))
        if has_text(text):
            path = " > ".join(t for _, t in self._path) or None
            self._parts.append((text, path, self.page))
        self._lines = []
        self._has_body = False

    def pages(self, *, pages_known: bool = False) -> list[Page]:
        """The finished pages.  ``pages_known``: add the recorded page to each label."""
        self._flush()
        out = []
        for number, (text, path, page) in enumerate(self._parts, start=1):
            labels = []
            if path:
                labels.append(f"section {path}")
            elif self.any_heading:
                labels.append("start of the document")
            if pages_known:
                labels.append(f"p. {page or 1}")
            out.append(Page(number, text, ", ".join(labels)))
        return out


# The header is looked for among the first rows with text: the first row at least
# half as wide as the widest of them (title rows above a table are narrower).
_HEADER_SEARCH_ROWS = 20
# A sheet's title lines (the lines above its header row: the report's chapter, the
# period, the unit: "In millions of CHF, January–June 2023") are copied into every block
# with the header, or a row far down the sheet is indexed and quoted without the period
# and unit it belongs to.  The copy takes room from the rows, so it is bounded: the
# lines nearest the header (the period and unit are written there, chapter headings
# above them), at most this many lines and estimated tokens.  A dozen "title" rows
# above the header are a form or data, not a title: only the nearest few travel.
TITLE_LINES = 3
TITLE_TOKENS = 32
# A cell that is a number ("-1,164", "12.5 %") is data, never part of a title; but for a
# year, the period a title names ("Sales by office | 2023").
_NUMBER_RE = re.compile(r"[-+\u2212(]?[\d.,' ]*\d[\d.,' ]*%?\)?")
_YEAR_RE = re.compile(r"(?:19|20)\d\d")
_LETTER_RE = re.compile(r"[^\W\d_]")


@dataclass(frozen=True, slots=True)
class _Row:
    """A non-empty row of a sheet: its number, its line, its non-empty cells."""

    number: int
    line: str
    filled: tuple[str, ...]


def _rows_of(rows: Iterable[tuple[int, Sequence[object]]]) -> Iterator[_Row]:
    for number, values in rows:
        cells = [cell_text(v) for v in values]
        line = row_line(cells)
        if line and has_text(line):
            yield _Row(number, line, tuple(c for c in (inline(c) for c in cells) if c))


def _title_line(row: _Row, widest: int) -> str | None:
    """``row`` as a title line, "| In millions of CHF, January–June 2023 |" (one cell, so
    that it is never taken for a header), or None when it is not one: a title is
    narrow (one or two cells, at most half as wide as the widest row), has words and
    no number cell but a year."""
    if not 1 <= len(row.filled) <= 2 or len(row.filled) * 2 > widest:
        return None
    if any(_NUMBER_RE.fullmatch(c) and not _YEAR_RE.fullmatch(c) for c in row.filled):
        return None
    if not any(_LETTER_RE.search(c) for c in row.filled):
        return None
    return "| " + ", ".join(row.filled) + " |"


def _bounded(title: Sequence[str]) -> list[str]:
    """The lines of ``title`` nearest its end within TITLE_LINES and TITLE_TOKENS."""
    kept: list[str] = []
    cost = 0
    for line in reversed(title):
        cost += estimate_tokens(line)
        if len(kept) == TITLE_LINES or cost > TITLE_TOKENS:
            break
        kept.insert(0, line)
    return kept


class _Blocks:
    """Row lines packed into pages of at most ROW_BLOCK_TOKENS; a block that starts
    after the header row starts with a copy of the title lines and the header."""

    def __init__(self, where: str, first: int, header_at: int) -> None:
        self.where = where
        self.first = first
        self.header_at = header_at
        self.copy: list[str] = []  # the title lines and the header, once it is known
        self.copy_cost = 0
        self.pages: list[Page] = []
        self.lines: list[str] = []
        self.start: int | None = None  # the first row number of the block being filled
        self.end = 0
        self.cost = 0

    def set_copy(self, lines: list[str]) -> None:
        """What every later block starts with: the title lines, then the header row."""
        self.copy = lines
        self.copy_cost = sum(estimate_tokens(line) for line in lines)

    def add(self, number: int, line: str) -> None:
        """Row ``number``'s ``line``, in this block or, when it is full, the next."""
        cost = estimate_tokens(line)
        if self.lines and self.cost + cost > ROW_BLOCK_TOKENS:
            self.flush()
        if not self.lines:
            self.start = number if self.start is None else self.start
            self.cost = self.copy_cost if self.start > self.header_at else 0
        self.lines.append(line)
        self.end = number
        self.cost += cost

    def flush(self, next_start: int | None = None) -> None:
        """Close the block being filled; the next one starts at ``next_start`` if given
        (a row already taken into the copy), else at its first row."""
        if self.lines and self.start is not None:
            if self.start == self.end:
                label = f"{self.where}row {self.start}"
            else:
                label = f"{self.where}rows {self.start}-{self.end}"
            # The block holding the header row holds the title lines above it already.
            copy = self.copy if self.start > self.header_at else []
            text = "\n".join([*copy, *self.lines])
            self.pages.append(Page(self.first + len(self.pages), text, label))
        self.lines = []
        self.start = next_start


def row_blocks(
    rows: Iterable[tuple[int, Sequence[object]]], where: str, first: int = 1
) -> list[Page]:
    """Pages of table rows, each repeating the title lines and header row, labelled
    "<where>rows a-b".

    ``rows`` are (row number, values).  The header is the first row of the table
    proper (see :data:`_HEADER_SEARCH_ROWS`); the title is the lines right above it
    that read as one (see :func:`_title_line`, :data:`TITLE_LINES`), written as
    one-cell rows.  Narrow title lines right above a repetition of the header further
    down title the table that follows (the same sheet's "January–June 2022" below its
    "January–June 2023"): they replace as many of the title's lines, nearest first,
    and the table starts a block.  Empty rows are skipped; each block holds whole rows
    up to :data:`ROW_BLOCK_TOKENS`, copy included.  ``first`` is the number the first
    page gets.
    """
    stream = _rows_of(rows)
    head = list(itertools.islice(stream, _HEADER_SEARCH_ROWS))
    if not head:
        return []
    widest = max(len(row.filled) for row in head)
    at = next(i for i, row in enumerate(head) if len(row.filled) * 2 > widest)
    header = head[at].line
    title: list[tuple[int, str]] = []  # (row number, title line), nearest last
    for row in reversed(head[:at]):
        line = _title_line(row, widest)
        if line is None:
            break
        title.insert(0, (row.number, line))
    kept = _bounded([line for _, line in title])
    as_title = dict(title[len(title) - len(kept) :])

    blocks = _Blocks(where, first, head[at].number)
    for row in head[:at]:
        blocks.add(row.number, as_title.get(row.number, row.line))
    blocks.add(head[at].number, header)
    blocks.set_copy([*kept, header])
    pending: list[tuple[_Row, str]] = []  # title-like rows: a title if the header follows
    for row in itertools.chain(head[at + 1 :], stream):
        if row.line == header:
            # The header repeated: every block starts with it anyway.  Title lines right
            # above it title the table it starts.
            if pending:
                new = [line for _, line in pending]
                kept = _bounded([*kept[: max(0, len(kept) - len(new))], *new])
                blocks.flush(next_start=pending[0][0].number)
                blocks.set_copy([*kept, header])
                pending = []
            continue
        line = _title_line(row, widest)
        if line is not None:
            pending.append((row, line))
            if len(pending) > TITLE_LINES:  # too many for a title: the first is a row
                oldest = pending.pop(0)[0]
                blocks.add(oldest.number, oldest.line)
            continue
        for earlier, _ in pending:  # no header follows them: rows after all
            blocks.add(earlier.number, earlier.line)
        pending = []
        blocks.add(row.number, row.line)
    for row, _ in pending:
        blocks.add(row.number, row.line)
    blocks.flush()
    return blocks.pages


def extracted(
    pages: list[Page],
    kind: FileKind,
    title: str,
    filename: str,
    *,
    page_count: int | None = None,
    warnings: list[str] | None = None,
) -> Extracted:
    """The result of a reader; refuses a file with no text as ``empty``."""
    if not pages:
        raise empty(filename)
    return Extracted(
        pages=pages,
        page_count=page_count if page_count is not None else len(pages),
        media_type=MEDIA_TYPES[kind],
        title=title,
        warnings=warnings or [],
    )
