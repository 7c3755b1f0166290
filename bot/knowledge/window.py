"""How a long run of table cells is quoted: the stretch around the question's words.

A "sentence" this long, with this share of its words holding a digit, is a table
the PDF's text flattened into one run ("… LG NanoH2O El Segundo 48 Layoff Permanent
03/31/2016 10/29/2015 Vishay Siliconix Santa Clara 292 Layoff …", 400 characters and
more, none of it a sentence): it is quoted as the stretch holding the most of the
question's weight, QUOTE_BEFORE characters before one of its words and QUOTE_AFTER
after (a row's values follow its label), cut at spaces, "…" marking each cut.  Chosen
on the calibrate split, where no gold string is lost (tools/calibrate_evidence.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.knowledge.language import fold
from bot.knowledge.sentences import CJK

LONG_QUOTE_CHARS = 320
NUMERIC_SHARE = 0.25
QUOTE_BEFORE = 80
QUOTE_AFTER = 200


def table_window(text: str, anchors: Sequence[tuple[str, float]]) -> str:
    """``text`` itself, or, when it is a long run of table cells (longer than
    LONG_QUOTE_CHARS, NUMERIC_SHARE of its words holding a digit), the stretch that holds the most
    weight of ``anchors`` (word starts, folded, with their weights): QUOTE_BEFORE
    characters before one of them and QUOTE_AFTER after."""
    if len(text) <= LONG_QUOTE_CHARS:
        return text
    tokens = text.split()
    if sum(any(c.isdigit() for c in t) for t in tokens) < NUMERIC_SHARE * len(tokens):
        return text
    folded = fold(text)
    if len(folded) != len(text):  # accents folded away: positions would not line up
        folded = text.lower()
    places: list[tuple[int, str, float]] = []
    for anchor, weight in anchors:
        # At a word's start; Chinese has no word starts to look for.
        edge = "" if CJK.search(anchor) else r"(?<![^\W_])"
        places += [
            (m.start(), anchor, weight) for m in re.finditer(edge + re.escape(anchor), folded)
        ]

    def held(at: int) -> float:
        inside = {a: w for p, a, w in places if at - QUOTE_BEFORE <= p <= at + QUOTE_AFTER}
        return sum(inside.values())

    # Around the weightiest word the text holds (the row's label, "Texas"), not where
    # the commoner ones gather (seen by hand in session 14: "the total number of
    # background checks for Texas" showed the table's "Totals" row).
    at = max((p for p, _, _ in places), key=lambda p: (held(p), -p), default=0)
    start = max(0, at - QUOTE_BEFORE)
    end = min(len(text), at + QUOTE_AFTER)
    if start > 0:
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", at, end)
        end = space if space > at else end
    return ("… " if start > 0 else "") + text[start:end].strip() + (" …" if end < len(text) else "")
