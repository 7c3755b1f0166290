"""What a question asks: its frame words, its content words, the type of its answer.

The evidence step (``bot.knowledge.evidence``) weighs a question's content terms and
names them when nothing covers them; this module reads the question itself, before
any document is looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.knowledge.dates import MONTHS
from bot.knowledge.language import fold
from bot.knowledge.sentences import CJK

# Politeness around a request, which asks nothing of its own: "Can you summarize X?",
# "Could you please list the files?", "Please summarize X.", "请总结…", "… please?".
_POLITE_OPENING = re.compile(
    r"^\s*(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|please\s+|pls\s+|请)+", re.I
)
_POLITE_CLOSING = re.compile(r"[\s,]+(?:please|pls)(?=\W*$)", re.I)


def without_politeness(text: str) -> str:
    """``text`` without the politeness that opens or closes it ("can you list the files,
    please?" -> "list the files?"): what is left is the request itself."""
    return _POLITE_CLOSING.sub("", _POLITE_OPENING.sub("", text, count=1), count=1)


# A sentence holding what the question asks for (a number for "how many", a name for
# "who") gets this much more: the answer's type is half of what makes a sentence answer.
TYPE_BONUS = 0.15
_ASKS_NUMBER = re.compile(
    r"\b(?:how (?:many|much|long|old|far|often|large|big)|what (?:percentage|percent|number|"
    r"amount|year|date|time|day|month|price|cost|size|total)|when|in which year|多少|几)\b",
    re.I,
)
_ASKS_NAME = re.compile(r"\b(?:who|whom|whose|which (?:company|person|organi[sz]ation))\b|谁", re.I)
_HAS_NUMBER = re.compile(r"\d")
_HAS_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+")


# Finer kinds of number: a question that asks for one of them wants a sentence holding
# that kind, not any number ("at what time was the meeting closed?" is answered by "la
# séance est levée à 16h05", not by "Résolution DM-2023-001"). (question, sentence)
# ("may" is a month only beside a number: "You may copy it" holds no date; seen by hand
# in session 17, it was quoted as an e-book's publication date.)
_MONTHS = MONTHS.replace("|may|", r"|may(?=\s+\d)|(?<=\d\s)may|")
# A date or a year: 7 juin 2023, April 10, 2020, 11/04/14.
_ASKS_DATE = re.compile(r"^\s*when\b|\b(?:what|which) (?:date|day|year|month)\b", re.I)
_HOLDS_DATE = re.compile(
    rf"\b(?:1[5-9]|20)\d{{2}}\b|\b\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}\b|\b(?:{_MONTHS})\b",
    re.I,
)
_NUMBER_KINDS = [
    (  # a time of day: 16h00, 1:01 p.m., 10 A. M.
        re.compile(r"\bwhat time\b", re.I),
        re.compile(r"\b\d{1,2}\s?[h:]\s?\d{2}\b|\b\d{1,2}(?:[:.]\d{2})?\s?[ap]\.?\s?m\b", re.I),
    ),
    (  # an amount of money: $3,400, 1 200 000$, 10 Euro, 37,499.96
        re.compile(
            r"\b(?:cost|costs|price|prices|fee|fees|fare|airfare|paid|pay|pays|spend|spent|"
            r"salary|wage|wages|budget)\b",
            re.I,
        ),
        re.compile(
            r"[$€£¥]\s?\d|\d\s?[$€£¥]|\d\s?(?:dollars?|euros?|cents?|usd|eur|gbp)\b|"
            r"\b\d{1,3}(?:,\d{3})*\.\d{2}\b",
            re.I,
        ),
    ),
    (  # a share: 46.5%, 76 percent
        re.compile(r"\b(?:percent|percentage|what share|what proportion)\b", re.I),
        re.compile(r"\d\s?%|\bpercent\b", re.I),
    ),
    (_ASKS_DATE, _HOLDS_DATE),
]


# A question whose answer is a figure: a count, an amount, a share, a year or a date.
# Narrower than _ASKS_NUMBER: "how long", "how often" or "how old" may be answered in
# words ("about a month", "weekly").
_ASKS_FIGURE = re.compile(
    r"\b(?:how (?:many|much)|what (?:percentage|percent|number|amount|price|cost|total|"
    r"year|date)|(?:in )?which (?:year|date))\b|^\s*when\b|多少|几(?!乎)",
    re.I,
)
# A figure as an answer may write it: digits (spelled ones made digits first), a month,
# a Chinese numeral, or none at all ("none", "no one": a count of zero).
_HOLDS_FIGURE = re.compile(
    rf"\d|[〇零一二三四五六七八九十百千万亿两]|\b(?:{_MONTHS})\b|\b(?:none|zero|no one|nobody)\b",
    re.I,
)


def asks_for_figure(question: str) -> bool:
    """Whether ``question`` asks for a figure ("How many ...?", "When ...?", "多少")."""
    return bool(_ASKS_FIGURE.search(question))


# "What is AutoGen?": a thing asked about alone is answered by the sentence saying what
# it is ("AutoGen is an open-source framework ..."), where every sentence naming it holds
# the question's one word as well (seen by hand in session 22: the paper's title and
# author line was quoted first, a blog's sentences after it, the abstract's definition
# not at all).  A name of a few words, not a question with a topic of its own.
_ASKS_WHAT = re.compile(
    r"^\s*what(?:'s|\s+(?P<verb>is|are|was|were))\s+(?:an?\s+|the\s+)?[\"“'‘]?"
    r"(?P<x>[^\s?\"”'’][^?\"”'’]*?)[\"”'’]?\s*\?*\s*$",
    re.I,
)
WHAT_IS_WORDS = 4


def holds_figure(text: str) -> bool:
    """Whether ``text`` (its spelled numbers made digits) states a figure of any kind."""
    return bool(_HOLDS_FIGURE.search(text))


def asks_date(question: str) -> Callable[[str], float] | None:
    """For a question asking when ("When was X published?", "in which year ..."), the
    scorer of sentences holding a date or a year; None for any other question."""
    if _ASKS_DATE.search(question):
        return lambda s: TYPE_BONUS if _HOLDS_DATE.search(s) else 0.0
    return None


def type_bonus(question: str) -> Callable[[str], float]:
    """A scorer giving TYPE_BONUS to sentences of the type the question asks for: a time,
    a number, a name, or for "What is X?" a sentence saying what X is."""
    for asks, holds in _NUMBER_KINDS:
        if asks.search(question):
            return lambda s, holds=holds: TYPE_BONUS if holds.search(s) else 0.0
    if _ASKS_NUMBER.search(question):
        return lambda s: TYPE_BONUS if _HAS_NUMBER.search(s) else 0.0
    if _ASKS_NAME.search(question):
        return lambda s: TYPE_BONUS if _HAS_NAME.search(s) else 0.0
    asked = _ASKS_WHAT.match(question)
    if asked and len(asked.group("x").split()) <= WHAT_IS_WORDS:
        # "X is a ...", in the tense asked ("AutoGen was a subpackage in FLAML" is no
        # answer to "What is AutoGen?"), or a sentence naming X last ("... an unholy
        # union known as an abomination": seen by hand in session 22, "What is an
        # Abomination?" of a game manual's page).
        verb = "was|were" if (asked.group("verb") or "is").lower() in ("was", "were") else "is|are"
        x = re.escape(asked.group("x"))
        defines = re.compile(
            rf"\b{x}s?\s+(?:{verb})\s+(?:an?|the)\s"
            rf"|\b(?:known as|called|termed)\s+(?:an?\s+|the\s+)?{x}s?\b",
            re.I,
        )
        return lambda s: TYPE_BONUS if defines.search(s) else 0.0
    return lambda s: 0.0


_WORD = re.compile(r"[\w][\w'\-.]*\w|\w", re.UNICODE)


# Words that shape a question rather than say what it is about ("how long", "what
# kind of", "according to the document"): they weigh nothing, or a question would need
# the word "long" in the answer.  Stop words (the, is, ...) are dropped by the analyzer.
QUESTION_FRAME = frozenset(
    {
        "how",
        "long",
        "much",
        "many",
        "often",
        "far",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "kind",
        "type",
        "sort",
        "name",
        "named",
        "called",
        "call",
        "say",
        "says",
        "said",
        "tell",
        "describe",
        "described",
        "mean",
        "means",
        "according",
        "document",
        "documents",
        "paper",
        "file",
        "files",
        "text",
        "give",
        "list",
        "explain",
        "please",
        "exactly",
        "approximately",
        "roughly",
        "number",
        "amount",
        # "How long does it take?", "how many oxen did it take?": the verb frames the
        # question; the answer says "40 work-hours", not "takes".
        "take",
        "takes",
        "took",
        # Modal verbs frame a question ("within how many days must claims be filed?")
        # and are not in the analyzer's stop list; a document rarely repeats them, and
        # as words no document holds they would weigh five times their idf. ("may" is
        # also a month, so it stays.)
        "must",
        "might",
        "shall",
        "would",
        "could",
        "ought",
    }
)
_ZH_FRAME = re.compile(
    r"什么|多少|哪[一]?[些个里本家位种年天条篇项次份所]|哪儿|怎么|怎样|如何|是否|为什么|谁|吗|呢|请问"
    r"|文件中|文档中"
)


_NUMBER_DASH = re.compile(r"(?<=\d)-(?=\d)")


# "On what date was ...", "in which year ...": the noun after the question word names
# the answer's type (``type_bonus`` reads it from the question), not what the question
# is about; the document writes "11/04/14", not "date".  Seen on the calibrate split:
# "On what date was the general election in the LA County precinct bulletin held?" was
# "not found" in the bulletin's own workspace, "date" missing.
_TYPE_NOUN = re.compile(r"\b((?:what|which)\s+)(?:date|day|year|month|time)\b", re.I)


def content_of(question: str) -> str:
    """The question without its frame words: what its terms are weighed on."""
    question = _TYPE_NOUN.sub(r"\1", question)
    kept = [w for w in re.split(r"(\W+)", question) if w.lower() not in QUESTION_FRAME]
    # "737-8" would be analysed as 737 and the signed number -8, which a document
    # writing "737–8" (an en dash, as typeset text does) never holds: compare the numbers.
    return _NUMBER_DASH.sub(" ", _ZH_FRAME.sub(" ", "".join(kept)))


# Chinese function characters (particles, measure words, copulas, prepositions) that
# separate content words: written Chinese has no spaces, and "I searched for" should
# name "微软, 量子计算机", not the whole run "微软的量子计算机有".
_ZH_FUNCTION = re.compile(r"[的了是在有和与及个把被对从为也都就而或这那其之于以]+")


def question_words(question: str) -> list[str]:
    """The question's distinct words in order (for naming what was searched); a run of
    Chinese is cut at its function characters."""
    seen: dict[str, str] = {}  # folded -> as first written ("Sample", "sample": one word)
    for word in _WORD.findall(question):
        parts = _ZH_FUNCTION.split(word) if CJK.search(word) else [word]
        for part in parts:
            if part:
                seen.setdefault(fold(part), part)
    return list(seen.values())


# What marks a question as resting on the one before it: an opening "and", "what
# about", "also" ..., or a word pointing back ("it", "her", "those", 它, 那 ...).
_FOLLOW_OPENING = re.compile(
    r"^\s*(?:and|but|also|then|so|what about|how about|same for|及|还有|那么?|另外|那)\b",
    re.I,
)
_POINTING_BACK = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|that|these"
    r"|those|there|the same|same one)\b|[它他她其]|这个|那个|这些|那些",
    re.I,
)


def is_follow_up(question: str) -> bool:
    """Whether ``question`` rests on the conversation's previous one ("and how much does
    it cost?", "what is her email address?"), or stands alone ("What is the total number
    of background checks for Texas?").  Only a follow-up is searched with the previous
    question and weighed with its words: a question that stands alone, asked after
    another on an unrelated document, found that document's passages first (seen by
    hand in session 14: the Texas question, asked after one on an airworthiness
    directive, quoted the table's totals row).  Fewer than two content words is a
    follow-up too ("and California?")."""
    if _FOLLOW_OPENING.search(question) or _POINTING_BACK.search(question):
        return True
    return len(question_words(content_of(question))) < 2
