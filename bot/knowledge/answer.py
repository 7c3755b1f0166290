"""Answering a question: history, retrieval, a budgeted prompt, a streamed and cited reply."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.knowledge.prompt import fit_prompt, page_label
from bot.knowledge.retrieval import Ranked, Retriever
from bot.store.records import Binding, ChunkHit, HistoryMessage
from bot.store.repo import Store

log = logging.getLogger(__name__)

NOT_FOUND = (
    "I could not find this in the documents of this channel's workspace, "
    "so I won't guess. Share the document that holds the answer and ask again."
)

Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Source:
    """A document an answer relied on."""

    document: str
    pages: str
    score: float
    document_id: int
    chunk_ids: tuple[int, ...]
    shared_in: str | None = None
    link: str | None = None


@dataclass
class Answer:
    """The bot's reply to one question."""

    text: str  # the answer with its citations, as posted
    body: str  # the answer alone
    sources: list[Source]
    found: bool
    timings: dict[str, Any] = field(default_factory=dict)
    # The stored assistant turn (None when not remembered), e.g. to attach feedback to.
    message_id: int | None = None


def merge_sources(hits: list[Ranked]) -> list[Source]:
    """One source per document, pages merged, in rank order."""
    by_doc: dict[int, dict[str, Any]] = {}
    for ranked in hits:
        hit = ranked.hit
        entry = by_doc.setdefault(
            hit.document_id,
            {"hit": hit, "pages": set(), "score": ranked.score, "chunks": []},
        )
        entry["chunks"].append(hit.chunk_id)
        if hit.page_start is not None:
            entry["pages"].update(range(hit.page_start, (hit.page_end or hit.page_start) + 1))
    sources = []
    for doc_id, entry in by_doc.items():
        hit: ChunkHit = entry["hit"]
        pages = sorted(entry["pages"])
        if not pages:
            label = ""
        elif pages == list(range(pages[0], pages[-1] + 1)):
            label = page_label(pages[0], pages[-1])
        else:
            label = "pp. " + ", ".join(str(p) for p in pages)
        sources.append(
            Source(
                document=hit.file_name,
                pages=label,
                score=round(entry["score"], 4),
                document_id=doc_id,
                chunk_ids=tuple(entry["chunks"]),
                shared_in=hit.source_channel,
                link=hit.source_url,
            )
        )
    return sources


def last_answered_question(history: list[HistoryMessage]) -> str | None:
    """The latest question whose answer cited documents (a "not found" sets no topic)."""
    for i in range(len(history) - 1, 0, -1):
        turn = history[i]
        if turn.role == "assistant" and turn.cited_chunk_ids and history[i - 1].role == "user":
            return history[i - 1].text
    return None


def format_citations(sources: list[Source]) -> str:
    """'Sources:' and one line per document: name, pages, where it was shared."""
    lines = ["Sources:"]
    for i, src in enumerate(sources, 1):
        line = f"[{i}] {src.document}"
        if src.pages:
            line += f", {src.pages}"
        if src.link:
            line += f" ({src.link})"
        elif src.shared_in:
            line += f" (shared in {src.shared_in})"
        lines.append(line)
    return "\n".join(lines)


class Answerer:
    """Turns a question in a channel into a cited answer."""

    def __init__(
        self,
        store: Store,
        retriever: Retriever,
        inference: Any,
        *,
        prompt_budget: int,
        max_answer_tokens: int = 384,
        history_turns: int = 12,
        temperature: float = 0.2,
    ) -> None:
        self.store = store
        self.retriever = retriever
        self.inference = inference
        self.prompt_budget = prompt_budget
        self.max_answer_tokens = max_answer_tokens
        self.history_turns = history_turns
        # Low temperature: grounded answers should repeat the sources, not improvise.
        self.temperature = temperature

    async def answer(
        self,
        binding: Binding,
        thread_id: str | None,
        question: str,
        *,
        author: str | None,
        conversation_key: str,
        on_progress: Progress | None = None,
        question_message_id: str | None = None,
        remember: bool = True,
        model_override: Any = None,
    ) -> Answer:
        """Answer ``question`` from the binding's workspace, streaming through ``on_progress``.

        ``model_override`` (a model reference or a resolved ModelInfo) answers with another
        chat model than the workspace's, e.g. to compare quantization levels.
        """
        started = time.perf_counter()
        workspace = binding.workspace
        history = await asyncio.to_thread(
            self.store.recent_messages, binding.id, thread_id, self.history_turns
        )
        queries = [question]
        previous = last_answered_question(history)
        if previous:
            # A follow-up ("and how much does it cost?") often names nothing: search with
            # the last answered question too, so the earlier topic's chunks are found.
            queries.append(f"{previous}\n{question}")
        retrieved = await self.retriever.search(workspace, queries)
        timings: dict[str, Any] = {"retrieval_ms": round(retrieved.retrieval_ms, 1)}

        if not retrieved.found:
            answer = Answer(NOT_FOUND, NOT_FOUND, [], False, timings)
            if remember:
                await self._remember(
                    binding, thread_id, question, author, answer, question_message_id
                )
            return answer

        model = model_override or workspace.chat_model or None
        facts = await self.inference.describe(model)
        budget = min(self.prompt_budget, int(facts["n_ctx"]) - self.max_answer_tokens)

        async def count(messages: Any) -> int:
            return await self.inference.count_prompt_tokens(model, messages)

        fitted = await fit_prompt(
            count,
            system_prompt=workspace.system_prompt,
            chunks=[r.hit for r in retrieved.hits],
            history=history,
            question=question,
            budget=budget,
        )
        timings["prompt_tokens"] = fitted.tokens
        if fitted.tokens > budget:
            text = (
                "That question is too long for the model's context window; "
                "please ask it in fewer words."
            )
            return Answer(text, text, [], False, timings)
        used = {c.chunk_id for c in fitted.chunks}
        kept = [r for r in retrieved.hits if r.hit.chunk_id in used]
        sources = merge_sources(kept)

        stream = await self.inference.chat_stream(
            model,
            fitted.messages,
            conversation_key,
            max_tokens=self.max_answer_tokens,
            temperature=self.temperature,
        )
        ahead = stream.position()
        if ahead > 0 and on_progress is not None:
            plural = "question is" if ahead == 1 else "questions are"
            await on_progress(f"Working on it: {ahead} {plural} ahead of yours.")
        pieces: list[str] = []
        gen_started = time.perf_counter()
        first_token_ms: float | None = None
        async for piece in stream:
            if first_token_ms is None:
                first_token_ms = (time.perf_counter() - started) * 1000
            pieces.append(piece)
            if on_progress is not None:
                await on_progress("".join(pieces))
        body = "".join(pieces).strip() or "(the model gave an empty answer)"
        gen_s = time.perf_counter() - gen_started
        stats = stream.stats
        completion = getattr(stats, "completion_tokens", None) or len(pieces)
        timings["first_token_ms"] = round(first_token_ms or 0.0, 1)
        timings["tokens_per_s"] = round(
            getattr(stats, "tokens_per_s", None) or (completion / gen_s if gen_s > 0 else 0.0), 1
        )
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
        text = f"{body}\n\n{format_citations(sources)}"
        answer = Answer(text, body, sources, True, timings)
        if remember:
            await self._remember(binding, thread_id, question, author, answer, question_message_id)
        return answer

    async def _remember(
        self,
        binding: Binding,
        thread_id: str | None,
        question: str,
        author: str | None,
        answer: Answer,
        question_message_id: str | None,
    ) -> None:
        await asyncio.to_thread(
            self.store.add_message,
            binding.id,
            thread_id,
            "user",
            question,
            author=author,
            platform_message_id=question_message_id,
        )
        cited = [cid for src in answer.sources for cid in src.chunk_ids]
        answer.message_id = await asyncio.to_thread(
            self.store.add_message,
            binding.id,
            thread_id,
            "assistant",
            answer.body,
            author="librarian",
            cited_chunk_ids=cited,
        )
