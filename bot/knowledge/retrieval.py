"""Hybrid retrieval: pgvector cosine search and BM25 full-text search, fused by score.

Both searches are filtered by workspace in SQL (see ``bot.store.repo``).  A chunk
counts as relevant when its cosine similarity reaches the workspace's relevance
floor, or when it contains every term of the question; if nothing counts, the
answer is "not found" and the model is never called.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.knowledge.sentences import is_cjk
from bot.store.records import ChunkHit, Workspace
from bot.store.repo import Store


@dataclass(frozen=True)
class Ranked:
    """A chunk with its fused score."""

    hit: ChunkHit
    score: float
    relevant: bool


@dataclass
class Retrieved:
    """What a search found, best first, and how long it took."""

    hits: list[Ranked]
    retrieval_ms: float
    candidates: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # Every fused candidate, best first, before the relevance cut (for benchmarks).
    ranked: list[Ranked] = field(default_factory=list)
    # The queries' embeddings (one row per query; empty in keyword mode) and the
    # embedding model's store id, for the evidence step.
    query_vectors: Any = None
    embedding_model_id: int | None = None

    @property
    def found(self) -> bool:
        """Whether anything passed the relevance floor."""
        return bool(self.hits)


def _list_score(hit: ChunkHit) -> float:
    """The score a search gave the hit: cosine similarity (dense) or BM25 (keyword)."""
    if hit.similarity is not None:
        return hit.similarity
    return hit.keyword_rank or 0.0


def fuse(result_lists: Sequence[Sequence[ChunkHit]]) -> list[tuple[ChunkHit, float]]:
    """CombSUM of min-max normalised scores (Fox & Shaw 1994; Lee, SIGIR 1997).

    Each list's scores are scaled to [0, 1] within the list (best 1, worst 0) and
    summed per chunk; a list that does not hold a chunk adds nothing.  All lists weigh
    the same: nothing is fitted.  Reciprocal rank fusion (k=60) was used before; it
    keeps only ranks, so a keyword list whose first hit holds the question's rare name
    far ahead of the rest counted no more than a middling chunk both lists ranked
    tenth.  On SQuAD (2,000 questions, BM25 keyword lists) recall@5 went from 0.934 to
    0.956 on v1.1 and from 0.955 to 0.966 on v2.0's answerable questions, recall@1 from
    0.745 to 0.798 and 0.760 to 0.819 (Bruch et al., TOIS 2023, found the same).
    """
    scores: dict[int, float] = {}
    merged: dict[int, ChunkHit] = {}
    for hits in result_lists:
        values = [_list_score(h) for h in hits]
        low, high = min(values, default=0.0), max(values, default=0.0)
        for hit, value in zip(hits, values, strict=True):
            # A list of equal scores (or of one hit) has no spread: each hit is its best.
            norm = (value - low) / (high - low) if high > low else 1.0
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + norm
            seen = merged.get(hit.chunk_id)
            if seen is None:
                merged[hit.chunk_id] = hit
            else:
                merged[hit.chunk_id] = replace(
                    seen,
                    similarity=max(
                        (s for s in (seen.similarity, hit.similarity) if s is not None),
                        default=None,
                    ),
                    keyword_rank=(
                        seen.keyword_rank if seen.keyword_rank is not None else hit.keyword_rank
                    ),
                    all_terms=seen.all_terms or hit.all_terms,
                )
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    return [(merged[cid], scores[cid]) for cid in order]


class Retriever:
    """Searches one workspace for the chunks that answer a question."""

    def __init__(
        self, store: Store, inference: Any, embedding_model: Any, *, margin: float = 0.2
    ) -> None:
        """``embedding_model`` is an async callable returning (store id, dims, name).

        ``margin``: chunks whose similarity is more than this below the best match's are
        dropped (unless they hold every term of the question).
        """
        self.margin = margin
        self.store = store
        self.inference = inference
        self._embedding_model = embedding_model

    async def _dense_lists(
        self,
        workspace_id: int,
        model_id: int,
        dims: int,
        vectors: Any,
        n: int,
    ) -> list[list[ChunkHit]]:
        return [
            await asyncio.to_thread(
                self.store.search_dense, workspace_id, model_id, dims, vector, n
            )
            for vector in vectors
        ]

    async def _keyword_lists(
        self, workspace_id: int, model_id: int, queries: Sequence[str], n: int
    ) -> list[list[ChunkHit]]:
        return [
            await asyncio.to_thread(self.store.search_keyword, workspace_id, model_id, query, n)
            for query in queries
        ]

    async def _keyword_only_similarities(
        self,
        workspace_id: int,
        model_id: int,
        dims: int,
        vector: Any,
        fused: list[tuple[ChunkHit, float]],
    ) -> dict[int, float]:
        """The similarity to ``vector`` of each fused hit that has none (only the keyword
        search found it), by chunk id."""
        lacking = [hit.chunk_id for hit, _ in fused if hit.similarity is None]
        if not lacking:
            return {}
        return await asyncio.to_thread(
            self.store.similarities, workspace_id, model_id, dims, vector, lacking
        )

    async def search(
        self,
        workspace: Workspace,
        queries: Sequence[str],
        *,
        k: int | None = None,
        candidates: int | None = None,
        mode: str = "hybrid",
    ) -> Retrieved:
        """The top-k relevant chunks for the queries (the question, maybe with context).

        ``mode`` is "hybrid", "dense" or "keyword" (the last two for benchmarks).
        """
        started = time.perf_counter()
        k = k or workspace.top_k
        n = candidates or max(4 * k, 20)
        model_id, dims, _name = await self._embedding_model()
        timings: dict[str, float] = {}

        async def timed(name: str, work: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await work
            finally:
                timings[name] = (time.perf_counter() - t0) * 1000

        # Order matters on a small machine.  The query embedding runs alone: llama.cpp's
        # threads wait passively between graph nodes, and anything else runnable (a
        # Postgres backend, a Python thread) delays their wake-ups; next to a small query
        # (a size check, since removed) it took 13-15 ms p50 instead of 9-11.  The two
        # searches are then both Postgres queries on their own connections and run at
        # once, one per core.  Nothing is counted first: the dense search picks its plan
        # from whether the workspace has an index of its own.
        dense = mode in ("hybrid", "dense")
        keyword = mode in ("hybrid", "keyword")
        vectors: Any = []
        if dense:
            vectors = await timed("embed_ms", self.inference.embed(list(queries), key="query"))
        searches = []
        if dense:
            searches.append(
                timed("dense_ms", self._dense_lists(workspace.id, model_id, dims, vectors, n))
            )
        if keyword:
            searches.append(
                timed("keyword_ms", self._keyword_lists(workspace.id, model_id, queries, n))
            )
        lists: list[list[ChunkHit]] = [
            hits for found in await asyncio.gather(*searches) for hits in found
        ]
        fused = fuse(lists)
        # A chunk only the keyword search found (often the one holding the question's
        # rare name: a table row of "Vishay Siliconix" embeds like every other row, below
        # the dense list's reach) gets its similarity to the question, so the relevance
        # rule below judges it like the rest instead of dropping it for having none.
        reached: dict[int, float] = {}
        if dense and keyword and len(vectors):
            reached = await self._keyword_only_similarities(
                workspace.id, model_id, dims, vectors[0], fused
            )
            fused = [
                (
                    replace(hit, similarity=reached[hit.chunk_id])
                    if hit.chunk_id in reached
                    else hit,
                    s,
                )
                for hit, s in fused
            ]
        # Relevance is judged on the question itself (the first query): context queries
        # (a follow-up joined to the earlier question) help ranking, but must never make an
        # unrelated question look answerable.
        primary_sim: dict[int, float] = {}
        primary_terms: set[int] = set()
        primary_words: set[int] = set()
        if mode in ("hybrid", "dense") and lists:
            primary_sim = {h.chunk_id: h.similarity or 0.0 for h in lists[0]}
            primary_sim.update(reached)
        if mode in ("hybrid", "keyword"):
            kw_first = lists[len(queries)] if mode == "hybrid" else lists[0]
            primary_terms = {h.chunk_id for h in kw_first if h.all_terms}
            # The bundled embedding model (all-MiniLM-L6-v2) learnt English: on a Chinese
            # question its similarities are noise (seen by hand: an unrelated Chinese
            # standard at 0.71, the news passage that answers at 0.57), and no passage
            # holds every character pair of a question (some straddle two words).  So what
            # the keyword search found is a candidate there, and the evidence step, which
            # compares the words, decides.
            if is_cjk(queries[0]):
                primary_words = {h.chunk_id for h in kw_first}
        floor = workspace.relevance_floor
        best = max(primary_sim.values(), default=None)
        ranked = []
        for hit, score in fused:
            sim = primary_sim.get(hit.chunk_id)
            covered = hit.chunk_id in primary_terms or hit.chunk_id in primary_words
            if mode == "keyword":
                relevant = True
            else:
                relevant = covered or (sim is not None and sim >= floor)
                # Next to a strong match, a chunk far less similar is noise that the model
                # would repeat and the citations would name: keep only those near the best.
                if relevant and not covered and best is not None:
                    relevant = sim is not None and sim >= best - self.margin
            ranked.append(Ranked(hit, score, relevant))
        relevant = [r for r in ranked if r.relevant][:k]
        elapsed = (time.perf_counter() - started) * 1000
        return Retrieved(
            relevant,
            elapsed,
            candidates=len(fused),
            timings=timings,
            ranked=ranked,
            query_vectors=vectors if dense else None,
            embedding_model_id=model_id,
        )
