"""The model's draft as an answer: where it stops being one.

A small model does not stop where its answer ends.  It writes the next turn
("Question: ..."), recites a source the way the prompt labels them and then a passage
of its own making, or writes its answer again and again until the token cap cuts it
mid-word.  What it wrote before that is the answer; the check (``bot.knowledge.check``)
then reads it against the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.knowledge.check import CITATION, INTRODUCES, squash
from bot.knowledge.quoting import quoted
from bot.knowledge.sentences import period_ends_no_sentence

# Where a draft stops being an answer: the model writes another turn ("Question:"), or
# recites a source the way the prompt introduces it ("[5] manual.pdf, p. 2"), after
# which it copies or invents a passage.
_TURN = re.compile(
    r"\n\s*(?:(?:Question|Sources?|User|Assistant)\s*:|\[\d+\]\s+[^\n\[\]]*?\.[A-Za-z]{2,5}\b)",
    re.I,
)
# Where the model starts judging its own answer ("This answer is correct, as the blog
# post has been edited ...", seen by hand in session 19; "Justification: ..." in the
# benchmarks): claims about the answer, not from the sources.
_ABOUT_ITSELF = re.compile(
    r"(?:(?<=[.!?])\s+|\n\s*)(?:(?:this|my|the above) (?:answer|response)\b"
    r"|(?:justification|explanation|note)\s*:)",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?](?:[\"'\u201d)\]]*)(?=\s)|[\u3002\uff01\uff1f]")
# A sentence this short may well come twice in a good answer ("Yes."); a longer one that
# comes again means the model is looping.  Counted in UTF-8 bytes, so that a Chinese
# sentence of seven characters (three bytes each) is long enough.
_LOOP_MIN_BYTES = 20
# A run of this many words said again, word for word, is a loop even when no sentence
# ended between ("... by E. F. Benson The Project Gutenberg eBook of ... by E. F.", seen
# by hand in session 14).
_LOOP_MIN_WORDS = 10
# A numbered list's item: "2. 2019".
_LIST_ITEM = re.compile(r"(?m)^[ \t]*\d{1,3}[.)][ \t]+(.+)$")


def _without_repeated_items(text: str) -> str:
    """The text up to the first list item that says again what an earlier item said,
    however short ("1. 2019\n2. 2019", seen in session 10's benchmark)."""
    seen: set[str] = set()
    for item in _LIST_ITEM.finditer(text):
        key = " ".join(item.group(1).split()).casefold()
        if key in seen:
            return text[: item.start()].strip()
        seen.add(key)
    return text


def _without_repeated_run(text: str) -> str:
    """The text up to where a run of :data:`_LOOP_MIN_WORDS` words it already wrote
    starts again."""
    words = list(re.finditer(r"\S+", text))
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - _LOOP_MIN_WORDS + 1):
        run = tuple(w.group().casefold() for w in words[i : i + _LOOP_MIN_WORDS])
        if run in seen:
            return text[: words[i].start()].strip()
        seen.add(run)
    return text


def _sentence_ends(text: str) -> list[int]:
    """Where each sentence of the draft ends; not after an initial or an abbreviation
    ("by E. F. Benson": a draft the cap cut was cut again after "F.")."""
    return [
        m.end()
        for m in _SENTENCE_END.finditer(text)
        if not (text[m.start()] == "." and period_ends_no_sentence(text[: m.start() + 1]))
    ]


def tidy_draft(text: str, capped: bool = False) -> str:
    """The model's draft as an answer: cut where it starts another turn or recites a
    source label (stop strings may miss variants such as "\\nquestion:"), where it
    judges its own answer ("This answer is correct, as ..."), where it starts repeating
    a sentence or a run of words it already wrote (a small model loops until the token
    cap), and, when ``capped`` (generation stopped at the cap), without the sentence the
    cap cut in half."""
    for stop in (_TURN, _ABOUT_ITSELF):
        m = stop.search(text)
        text = (text[: m.start()] if m else text).strip()
    text = _without_repeated_items(text)
    ends = _sentence_ends(text)
    seen: set[str] = set()
    start = 0
    for end in [*ends, len(text)]:
        key = " ".join(text[start:end].split()).casefold()
        if len(key.encode()) >= _LOOP_MIN_BYTES and key in seen:
            return text[:start].strip()
        seen.add(key)
        start = end
    looped = _without_repeated_run(text)
    if looped != text:  # cut where the loop starts: what is left was not cut by the cap
        return looped
    if capped and ends and ends[-1] < len(text.rstrip()):
        return text[: ends[-1]].strip()
    return text


# Where a quote the model wrote leaves text out ("<header> … <row>").
_ELLIPSIS = re.compile(r"\s*(?:\u2026|\.\.\.)\s*")


def only_recites(draft: str, quotes: Sequence[str]) -> bool:
    """Whether every line of the draft that states something quotes ``quotes``, the
    evidence the reply shows under an answer anyway: "> "..."" or a line in quotation
    marks, each part of it (around an ellipsis) inside one of them.  Such a draft says
    nothing of its own (seen by hand in session 18: asked a company's phone number, the
    model wrote the reply's heading and two quotes of the cover page, neither holding
    the number, and it was posted as checked above the quote that did)."""
    shown = [squash(q) for q in quotes]
    lines = [
        line
        for line in CITATION.sub(" ", draft).splitlines()
        if any(ch.isalnum() for ch in line) and not INTRODUCES.search(line)
    ]
    if not lines or not shown:
        return False
    for line in lines:
        text = quoted(line)
        if text is None:
            return False
        pieces = _ELLIPSIS.split(text)
        parts = [squash(p) for p in pieces if any(c.isalnum() for c in p)]
        if not parts or not any(all(p in s for p in parts) for s in shown):
            return False
    return True
