"""Cutting a chunk's text into sentences, the unit evidence quotes and scores.

Sentence ends are Latin punctuation followed by a capital, CJK full stops, paragraph
breaks and list items; a period after a common abbreviation, an initial, a list number
("3. Results") or a caption's label ("Figure 2. A map") ends nothing.  A table's rows
(``| cell | cell |``, as the extractors write them) are sentences of their own, and
:func:`table_header` finds the header row (with the table's title, if any) they are
quoted with; a one-cell row (a title line, a footnote) is a sentence of text.  Run-on
"sentences" (tables flattened by PDF extraction) are cut.
"""

from __future__ import annotations

import re

# A "sentence" longer than this (a table flattened by PDF extraction) is cut in pieces.
MAX_SENTENCE_CHARS = 400
MIN_SENTENCE_CHARS = 12

# Sentence ends: . ! ? followed by space and a capital, digit, quote or bracket; CJK
# full stops anywhere; line breaks that end a line without joining punctuation.
_SENTENCE_END = re.compile(
    # (not after a run of dots: "Test ........ 40 hours" is a table's leader)
    # (a footnote's mark may open one: "... 73,364. *Other (firearms ...)")
    r"(?<=[^.][.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\u00c0-\u024f]|[*\u2020\u2021]+[A-Za-z])"
    r"|(?<=[\u3002\uff01\uff1f\uff1b])"  # 。！？；
    r"|\n\s*\n"  # paragraph break
    r"|\n(?=\s*(?:[-*\u2022\u25cf]|\d+[.)])\s)"  # a list item starts
)
# Abbreviations a period does not end a sentence after.
_ABBREVIATIONS = {
    "e.g",
    "i.e",
    "etc",
    "et al",
    "fig",
    "figs",
    "no",
    "nos",
    "vol",
    "pp",
    "p",
    "dr",
    "mr",
    "mrs",
    "ms",
    "st",
    "inc",
    "ltd",
    "co",
    "corp",
    "u.s",
    "vs",
    "sec",
    "eq",
    "ref",
    "approx",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")
# A piece that is only a list or heading number ("3.", "4.2.", "IV.", "(b)") or a
# caption's label ("Figure 7-27.", "Table 2:"): the period after it ends no sentence,
# it opens the heading, item or caption that follows ("3. Période de question du
# public", "Figure 7-27. Stainless steel self-locking nut").
_ENUMERATOR = re.compile(
    r"^\s*(?:\(?(?:\d{1,3}(?:\.\d{1,3})*|[ivxlIVXL]{1,5}|[a-zA-Z])[.)]|\(\w{1,3}\)"
    r"|(?:Table|Figure|Fig\.|Chart|Exhibit|Plate|Tableau|Abbildung|Tabelle)\s+[\dA-Z][\w.\-]*[.:])\s*$"
)
# Chinese, Japanese and Korean characters (kana, CJK ideographs, Hangul), as a class body.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
CJK = re.compile(f"[{CJK_CHARS}]")


def is_cjk(text: str) -> bool:
    """Whether the text is mostly Chinese/Japanese/Korean (a third of its letters or more)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    return sum(1 for ch in letters if CJK.match(ch)) * 3 >= len(letters)


def _tidy(text: str) -> str:
    """One line: PDF line breaks joined, words hyphenated across lines rejoined."""
    text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", text)
    return " ".join(text.split())


def _cut_long(sentence: str) -> list[str]:
    """A run-on "sentence" (a flattened table, a list) cut at ; or spaces."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    pieces: list[str] = []
    rest = sentence
    while len(rest) > MAX_SENTENCE_CHARS:
        window = rest[:MAX_SENTENCE_CHARS]
        cut = max(window.rfind("; "), window.rfind(": "))
        if cut < MAX_SENTENCE_CHARS // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = MAX_SENTENCE_CHARS
        pieces.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    if rest:
        pieces.append(rest)
    return pieces


# A table row as the extractors write them: "| cell | cell |".
TABLE_ROW = re.compile(r"^\|.*\|$")
# Between a row and the header it is quoted with: "| Year | Sales | … | 2021 | 150 |".
AFTER_HEADER = " … "


# A table's header has this many cells or more (fewer: a form's line, a title row).
HEADER_CELLS = 3


def row_cells(row: str) -> list[str]:
    """The cells of a table row written "| a | b |"."""
    return [c.strip() for c in row.strip().strip("|").split("|")]


# A row of one cell, "| In millions of CHF, January–June 2023 |": a line of text set in a
# table (a sheet's title lines, a footnote, a merged title row), not a row of values.
ONE_CELL_ROW = re.compile(r"^\|([^|]*)\|$")
# The title a table's header (and so each row) is quoted with is cut to about one line.
TITLE_QUOTE_CHARS = 80


# A two-column table's header names its columns in a few words each ("| Code | Error |").
_NAME_CELL = re.compile(r"^[^\W\d_][^\d|]{0,40}$")


def _heads(lines: list[str], i: int) -> bool:
    """Whether line ``i`` is a table's header: a row of HEADER_CELLS cells or more with a
    word in one; or of two names without a digit (a code and its name, a term and its
    value) over a row of two cells holding one.  Seen by hand in session 21: "What exit
    code does pandoc return for a PandocTemplateError?" quoted "| 5 |
    PandocTemplateError |" without "| Code | Error |", a number a reader cannot place.
    A form's line holds a digit itself ("| Nevada (State of incorporation) |
    20-8143439 |")."""
    if not TABLE_ROW.match(lines[i]):
        return False
    cells = row_cells(lines[i])
    if len(cells) >= HEADER_CELLS:
        return any(re.search(r"[^\W\d_]", c) for c in cells)
    if len(cells) != 2 or not all(_NAME_CELL.match(c) for c in cells):
        return False
    below = next((line for line in lines[i + 1 :] if line), "")
    return (
        bool(TABLE_ROW.match(below))
        and len(row_cells(below)) == 2
        and any(re.search(r"\d", c) for c in row_cells(below))
    )


def _table_head(lines: list[str]) -> tuple[int, set[int], str] | None:
    """The header of the table in ``lines`` (each white space collapsed): its index, the
    indexes of the one-cell rows right above it taken as its title, and the header as
    it is quoted, "<title>: | a | b | c |"; None when the lines hold no header."""
    at = next((i for i, line in enumerate(lines) if _heads(lines, i)), None)
    if at is None:
        return None
    # A sheet's blocks repeat its title lines right above the header ("Revenue and
    # results", "In millions of CHF, January–June 2023"): a row far down the sheet is
    # quoted with its period and unit.  The nearest lines are kept, the unit and period
    # being written there.
    title: list[str] = []
    taken: set[int] = set()
    for i in range(at - 1, -1, -1):
        if not lines[i]:
            continue  # the chunker sets a table's rows apart with blank lines
        one = ONE_CELL_ROW.match(lines[i])
        if one is None:
            break
        cell = one.group(1).strip()
        if title and len(cell) + sum(len(t) + 3 for t in title) > TITLE_QUOTE_CHARS:
            break
        title.insert(0, cell)
        taken.add(i)
    if not title:
        return at, taken, lines[at]
    named = " — ".join(title)
    if len(named) > TITLE_QUOTE_CHARS:  # one line longer than that: cut at a word
        named = named[: TITLE_QUOTE_CHARS - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return at, taken, f"{named}: {lines[at]}"


def table_header(text: str) -> str | None:
    """The column names a chunk's table rows are quoted with: its first row of three or
    more cells with a word in one (spreadsheet and CSV chunks repeat it at their top),
    after the table's title when one-cell rows right above it give one ("In millions
    of CHF, January–June 2023: | | Sales | … |").  :func:`split_sentences` gives the
    header row as this very sentence, the title rows in it not again."""
    head = _table_head([" ".join(line.split()) for line in text.split("\n")])
    return head[2] if head else None


def split_sentences(text: str) -> list[str]:
    """The sentences of a chunk's text, each on one line, in order; a table's rows
    ("| cell | cell |" lines) are sentences of their own, the header with its title
    (see :func:`table_header`), a one-cell row as its text."""
    out: list[str] = []
    prose: list[str] = []
    raw = text.split("\n")
    rows = [" ".join(line.split()) for line in raw]
    head = _table_head(rows)
    for i, (line, row) in enumerate(zip(raw, rows, strict=True)):
        if TABLE_ROW.match(row):
            if prose:
                out.extend(_prose_sentences("\n".join(prose)))
                prose = []
            one = ONE_CELL_ROW.match(row)
            if head and i == head[0]:
                out.append(head[2])
            elif head and i in head[1]:
                continue  # a title row: quoted in the header's sentence
            elif one is None:
                out.append(row)
            elif one.group(1).strip():
                out.append(one.group(1).strip())
        else:
            prose.append(line)
    if prose:
        out.extend(_prose_sentences("\n".join(prose)))
    return out


def period_ends_no_sentence(text: str) -> bool:
    """Whether ``text`` ends with a period that ends no sentence: after a common
    abbreviation ("e.g.", "Fig.", "U.S.") or an initial ("J. Smith")."""
    last = _LAST_WORD.search(text.rstrip())
    return bool(last) and (last.group(1).lower() in _ABBREVIATIONS or len(last.group(1)) == 1)


def _prose_sentences(text: str) -> list[str]:
    raw = [p for p in _SENTENCE_END.split(text) if p and p.strip()]
    # Re-join splits made after an abbreviation ("e.g. Boeing", "Fig. 3", "U.S. Army").
    merged: list[str] = []
    for piece in raw:
        if merged:
            if _ENUMERATOR.match(merged[-1]):
                merged[-1] = merged[-1].rstrip() + " " + piece.lstrip()
                continue
            if period_ends_no_sentence(merged[-1]):
                merged[-1] = merged[-1].rstrip() + " " + piece.lstrip()
                continue
        merged.append(piece)
    out: list[str] = []
    for piece in merged:
        tidy = _tidy(piece)
        if len(tidy) < MIN_SENTENCE_CHARS and not any(ch.isdigit() for ch in tidy):
            continue
        out.extend(_cut_long(tidy))
    return out
