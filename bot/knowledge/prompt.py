"""Prompts that stay inside their token budget.

The prompt is the system prompt, the retrieved chunks with their source labels,
the recent conversation of this channel or thread, and the question.  When it is
too long, history goes first (oldest turns first), then chunks (lowest rank
first), and as a last resort the remaining chunk text is cut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.store.records import ChunkHit, HistoryMessage

DEFAULT_SYSTEM_PROMPT = (
    "You are Librarian, a team's knowledge assistant. Answer the question using only the "
    "numbered sources you are given. Be brief and factual, and cite sources like [1]. "
    "If the sources do not contain the answer, say that the documents do not say."
)

Message = dict[str, str]
TokenCounter = Callable[[Sequence[Message]], Awaitable[int]]


def page_label(page_start: int | None, page_end: int | None) -> str:
    """'p. 2', 'pp. 2-3', or '' when pages are unknown."""
    if page_start is None:
        return ""
    if page_end is None or page_end == page_start:
        return f"p. {page_start}"
    return f"pp. {page_start}-{page_end}"


def pages_label(pages: Iterable[int]) -> str:
    """'p. 2', 'pp. 2-4' for a run, 'pp. 1, 5' otherwise; '' when none are known."""
    ordered = sorted(set(pages))
    if not ordered:
        return ""
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return page_label(ordered[0], ordered[-1])
    return "pp. " + ", ".join(str(p) for p in ordered)


def where_label(page_start: int | None, page_end: int | None, location: str | None) -> str:
    """Where a chunk is: its location in the document's own terms ("slide 7 (Roadmap)",
    "sheet Budget, rows 12-40"), else its pages ("p. 4"); '' when neither is known."""
    if location is not None:
        return location
    return page_label(page_start, page_end)


def places_label(locations: Iterable[str], pages: Iterable[int]) -> str:
    """Several chunks' places in one document: their locations in order, then the pages.

    "slide 2 (Plan); slide 5 (Costs)", "p. 2", "pp. 2-4"; '' when none are known.
    """
    parts = list(dict.fromkeys(loc for loc in locations if loc))
    label = pages_label(pages)
    if label:
        parts.append(label)
    return "; ".join(parts)


def source_label(number: int, hit: ChunkHit) -> str:
    """How a chunk is introduced to the model: '[1] manual.pdf, p. 2'."""
    where = where_label(hit.page_start, hit.page_end, hit.location)
    return f"[{number}] {hit.file_name}" + (f", {where}" if where else "")


def build_messages(
    system_prompt: str | None,
    chunks: Sequence[ChunkHit],
    history: Sequence[HistoryMessage],
    question: str,
    *,
    chunk_texts: Sequence[str] | None = None,
) -> list[Message]:
    """The chat messages for one answer."""
    texts = list(chunk_texts) if chunk_texts is not None else [c.text for c in chunks]
    messages: list[Message] = [
        {"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT}
    ]
    for turn in history:
        messages.append({"role": turn.role, "content": turn.text})
    sources = "\n\n".join(
        f"{source_label(i + 1, hit)}\n{body}"
        for i, (hit, body) in enumerate(zip(chunks, texts, strict=True))
    )
    messages.append({"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}"})
    return messages


@dataclass
class FittedPrompt:
    """A prompt inside its budget, and what it kept."""

    messages: list[Message]
    chunks: list[ChunkHit]
    history: list[HistoryMessage]
    tokens: int
    budget: int


async def fit_prompt(
    count: TokenCounter,
    *,
    system_prompt: str | None,
    chunks: Sequence[ChunkHit],
    history: Sequence[HistoryMessage],
    question: str,
    budget: int,
) -> FittedPrompt:
    """Trim history, then chunks, then chunk text, until the prompt fits ``budget`` tokens."""
    kept_history = list(history)
    kept_chunks = list(chunks)
    texts = [c.text for c in kept_chunks]

    async def measure() -> tuple[list[Message], int]:
        msgs = build_messages(system_prompt, kept_chunks, kept_history, question, chunk_texts=texts)
        return msgs, await count(msgs)

    messages, tokens = await measure()
    while tokens > budget and kept_history:
        # Drop the oldest whole exchange where possible, so no answer loses its question.
        drop = 2 if len(kept_history) >= 2 and kept_history[0].role == "user" else 1
        del kept_history[:drop]
        messages, tokens = await measure()
    while tokens > budget and len(kept_chunks) > 1:
        kept_chunks.pop()
        texts.pop()
        messages, tokens = await measure()
    while tokens > budget and kept_chunks and texts[0]:
        # One chunk left and still too long (a huge question or a tiny budget): cut its text
        # in proportion to the excess, and at least by a tenth, until it fits.
        excess = tokens - budget
        keep = max(0, int(len(texts[0]) * (1 - max(0.1, excess / max(tokens, 1)))) - 1)
        texts[0] = texts[0][:keep]
        messages, tokens = await measure()
    return FittedPrompt(messages, kept_chunks, kept_history, tokens, budget)
