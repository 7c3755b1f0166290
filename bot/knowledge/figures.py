"""Figures as an answer and its sources write them: numbers compared as numbers, and of
which kind (a date, an amount, a share, a count).

"$3,400", "3,400" and "3400" are one number, "3.40" another; "seven" is 7.  A figure
the quote that best answers a question does not give, when it gives others of that
kind, is a rival of that quote's (``rivals_best``).
"""

from __future__ import annotations

import re

from bot.knowledge.dates import named_dates, source_dates

# A number as written: optional currency, digits with optional thousands separators,
# optional decimals, optional percent.
# Never the start of a longer number: "1.4M" holds no number 1 (seen in session 9's
# benchmark: it vouched for the answer "1" to "how many PDFs was it trained on?").
# A Chinese character beside it is no part of it: Chinese writes numbers against its
# words ("第12部分", "10年前"), and such numbers went unchecked (seen in session 13's
# Chinese benchmark: "10年前，20xx-xx-xx发布" was posted for a date no quote gives).
HAN = "\u3400-\u4dbf\u4e00-\u9fff"  # Chinese characters (CJK Unified Ideographs, Ext. A)
_LETTER_NOT_HAN = rf"[^\W{HAN}]"
# A number's scale is part of it: "3 billion ducks" states no 3 (seen by hand in session
# 22: "How many ducks are slaughtered each year?" -- "The answer is: 3." of "Approximately
# 3 billion ducks are slaughtered each year", posted as checked), and "1.5 million" is
# 1,500,000 as the sources may write it.  The word's value, declared once.
SCALES: dict[str, int] = {
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
    "万": 10**4,
    "亿": 10**8,
}
_SCALE_WORDS = "|".join(w for w in SCALES if w.isascii())
_SCALE_HAN = "".join(w for w in SCALES if not w.isascii())
NUMBER = re.compile(
    rf"(?<!{_LETTER_NOT_HAN})(?<!\.)[$€£¥]?(\d{{1,3}}(?:,\d{{3}})+|\d+)(\.\d+)?"
    rf"(?:\s?%|\s+(?P<scale>(?i:{_SCALE_WORDS}))\b|(?P<han>[{_SCALE_HAN}]))?"
    rf"(?!{_LETTER_NOT_HAN}|\.\d)"
)

# Numbers written as words are numbers too: "two types of agents" states a quantity as
# "2 types" does, and the sources may write either form.  "one" is left out: it is
# mostly a pronoun or a determiner ("one of the", "one important step"), no count.
_UNITS = (  # noqa: SIM905 (one word list reads better as text)
    "zero two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen"
).split()
_SMALL = {w: (0 if w == "zero" else i + 1) for i, w in enumerate(_UNITS)}
_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())  # noqa: SIM905
}
_DIGIT_WORDS = {**{w: n for w, n in _SMALL.items() if n < 10}, "one": 1}
_SPELLED = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:[\s-]({'|'.join(_DIGIT_WORDS)}))?|({'|'.join(_SMALL)}))\b",
    re.I,
)


def spelled_to_digits(text: str) -> str:
    """``text`` with its numbers written as words in digits ("twenty-five" -> "25")."""

    def digits(m: re.Match[str]) -> str:
        if m.group(3):
            return str(_SMALL[m.group(3).lower()])
        tens = _TENS[m.group(1).lower()]
        return str(tens + (_DIGIT_WORDS[m.group(2).lower()] if m.group(2) else 0))

    return _SPELLED.sub(digits, text)


def number_key(integer: str, decimals: str | None, scale: str | None = None) -> str:
    """A number's value as text: no separators, no trailing decimal zeros; times its
    ``scale`` word ("million") when it has one."""
    digits = integer.replace(",", "").lstrip("0") or "0"
    frac = decimals[1:].rstrip("0") if decimals else ""
    if scale:
        factor = SCALES[scale.lower()]
        places = len(frac)
        value = int(digits + frac) * factor
        if places:
            whole, rest = divmod(value, 10**places)
            frac = f"{rest:0{places}d}".rstrip("0")
            value = whole
        digits = str(value)
    return f"{digits}.{frac}" if frac else digits


def match_key(m: re.Match[str]) -> str:
    """The comparable key of a match of NUMBER."""
    return number_key(m.group(1), m.group(2), m.group("scale") or m.group("han"))


def numbers(text: str) -> set[str]:
    """Every number in the text, as comparable keys."""
    return {match_key(m) for m in NUMBER.finditer(text)}


# Why an answer whose figure is not the best quote's, when that quote gives one of the
# same kind, fails: the reply would state one figure above a quote giving another, and
# the reader could not tell which is right.  Seen in the report benchmark: "The answer
# is: 84.2" (a table's cell) above "SPECTER achieves a MAP score of ... 84.5 on coread";
# "$7,650" above "Up to $6,715".
RIVAL = "{figure} (the best quote gives {given})"


# A number that points elsewhere, not a figure stated: "(§5)", "Table 3", "Page 1 of
# 205" (the a015 of session 17's calibrate benchmark: "4,113 clicks" was no rival of
# "(§5)").
_REFERENCE = re.compile(
    r"(?:§|\b(?:sections?|sec\.|tables?|fig\.|figures?|pages?|pp?\.|chapters?|eq\.|"
    r"equations?|footnotes?|appendix|step)\s?|\bpages?\s?\d+\s+of\s+)$",
    re.I,
)


def figures(text: str) -> dict[str, dict[object, str]]:
    """The figures of ``text`` by kind, each as {comparable key: as written}: "date" (as
    (month, day, year), numeric forms too), "amount" ($3,400), "share" (46.5%) and
    "number" (any other)."""
    found: dict[str, dict[object, str]] = {"date": {}, "amount": {}, "share": {}, "number": {}}
    for written, month, day, year, _ in named_dates(text):
        found["date"][(month, day, year)] = written
        text = text.replace(written, " ")
    for key in source_dates(text) - set(found["date"]):
        found["date"].setdefault(key, "/".join(str(p) for p in key if p is not None))
    for m in NUMBER.finditer(text):
        if _REFERENCE.search(text, 0, m.start()):
            continue
        written = m.group(0).strip()
        kind = "amount" if written[0] in "$€£¥" else "share" if written.endswith("%") else "number"
        found[kind].setdefault(match_key(m), written)
    return found


def rivals_best(answer: str, best: str, sources: str, question: str) -> list[str]:
    """The answer's figures (its citation markers and list numbers taken out), not the
    question's, that the best quote does not give while
    it gives others of their kind (a date for a date, an amount for an amount ...).  A
    figure no source gives is left to the other rules, which say so."""
    asked = figures(question)
    given = figures(best)
    held = {key for kind in given.values() for key in kind}
    quoted = {key for kind in figures(sources).values() for key in kind}
    rivals = []
    for kind, stated in figures(answer).items():
        others = {k: w for k, w in given[kind].items() if k not in asked[kind]}
        for key, written in stated.items():
            if others and key in quoted and key not in asked[kind] and key not in held:
                rivals.append(RIVAL.format(figure=written, given=", ".join(others.values())))
    return rivals
