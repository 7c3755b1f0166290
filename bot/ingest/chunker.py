"""Split extracted pages into chunks measured in the embedding model's tokens.

The embedding model truncates what it does not fit, so a chunk's size must be counted
with that model's own tokenizer, not in characters or words.  The strategy:

1. Split every page into units: paragraphs (blank lines, list items, headings), then
   sentences.  Each unit keeps its page number.
2. Count each unit's tokens once (in one batch if the tokenizer can).
3. Pack units in order while the running sum fits ``size``; start the next chunk with
   trailing units worth about ``overlap`` tokens of the previous one, so a fact cut at
   a boundary is still whole in one of the two chunks.
4. A unit longer than a whole chunk is split by words (a "word" longer than a chunk,
   such as a base64 blob, by characters).  No chunk holds more than 32 characters per
   token of ``size``, whatever the tokenizer says a blob costs.
5. Each finished chunk is counted once as a whole, because tokenizers are not exactly
   additive (joining can merge or add tokens); in the rare case it is over ``size``,
   units are moved to the next chunk until it fits.  So ``n_tokens <= size`` always
   holds for the tokenizer given, and ``n_tokens`` is that tokenizer's exact count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.ingest.extract import Page

__all__ = ["Chunk", "Tokenizer", "chunk_pages"]


@runtime_checkable
class Tokenizer(Protocol):
    """Counts tokens the way the embedding model will.

    ``count_tokens`` may include the model's fixed special tokens (e.g. BERT's [CLS]
    and [SEP]); the chunker measures that overhead with ``count_tokens("")``.  A
    tokenizer may also offer ``count_tokens_many(texts) -> list[int]`` to count many
    texts in one call; the chunker uses it when present.
    """

    def count_tokens(self, text: str) -> int:
        """Number of tokens the model sees for ``text``."""
        ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document small enough to embed.

    ``ordinal`` is the chunk's 0-based position in the document; ``page_start`` and
    ``page_end`` are the 1-based first and last pages its text comes from;
    ``n_tokens`` is the tokenizer's count for ``text`` (special tokens included);
    ``location`` is its page's location in the document's own terms, if it has one.
    """

    ordinal: int
    page_start: int
    page_end: int
    text: str
    n_tokens: int
    location: str | None = None


@dataclass(slots=True)
class _Unit:
    text: str
    page: int
    para: int  # units of one paragraph are joined by a space, others by a blank line
    cost: int  # tokens of the text alone, without the tokenizer's fixed overhead


class _Counter:
    """Wraps a Tokenizer: batching when offered, and the fixed special-token overhead."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        many = getattr(tokenizer, "count_tokens_many", None)
        self._many = many if callable(many) else None
        self.overhead = max(0, int(tokenizer.count_tokens("")))
        # What a separator adds between two pieces; usually 0 for both.  Measured, not
        # assumed, so the packing estimate is close for BPE vocabularies too.
        x = self.cost("x")
        self.space_cost = max(0, self.cost("x x") - 2 * x)
        self.para_cost = max(0, self.cost("x\n\nx") - 2 * x)

    def count(self, text: str) -> int:
        return int(self._tokenizer.count_tokens(text))

    def cost(self, text: str) -> int:
        return max(0, self.count(text) - self.overhead)

    def costs(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._many is not None:
            counts = [int(n) for n in self._many(list(texts))]
            if len(counts) != len(texts):
                raise ValueError("count_tokens_many returned a wrong number of counts")
        else:
            counts = [self.count(t) for t in texts]
        return [max(0, n - self.overhead) for n in counts]


# --- splitting pages into units ---------------------------------------------------------

_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n\s*")
# Lines that start a block of their own even without a blank line before them:
# Markdown headings, list items, quotes, table rows, and PDF bullets.
_BLOCK_START_RE = re.compile(r"^\s*(#{1,6}\s|[-*+•▪◦·]\s|\d{1,3}[.)]\s|>\s?|\|)")
# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by white space, or
# at a CJK full stop, which needs no space after it.
_SENTENCE_END_RE = re.compile(r"""[.!?…]+["'”’»)\]]*(\s+)|[。！？]+(\s*)""")
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf"),
        *("al", "fig", "figs", "eq", "eqs", "sec", "ch", "vol", "no", "nos", "pp", "p"),
        *("approx", "ca", "dept", "est", "inc", "ltd", "co", "corp", "jan", "feb", "mar"),
        *("apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
        *("z.b", "u.a", "bzw", "usw", "vgl", "bsp", "s"),  # German: "z.B.", "vgl.", "S. 3"
    }
)
_LAST_WORD_RE = re.compile(r"(\S+?)[.!?…]+[\"'”’»)\]]*$")


def _is_abbreviation(before: str) -> bool:
    match = _LAST_WORD_RE.search(before)
    if not match:
        return False
    word = match.group(1).lower().lstrip("([\"'“‘")
    # "J. Smith": a single capital letter is an initial, not a sentence.
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _sentences(paragraph: str) -> Iterator[str]:
    start = 0
    for match in _SENTENCE_END_RE.finditer(paragraph):
        end = match.end()
        if end >= len(paragraph):
            break
        # A Latin-style end needs a next character that is not lower case, and no
        # abbreviation before the dot; a CJK full stop always ends the sentence.
        if match.group(1) is not None and (
            paragraph[end].islower() or _is_abbreviation(paragraph[start : match.start(1)])
        ):
            continue
        sentence = paragraph[start:end].strip()
        if sentence:
            yield sentence
        start = end
    rest = paragraph[start:].strip()
    if rest:
        yield rest


def _paragraphs(text: str) -> Iterator[str]:
    for block in _PARAGRAPH_BREAK_RE.split(text):
        lines: list[str] = []
        for line in block.split("\n"):
            if lines and _BLOCK_START_RE.match(line):
                yield " ".join(lines)
                lines = []
            lines.append(line)
        if lines:
            yield " ".join(lines)


def _split_units(pages: Iterable[Page]) -> Iterator[tuple[str, int, int]]:
    """Yield (text, page number, paragraph id) for every sentence of every page."""
    para = 0
    for page in pages:
        for paragraph in _paragraphs(page.text):
            paragraph = " ".join(paragraph.split())
            if not paragraph:
                continue
            para += 1
            for sentence in _sentences(paragraph):
                yield sentence, page.number, para


# --- splitting over-long units -----------------------------------------------------------

# At most this many characters per token of budget, in any piece or chunk.  Normal text
# has 1-6; only blobs (base64, hex dumps, runs without spaces) come near.  It bounds the
# binary search over one huge "word" (so a 50 MB run without spaces splits in linear
# time) and the text itself: WordPiece maps any over-long word to a single [UNK], which
# would otherwise let a whole blob through as one "cheap" chunk.
_MAX_CHARS_PER_TOKEN = 32


def _split_by_chars(word: str, counter: _Counter, budget: int) -> list[str]:
    """Split one huge "word" into pieces of at most ``budget`` tokens (binary search)."""
    window = budget * _MAX_CHARS_PER_TOKEN
    pieces = []
    while word:
        if len(word) <= window and counter.cost(word) <= budget:
            pieces.append(word)
            break
        # Largest prefix (within the window) that fits; one character always does for
        # any sane tokenizer, so lo starts at 1.
        lo, hi = 1, min(len(word), window)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if counter.cost(word[:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(word[:lo])
        word = word[lo:]
    return pieces


def _split_long(unit: _Unit, counter: _Counter, budget: int) -> list[_Unit]:
    """Split a unit over ``budget`` tokens into word-packed pieces that each fit.

    Words are not counted one by one (that is one tokenizer call per word): a piece's
    length in words is guessed from the tokens-per-word rate seen so far, then checked
    with one count and corrected, which takes 1-3 calls per piece.
    """
    max_chars = budget * _MAX_CHARS_PER_TOKEN
    words = unit.text.split(" ")
    pieces: list[_Unit] = []
    rate = 1.0  # tokens per word, refined as pieces are measured
    start = 0

    def measure(count: int) -> tuple[str, int]:
        text = " ".join(words[start : start + count])
        return text, (counter.cost(text) if len(text) <= max_chars else budget + 1)

    while start < len(words):
        if len(words[start]) > max_chars:
            # A blob, whatever the tokenizer thinks it costs: cut it by characters.
            blob = _split_by_chars(words[start], counter, budget)
            pieces.extend(_Unit(p, unit.page, unit.para, counter.cost(p)) for p in blob)
            start += 1
            continue
        remaining = len(words) - start
        take = max(1, min(remaining, int(budget / rate)))
        text, cost = measure(take)
        while cost > budget and take > 1:  # too many words: shrink by the rate seen
            rate = max(rate, cost / take)
            take = max(1, min(take - 1, int(budget / rate * 0.95)))
            text, cost = measure(take)
        if cost > budget:  # a single word over the budget
            blob = _split_by_chars(words[start], counter, budget)
            pieces.extend(_Unit(p, unit.page, unit.para, counter.cost(p)) for p in blob)
            start += 1
            continue
        while cost < 0.9 * budget and take < remaining:  # room left: try more words
            rate = max(cost / take, 1e-3)
            more = min(remaining, take + max(1, int((budget - cost) / rate)))
            more_text, more_cost = measure(more)
            if more_cost > budget:
                break
            take, text, cost = more, more_text, more_cost
        pieces.append(_Unit(text, unit.page, unit.para, cost))
        rate = max(cost / take, 1e-3)
        start += take
    return pieces


# --- packing ---------------------------------------------------------------------------


def _join(units: Sequence[_Unit]) -> str:
    parts: list[str] = []
    for i, unit in enumerate(units):
        if i:
            parts.append(" " if unit.para == units[i - 1].para else "\n\n")
        parts.append(unit.text)
    return "".join(parts)


def chunk_pages(
    pages: Sequence[Page], tokenizer: Tokenizer, size: int, overlap: int
) -> list[Chunk]:
    """Pack the pages' text into chunks of at most ``size`` tokens, keeping page ranges.

    ``overlap`` is roughly how many tokens of the end of one chunk start the next
    (whole sentences where they fit, else the last words of the last sentence); 0
    disables it.  ``size`` counts every token the model sees, special tokens included.
    Pages without text are skipped; no pages or no text gives an empty list.

    Raises:
        ValueError: ``size`` too small for the tokenizer's special tokens, or
            ``overlap`` negative or not smaller than ``size``.
    """
    if overlap < 0 or overlap >= size:
        raise ValueError(f"overlap must be >= 0 and < size (got size={size}, overlap={overlap})")
    counter = _Counter(tokenizer)
    budget = size - counter.overhead  # room for text once special tokens are counted
    if budget < 1:
        raise ValueError(
            f"size={size} leaves no room for text: the tokenizer adds "
            f"{counter.overhead} special tokens to every chunk"
        )
    overlap = min(overlap, budget - 1)
    max_chars = budget * _MAX_CHARS_PER_TOKEN

    raw = list(_split_units(pages))
    units: list[_Unit] = []
    for (text, page, para), cost in zip(raw, counter.costs([r[0] for r in raw]), strict=True):
        unit = _Unit(text, page, para, cost)
        if cost > budget or len(text) > max_chars:
            # Pieces leave room for the overlap, so the carried words still fit beside
            # the next piece.
            units.extend(_split_long(unit, counter, max(1, budget - overlap)))
        else:
            units.append(unit)

    def sep(prev: _Unit, nxt: _Unit) -> int:
        return counter.space_cost if prev.para == nxt.para else counter.para_cost

    def estimate(group: Sequence[_Unit]) -> int:
        return sum(u.cost for u in group) + sum(
            sep(a, b) for a, b in zip(group, group[1:], strict=False)
        )

    chunks: list[Chunk] = []
    current: list[_Unit] = []
    carried = 0  # how many units at the front of ``current`` repeat the previous chunk
    cost = 0
    chars = 0  # length of the joined text, separators counted as 2
    i = 0

    def finish() -> None:
        """Emit ``current`` (verified), then seed it with the overlap for the next chunk."""
        nonlocal current, carried, cost, chars, i
        text = _join(current)
        n_tokens = counter.count(text)
        while n_tokens > size and len(current) > 1:
            if carried:  # give up overlap before giving up new text
                current.pop(0)
                carried -= 1
            else:  # the last unit goes back to be the next chunk's first
                current.pop()
                i -= 1
            text = _join(current)
            n_tokens = counter.count(text)
        chunks.append(
            Chunk(
                ordinal=len(chunks),
                page_start=min(u.page for u in current),
                page_end=max(u.page for u in current),
                text=text,
                n_tokens=n_tokens,
            )
        )
        current = _overlap_tail(current, counter, overlap)
        carried = len(current)
        cost = estimate(current)
        chars = sum(len(u.text) + 2 for u in current)

    while True:
        if i >= len(units):
            if len(current) > carried:
                finish()  # may hand units back (i decreases): keep looping
                continue
            break
        unit = units[i]
        add = unit.cost + (sep(current[-1], unit) if current else 0)
        if current and (cost + add > budget or chars + len(unit.text) + 2 > max_chars):
            if len(current) > carried:
                finish()
            else:  # only overlap so far and the next unit does not fit beside it
                current.pop(0)
                carried -= 1
                cost = estimate(current)
                chars = sum(len(u.text) + 2 for u in current)
            continue
        current.append(unit)
        cost += add
        chars += len(unit.text) + 2
        i += 1
    return chunks


def _overlap_tail(units: Sequence[_Unit], counter: _Counter, overlap: int) -> list[_Unit]:
    """The trailing units (or last words) of a chunk worth at most ``overlap`` tokens."""
    if overlap <= 0 or not units:
        return []
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        add = unit.cost + (counter.space_cost if tail else 0)
        if total + add > overlap:
            break
        tail.insert(0, unit)
        total += add
    if tail:
        return tail
    # The last sentence alone is longer than the overlap: carry its last words.
    last = units[-1]
    words = last.text.split(" ")
    if len(words) < 2 or last.cost <= 0:
        return []
    take = min(len(words) - 1, max(1, overlap * len(words) // last.cost))
    while take >= 1:
        text = " ".join(words[-take:])
        cost = counter.cost(text)
        if cost <= overlap:
            return [_Unit(text, last.page, last.para, cost)]
        take = take * 4 // 5 if take > 1 else 0
    return []
