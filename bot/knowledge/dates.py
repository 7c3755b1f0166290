"""Dates as one fact each: read from an answer or from its sources, and compared.

"March 13, 2020" is held by "March 13, 2020", "13 March 2020" or "3/13/2020", not by
"March 13, 2019" beside "June 12, 2020": each of its numbers is somewhere, the date
is not.  Month names are declared here once; the question reader uses them too.
"""

from __future__ import annotations

import re

# Seen in session 17's calibrate benchmark: the default model dated an order a year
# late ("March 13, 2020"), every number of it in the quotes.
_MONTH_NAMES = (  # noqa: SIM905 (one word list reads better as text)
    "january february march april may june july august september october november december"
).split()
# A month's name, whole or cut to its usual abbreviation ("Sept", "Dec").
MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MONTH = rf"(?P<{{}}>{MONTHS})\.?"
_DATE_FORMS = [
    # March 13, 2020 / March 13 2020 / March 13
    re.compile(
        rf"\b{_MONTH.format('m')}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>\d{{4}})\b)?",
        re.I,
    ),
    # 13 March 2020 / 13 March
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH.format('m')}(?:,?\s+(?P<y>\d{{4}})\b)?",
        re.I,
    ),
]
# Dates written in digits, in the sources only (an answer restating one is checked as
# numbers): 3/13/2020, 13.03.2020, 2020-03-13; day and month may be either way round.
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def _month(name: str) -> int:
    return next(i for i, m in enumerate(_MONTH_NAMES, 1) if m.startswith(name.lower()[:3]))


def named_dates(text: str) -> list[tuple[str, int, int, int | None, str]]:
    """The dates written with a month's name: (as written, month, day, year or None,
    the month's name as written)."""
    found = []
    for form in _DATE_FORMS:
        for m in form.finditer(text):
            day = int(m.group("d"))
            # "may" in lower case is the verb ("3 may apply"), not the month.
            if 1 <= day <= 31 and m.group("m") != "may":
                year = int(m.group("y")) if m.group("y") else None
                month = m.group("m")
                found.append((m.group(0).strip(), _month(month), day, year, month))
    return found


def source_dates(text: str) -> set[tuple[int, int, int | None]]:
    """Every date of the sources as (month, day, year or None), in each reading."""
    dates: set[tuple[int, int, int | None]] = set()
    for _, month, day, year, _ in named_dates(text):
        dates.add((month, day, year))
    for m in _NUMERIC_DATE.finditer(text):
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        year = y + 2000 if y < 100 else y
        dates.update({(a, b, year), (b, a, year)})
    for m in _ISO_DATE.finditer(text):
        dates.add((int(m.group(2)), int(m.group(3)), int(m.group(1))))
    return dates | {(month, day, None) for month, day, _ in dates}


def dates_unsupported(
    stated: list[tuple[str, int, int, int | None, str]], sources: str
) -> list[str]:
    """The dates of ``stated`` (the answer's, ``named_dates``) that no date of the
    sources is."""
    if not stated:
        return []
    known = source_dates(sources)
    return [written for written, month, day, year, _ in stated if (month, day, year) not in known]
