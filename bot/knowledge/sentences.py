"""Cutting a chunk's text into sentences, the unit evidence quotes and scores.

Sentence ends are Latin punctuation followed by a capital, CJK full stops, paragraph
breaks and list items; a period after a common abbreviation, an initial, a list number
("3. Results") or a caption's label ("Figure 2. A map") ends nothing.  A table's rows
(``| cell | cell |``, as the extractors write them) are sentences of their own, and
:func:`table_header` finds the header row they are quoted with.  Run-on "sentences"
(tables flattened by PDF extraction) are cut.
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
    r"(?<=[^.][.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\u00c0-\u024f])"  # Latin
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
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


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


def table_header(text: str) -> str | None:
    """The column names of the table a chunk holds: its first row of three or more
    cells with a word in one (spreadsheet and CSV chunks repeat it at their top)."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if not TABLE_ROW.match(line):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 3 and any(re.search(r"[^\W\d_]", c) for c in cells):
            return line
    return None


def split_sentences(text: str) -> list[str]:
    """The sentences of a chunk's text, each on one line, in order; a table's rows
    ("| cell | cell |" lines) are sentences of their own."""
    out: list[str] = []
    prose: list[str] = []
    for line in text.split("\n"):
        row = " ".join(line.split())
        if TABLE_ROW.match(row):
            if prose:
                out.extend(_prose_sentences("\n".join(prose)))
                prose = []
            out.append(row)
        else:
            prose.append(line)
    if prose:
        out.extend(_prose_sentences("\n".join(prose)))
    return out


def _prose_sentences(text: str) -> list[str]:
    raw = [p for p in _SENTENCE_END.split(text) if p and p.strip()]
    # Re-join splits made after an abbreviation ("e.g. Boeing", "Fig. 3", "U.S. Army").
    merged: list[str] = []
    for piece in raw:
        if merged:
            if _ENUMERATOR.match(merged[-1]):
                merged[-1] = merged[-1].rstrip() + " " + piece.lstrip()
                continue
            last = _LAST_WORD.search(merged[-1].rstrip())
            if last and (
                last.group(1).lower() in _ABBREVIATIONS or len(last.group(1)) == 1  # "J. Smith"
            ):
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
