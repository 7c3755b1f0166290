"""A PDF's running heads and feet ("52 THE SIEGE OF VICKSBURG.", "47712 Federal Register
/ Vol. 85, No. 152 / Thursday, August 6, 2020 / Proposed Rules"), kept once.

Printed pages repeat a line at their top or bottom with the page's number in it.  In the
text every page's chunk then holds it: it is quoted as if it were part of the passage,
and its number passes the answer check as a number the quotes hold (seen in session 13:
"With how many men was Johnston rumored to be coming?" was answered "52", the page
header of "52 THE SIEGE OF VICKSBURG.").  Such a line is kept where it first appears (a
header may say something once, "Edition 1.0") and dropped from the pages after.

A line is a running one when it is among the first or last :data:`EDGE_LINES` lines of
a page, holds a number, is at most :data:`MAX_CHARS` long, and a line alike (the same
once numbers are ignored, or nearly: OCR misreads "VICKSBURG" as "VICKSBUEG") sits at
the edge of at least :data:`MIN_SHARE` of the pages, and of :data:`MIN_PAGES` or more,
with a number that grows from page to page (the page's number).  A table's column
header repeated on each page holds no number, and a row or a date at a page's edge
("03/08/2016" in a WARN report) does not grow with the pages: both are kept.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

EDGE_LINES = 2
MAX_CHARS = 120
MIN_PAGES = 3
MIN_SHARE = 0.5
# How alike two lines must be, digits aside, to be one running line (difflib's ratio).
ALIKE = 0.85

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def _key(line: str) -> str:
    return _SPACES.sub(" ", _DIGITS.sub("#", line.lower())).strip()


def _edges(lines: list[str]) -> list[int]:
    """The indexes of a page's first and last EDGE_LINES non-empty lines."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:EDGE_LINES] + filled[-EDGE_LINES:]))


def _candidate(line: str) -> bool:
    """A line that may be a running one: short, with a number, and, without letters, a
    page number alone ("12", "- 12 -"; a date or a row of figures is data)."""
    stripped = line.strip()
    if not 0 < len(stripped) <= MAX_CHARS or not any(ch.isdigit() for ch in stripped):
        return False
    return any(ch.isalpha() for ch in stripped) or len(_DIGITS.findall(stripped)) == 1


def _counts(numbers: dict[int, list[int]]) -> bool:
    """Whether one of the lines' numbers grows with the page (a page number): the j-th
    number of each line, in page order, strictly increasing."""
    rows = [numbers[p] for p in sorted(numbers)]
    width = min(len(row) for row in rows)
    return any(all(a[j] < b[j] for a, b in zip(rows, rows[1:], strict=False)) for j in range(width))


def without_running_lines(texts: Sequence[str]) -> list[str]:
    """The pages' texts with each running head or foot kept on its first page only."""
    if len(texts) < MIN_PAGES:
        return list(texts)
    pages = [text.split("\n") for text in texts]
    groups: list[str] = []  # one key per running-line candidate group
    seen_on: list[set[int]] = []
    numbers: list[dict[int, list[int]]] = []  # per group: page -> the line's numbers
    where: dict[tuple[int, int], int] = {}  # (page, line) -> group
    for p, lines in enumerate(pages):
        for i in _edges(lines):
            if not _candidate(lines[i]):
                continue
            key = _key(lines[i])
            group = next(
                (
                    g
                    for g, known in enumerate(groups)
                    if known == key or difflib.SequenceMatcher(None, known, key).ratio() >= ALIKE
                ),
                None,
            )
            if group is None:
                groups.append(key)
                seen_on.append(set())
                numbers.append({})
                group = len(groups) - 1
            seen_on[group].add(p)
            numbers[group].setdefault(p, [int(n) for n in _DIGITS.findall(lines[i])])
            where[(p, i)] = group
    running = {
        g
        for g, on in enumerate(seen_on)
        if len(on) >= MIN_PAGES and len(on) >= MIN_SHARE * len(pages) and _counts(numbers[g])
    }
    if not running:
        return list(texts)
    first = {g: min(seen_on[g]) for g in running}
    out: list[str] = []
    for p, lines in enumerate(pages):
        dropped = {i for (q, i), g in where.items() if q == p and g in running and first[g] != p}
        out.append("\n".join(line for i, line in enumerate(lines) if i not in dropped))
    return out
