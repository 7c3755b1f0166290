"""A document's opening as the evidence for questions about the document itself ("What
is X about?", "Who wrote X?"): its abstract, or its first sentences."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import islice

from bot.knowledge.quotes import Evidence, Quote
from bot.knowledge.sentences import MIN_SENTENCE_CHARS, split_sentences
from bot.store.records import ChunkHit

# How many opening sentences answer "what is X about?".
OPENING_QUOTES = 3
_ABSTRACT = re.compile(r"\b(?:abstract|summary|摘要)\b[\s.:\u2014-]*", re.I)


def opening_evidence(
    chunks: list[ChunkHit], *, header: bool = False, wants: Callable[[str], float] | None = None
) -> Evidence:
    """For "what is X about": the first sentences of the document (title, abstract);
    for "who wrote X" (``header``): its first sentences (title, names).

    ``wants``: for a header question asking for a date ("When was X published?"), what
    scores a sentence holding one: the title, then the first sentences of the opening
    that hold a date.  Seen by hand in session 17: an e-book's first sentences (its
    title, its licence) were quoted for "When was Winter Sports in Switzerland
    published?", its "Release date: August 23, 2019" line further down."""
    if header and wants is not None:
        return _dated(chunks, wants)
    quotes: list[Quote] = []
    # A paper's abstract says what it is about better than its header of names.
    for chunk in [] if header else chunks:
        m = _ABSTRACT.search(chunk.text)
        if m:
            for sentence in split_sentences(chunk.text[m.end() :])[:2]:
                quotes.append(Quote(sentence, chunk, 1.0, 1.0))
            break
    if not quotes:
        # The first sentences, across the opening chunks: a document cut by its
        # headings may open with a chunk holding its title alone.
        quotes = [Quote(s, c, 1.0, 1.0) for s, c in islice(_sentences(chunks), OPENING_QUOTES)]
    return Evidence(quotes, 1.0, 1.0, bool(quotes), 1.0)


def _dated(chunks: list[ChunkHit], wants: Callable[[str], float]) -> Evidence:
    """The opening's first sentence, then its first sentences that ``wants`` scores
    (OPENING_QUOTES in all); the plain opening when none does."""
    sentences = list(_sentences(chunks))
    picked = sentences[:1] + [(s, c) for s, c in sentences[1:] if wants(s) > 0]
    if len(picked) < 2:
        return opening_evidence(chunks, header=True)
    quotes = [Quote(s, c, 1.0, 1.0) for s, c in picked[:OPENING_QUOTES]]
    return Evidence(quotes, 1.0, 1.0, True, 1.0)


def _sentences(chunks: list[ChunkHit]) -> Iterator[tuple[str, ChunkHit]]:
    """The opening's sentences in order, each once, without what the next chunk repeats
    of the one before (a sheet's header row opens each of its chunks: it comes once)."""
    earlier: list[str] = []
    for chunk in chunks:
        for sentence in split_sentences(chunk.text):
            sentence = _past_overlap(sentence, earlier)
            if sentence and sentence not in earlier:
                earlier.append(sentence)
                yield sentence, chunk


# A sentence opening with this much of an earlier quote's end repeats it.
OVERLAP_CHARS = 24


def _past_overlap(sentence: str, earlier: list[str]) -> str:
    """``sentence`` without the start it shares with the end of an earlier quote (the
    next chunk repeats the end of the one before: seen by hand in session 15, a title
    page's list of authors quoted twice, "Murray, Hsu-Han Ooi, Matthew Peters, ..."
    then "Ooi, Matthew Peters, ..."); "" when nothing new is left."""
    for quote in earlier:
        if sentence in quote:
            return ""
        at = quote.find(sentence[:OVERLAP_CHARS])
        if len(sentence) >= OVERLAP_CHARS and at >= 0 and sentence.startswith(quote[at:]):
            rest = sentence[len(quote) - at :].strip()
            return rest if len(rest) >= MIN_SENTENCE_CHARS else ""
    return sentence
