"""Hybrid retrieval: pgvector cosine search and Postgres full-text search, fused by rank.

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

from bot.store.records import ChunkHit, Workspace
from bot.store.repo import Store

# Reciprocal-rank-fusion constant (Cormack et al. 2009): dampens the weight of top ranks.
RRF_K = 60


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

    @property
    def found(self) -> bool:
        """Whether anything passed the relevance floor."""
        return bool(self.hits)


def fuse(result_lists: Sequence[Sequence[ChunkHit]]) -> list[tuple[ChunkHit, float]]:
    """Reciprocal rank fusion of several ranked lists; facts from every list are merged."""
    scores: dict[int, float] = {}
    merged: dict[int, ChunkHit] = {}
    for hits in result_lists:
        for rank, hit in enumerate(hits):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
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
        # Exact up to the exact-scan threshold, capped above it (see workspace_search_rows).
        rows = await asyncio.to_thread(self.store.workspace_search_rows, workspace.id, model_id)
        if rows == 0:
            return Retrieved([], (time.perf_counter() - started) * 1000)
        lists: list[list[ChunkHit]] = []
        timings: dict[str, float] = {}
        if mode in ("hybrid", "dense"):
            t0 = time.perf_counter()
            vectors = await self.inference.embed(list(queries), key="query")
            timings["embed_ms"] = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            for vector in vectors:
                lists.append(
                    await asyncio.to_thread(
                        self.store.search_dense,
                        workspace.id,
                        model_id,
                        dims,
                        [float(x) for x in vector],
                        n,
                        workspace_rows=rows,
                    )
                )
            timings["dense_ms"] = (time.perf_counter() - t0) * 1000
        if mode in ("hybrid", "keyword"):
            t0 = time.perf_counter()
            for query in queries:
                lists.append(
                    await asyncio.to_thread(
                        self.store.search_keyword, workspace.id, model_id, query, n
                    )
                )
            timings["keyword_ms"] = (time.perf_counter() - t0) * 1000
        fused = fuse(lists)
        # Relevance is judged on the question itself (the first query): context queries
        # (a follow-up joined to the earlier question) help ranking, but must never make an
        # unrelated question look answerable.
        primary_sim: dict[int, float] = {}
        primary_terms: set[int] = set()
        if mode in ("hybrid", "dense") and lists:
            primary_sim = {h.chunk_id: h.similarity or 0.0 for h in lists[0]}
        if mode in ("hybrid", "keyword"):
            kw_first = lists[len(queries)] if mode == "hybrid" else lists[0]
            primary_terms = {h.chunk_id for h in kw_first if h.all_terms}
        floor = workspace.relevance_floor
        best = max(primary_sim.values(), default=None)
        ranked = []
        for hit, score in fused:
            sim = primary_sim.get(hit.chunk_id)
            covered = hit.chunk_id in primary_terms
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
        return Retrieved(relevant, elapsed, candidates=len(fused), timings=timings, ranked=ranked)
