"""Questions asking what an abbreviation stands for ("What does NICS stand for?").

Such a question has one content word, the short form, and the documents write it in
many sentences; the one that answers is the one that spells it out, which is often
not the best match for the question's words.  Seen by hand in session 15: "What does
AOA stand for?" quoted "the standing report among Western boys" (a Civil War diary:
"stand" matched "standing") above "The angle of attack (or AOA) is ..."; "What does
NICS stand for?", asked of a table that never spells it out, was answered with the
table's disclaimers.  So the answer is the sentence that defines the short form, found
by rule (``spelled_out``), or "not found" when no retrieved text defines it.

A definition is read in the forms documents use:

* the long form, then the short one in parentheses: "angle of attack (AOA)" (the
  Schwartz–Hearst rule, ``bot.knowledge.acronyms``);
* the short form, then the long one: "SPECTER: Scientific Paper Embeddings using
  Citation-informed TransformERs", "LRS (Linear Reference System)", and a list of
  abbreviations ("LRM Linear Reference Method"): the long form's capitals, or its
  words' initials (small words aside), spell the short form;
* in Chinese, the long form in Chinese words: "国家核安全局（NNSA）", or a list of
  abbreviations, "PSR 定期安全评价 NNSA 国家核安全局".

"What is AOA?" (a short form asked about alone) is answered by its definition too,
followed by what else the evidence step finds about it; when nothing spells it out,
it is an ordinary question.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from bot.knowledge.acronyms import long_form_before
from bot.knowledge.quotes import Evidence, Quote
from bot.knowledge.sentences import split_sentences
from bot.store.records import ChunkHit

# How many chunks writing the short form are read for its definition when the
# retrieved ones hold none: a document spells a short form out once, at its first use,
# and the keyword search ranks that chunk no higher than any other writing it.
DEFINITION_CHUNKS = 30

# A short form: letters and digits, two capitals or more ("AOA", "SPECTER", "NHNC1").
_SHORT = r"(?P<x>[A-Za-z][A-Za-z0-9&]{1,11})"
# Each way of asking, and whether it takes a word in any case for a short form
# ("what does aoa stand for", typed in a hurry) or only one with two capitals or more
# ("What does the author mean?" asks no such thing).
_ASKED = [
    (re.compile(p, re.I), any_case)
    for p, any_case in (
        (
            rf"\bwhat (?:does|do|did) (?:the )?(?:abbreviation |acronym |initialism |name |term )?"
            rf"[\"“'‘]?{_SHORT}[\"”'’]? (?:stands?|stood) for\b",
            True,
        ),
        (
            rf"\bwhat (?:is|was) (?:the )?(?:abbreviation |acronym |name )?[\"“'‘]?{_SHORT}"
            r"[\"”'’]? (?:short|an abbreviation|an acronym) for\b",
            True,
        ),
        (
            rf"\b(?:full|long|expanded) (?:form|name) of (?:the )?(?:abbreviation |acronym )?"
            rf"[\"“'‘]?{_SHORT}\b",
            False,
        ),
        (
            rf"\bwhat (?:does|do) (?:the )?(?:abbreviation|acronym) [\"“'‘]?{_SHORT}[\"”'’]? "
            r"mean\b",
            False,
        ),
        (
            rf"\bwhat (?:is|does) (?:the )?(?:abbreviation |acronym )?[\"“'‘]?{_SHORT}[\"”'’]? "
            r"(?:abbreviate|stand for|mean)\b",
            False,
        ),
        (
            rf"{_SHORT}\s*(?:是什么的缩写|是哪些?词的缩写|代表什么|的全称是什么|的全称|全称是什么)",
            True,
        ),
    )
]
# Words a long form leaves out of its initials ("Department of Justice": DOJ).
_SMALL = frozenset(
    {"of", "and", "the", "for", "in", "on", "to", "a", "an", "at", "by", "with", "using"}
    | {"via", "from", "de", "du", "des", "la", "le", "et", "und", "der"}
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
# What may stand between a short form and the long form after it.
_BETWEEN = re.compile(r"\s*(?:[:=(,–—-]|\bis\b|\bmeans\b|\bstands for\b)?\s*(?:the\s+|an?\s+)?")


def asked_short_form(question: str) -> str | None:
    """The short form a question asks the meaning of ("What does AOA stand for?" ->
    "AOA"), or None."""
    for pattern, any_case in _ASKED:
        m = pattern.search(question)
        if m and (any_case or sum(c.isupper() for c in m.group("x")) >= 2):
            return m.group("x")
    return None


# "What is AOA?", "what's an AMOC", "AOA是什么": a short form asked about alone.
_WHAT_IS = [
    re.compile(
        rf"^\s*(?:what(?:'s| is| are)|what does)\s+(?:an?\s+|the\s+)?[\"“'‘]?{_SHORT}s?[\"”'’]?"
        r"(?:\s+mean)?\s*[?.!]?\s*$",
        re.I,
    ),
    re.compile(rf"^\s*{_SHORT}\s*(?:是什么|是什么意思|指什么)\s*[？?。]?\s*$"),
]


def _singular(short: str) -> str:
    """ "AMOCs" -> "AMOC": a plural's "s" after capitals is no letter of the short form."""
    if len(short) > 2 and short[-1] == "s" and short[:-1].isupper():
        return short[:-1]
    return short


def asked_what_is(question: str) -> str | None:
    """The short form a question asks about and nothing else ("What is MCAS?" ->
    "MCAS"), with two capitals or more; None otherwise.  Its definition answers first,
    beside what else the documents say of it."""
    for pattern in _WHAT_IS:
        m = pattern.match(question)
        if m and sum(c.isupper() for c in m.group("x")) >= 2:
            return m.group("x")
    return None


def with_more(defined: Evidence, weighed: Evidence, most: int = 3) -> Evidence:
    """The definition's evidence with the other quotes the evidence step chose (``most``
    in all), each sentence once."""
    first = defined.quotes[0].text
    more = [q for q in weighed.quotes if q.text not in first and first not in q.text]
    return replace(defined, quotes=[defined.quotes[0], *more][:most], ms=weighed.ms)


def _spells(short: str, words: list[str]) -> bool:
    """Whether ``words`` spell ``short``: their capitals in order, or their initials
    (small words aside; each part of a hyphenated word counts; a number counts as its
    digits, and the word that names it may be left out: "NHNC1", "National Hydro
    Network, Canada, Level 1", seen by hand in session 15)."""
    target = short.upper()
    capitals = "".join(c for w in words for c in w if c.isupper())
    if capitals == target and len(words) >= 2:
        return True
    if _initials(words) == target:
        return True
    if short != target and _letters(short, [w.lower() for w in words]):
        return True
    return any(c.isdigit() for c in target) and any(
        w.isdigit() and _initials(words[: i - 1] + words[i:]) == target
        for i, w in enumerate(words)
        if i > 0
    )


def _letters(short: str, words: list[str]) -> bool:
    """Whether ``words`` (lowercased) spell a short form written in mixed case, each
    word in turn: a capital opens a word, a small letter goes on with it ("NRCan":
    "Natural Resources Canada") or opens a small word ("IoT": "Internet of Things"),
    which may also give no letter ("MSc": "Master of Science")."""
    if not short:
        return not words
    if not words:
        return False
    word, rest = words[0], words[1:]
    if word in _SMALL and (
        _letters(short, rest) or (short[0] == word[0] and _letters(short[1:], rest))
    ):
        return True
    if short[0].isupper() and word[0] == short[0].lower():
        # The word's first letters, as many as the small letters after the capital.
        taken = 1
        while (
            taken < len(short)
            and short[taken].islower()
            and word[: taken + 1] == (short[: taken + 1].lower())
        ):
            if _letters(short[taken + 1 :], rest):
                return True
            taken += 1
        return _letters(short[1:], rest)
    return False


def _initials(words: list[str]) -> str:
    return "".join(w if w.isdigit() else w[0].upper() for w in words if w.lower() not in _SMALL)


def _long_form_after(short: str, after: str) -> str | None:
    """The long form that follows a short form ("SPECTER: Scientific Paper Embeddings
    ..."): the fewest words (two at least) that spell it, or None."""
    m = _BETWEEN.match(after)
    rest = after[m.end() :] if m else after
    spans = [(w.start(), w.end()) for w in _WORD.finditer(rest)][: len(short) + 4]
    for n in range(2, len(spans) + 1):
        text = rest[spans[0][0] : spans[n - 1][1]]
        if "\n\n" in text:
            return None
        whole = _WORD.findall(text)
        if any(short.upper() in w.upper() for w in whole):
            return None  # "this AD replaces AD 2018-23-51": the short form again
        words = [p for w in whole for p in re.split(r"[-\u2010\u2011]", w) if p]
        if _spells(short, words):
            return text
    return None


# Chinese spells a short form out in its own words: "国家核安全局（NNSA）", or, in a
# list of abbreviations, "PSR 定期安全评价 NNSA 国家核安全局 SF 安全要素" (seen in the
# Chinese set: "缩略语NNSA代表什么机构？").  A run of CJK characters, cut at a particle
# before it ("由国家核安全局（NNSA）": "国家核安全局").
_CJK_RUN = r"[\u4e00-\u9fff][\u4e00-\u9fff·、]{1,19}"
_CJK_BEFORE = re.compile(r"((?:(?![的了是在和与及由对从为于以])[\u4e00-\u9fff·]){2,20})\s*$")
_CJK_AFTER = re.compile(rf"^\s*[:：]?\s*({_CJK_RUN})(?![\u4e00-\u9fff])")
# A list of abbreviations: short forms in capitals, each followed by its Chinese name.
_CJK_LIST = re.compile(rf"(?:\b[A-Z][A-Za-z0-9&]{{1,11}}\s*{_CJK_RUN}\s*){{2,}}")


def spelled_out(short: str, text: str) -> tuple[str, str] | None:
    """(the long form, the sentence of ``text`` that spells ``short`` out), or None
    when the text does not define it."""
    escaped = re.escape(short)
    for sentence in split_sentences(text):
        # The text's own spelling: "aoa" asked, "AOA" written.
        for m in re.finditer(rf"[(（]\s*(?:or\s+)?({escaped})s?\s*[)）]", sentence, re.I):
            before = sentence[: m.start()]
            long = long_form_before(m.group(1), before)
            cjk = _CJK_BEFORE.search(before)
            if long or cjk:
                return long or cjk.group(1), sentence  # type: ignore[union-attr]
        in_list = bool(_CJK_LIST.search(sentence))
        for m in _occurrences(short, sentence) if in_list else []:
            cjk = _CJK_AFTER.match(sentence[m.end() :])
            if cjk:
                return cjk.group(1), sentence
        for m in _occurrences(short, sentence):
            long = _long_form_after(m.group("w"), sentence[m.end() :])
            if long:
                return long, sentence
    return None


def _occurrences(short: str, text: str) -> list[re.Match[str]]:
    """Where ``text`` writes the short form as a word, as asked or in capitals ("aoa"
    asked: a lowercase "aoa" in the text would be another word).  A footnote's number
    may be glued before it ("2SPECTER: Scientific ..."), and a plural's "s" after it
    ("AMOCs"); the match's group "w" is the short form as written."""
    return [
        m
        for m in re.finditer(
            rf"(?<![^\W\d_]|-)(?P<w>{re.escape(short)})(?:s|['’]s)?(?![\w-])", text, re.I
        )
        if m.group("w") == short or sum(c.isupper() for c in m.group("w")) >= 2
    ]


def mentions(short: str, text: str) -> bool:
    """Whether ``text`` writes the short form (as asked, or in capitals)."""
    return bool(_occurrences(short, text))


@dataclass(frozen=True)
class Defined:
    """What the documents say a short form stands for: the evidence (the sentence that
    spells it out, or none: "not found") and the long form, as the text writes it."""

    evidence: Evidence
    long: str | None = None


async def definition_evidence(
    short: str,
    candidates: Sequence[ChunkHit],
    search: Callable[[str, int], Awaitable[list[ChunkHit]]],
    document_id: int | None = None,
) -> Defined | None:
    """The evidence for "what does ``short`` stand for?": the sentence that spells it
    out, from the retrieved ``candidates`` or else from the chunks the keyword
    ``search`` finds writing it (of ``document_id`` only, when the question names a
    document); "not found" when they write it but none spells it out, with the short
    form as what was searched, or as missing when no document writes it.  None when
    the question is not about an abbreviation after all: a lowercase word ("what does
    the flag stand for?") that no document writes in capitals."""
    asked, short = short, _singular(short)  # "AMOCs" asked: "AMOC (AMOCs)" written
    found = [c for c in candidates if mentions(short, c.text)]
    for hit in found:
        spelled = spelled_out(short, hit.text)
        if spelled:
            return _defined(hit, short, *spelled)
    more = [
        h
        for h in await search(short, DEFINITION_CHUNKS)
        if (document_id is None or h.document_id == document_id) and mentions(short, h.text)
    ]
    # The best-ranked document first, and its earliest chunk first (chunks are stored
    # in reading order): a definition comes at a short form's first use.
    first = {h.document_id: i for i, h in reversed(list(enumerate(more)))}
    for hit in sorted(more, key=lambda h: (first[h.document_id], h.chunk_id)):
        spelled = spelled_out(short, hit.text)
        if spelled:
            return _defined(hit, short, *spelled)
    if not found and not more:
        if sum(c.isupper() for c in short) < 2:
            return None
        return Defined(Evidence([], 0.0, 0.0, False, 0.0, [asked], [asked]))
    return Defined(Evidence([], 0.0, 0.0, False, 0.0, [], [asked]))


# Characters quoted on each side of a long form found in a long sentence (a title page's
# header block reads as one sentence: "... Federal Aviation Administration (FAA), DOT.").
AROUND = 120


def _defined(hit: ChunkHit, short: str, long: str, sentence: str) -> Defined:
    """The evidence of a definition: its sentence, or the stretch of it around the long
    form when the sentence is long (the long form nearest the short one: a header block
    may name "Federal Aviation Administration" before "Federal Aviation Administration
    (FAA)")."""
    shorts = [m.start() for m in _occurrences(short, sentence)] or [0]
    longs = [m.start() for m in re.finditer(re.escape(long), sentence)] or [-1]
    at = min(longs, key=lambda i: min(abs(i - j) for j in shorts))
    if len(sentence) > 3 * AROUND and at >= 0:
        start = sentence.rfind(" ", 0, max(0, at - AROUND)) + 1
        end = sentence.find(" ", at + len(long) + AROUND)
        end = len(sentence) if end < 0 else end
        tail = " …" if end < len(sentence) else ""
        sentence = ("… " if start else "") + sentence[start:end] + tail
    # Decided by rule, like a document's opening for "what is X about?": full coverage
    # and similarity, so no threshold undoes it (tools/calibrate_evidence.py re-applies
    # the thresholds to the figures).
    quote = Quote(sentence, hit, 1.0, hit.similarity or 0.0)
    return Defined(Evidence([quote], 1.0, 1.0, True, 1.0), long)
