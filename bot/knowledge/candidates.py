"""The chunks the evidence step chooses its sentences from: the relevant hits and the
next best, the chunk after the best one, a follow-up's earlier chunks, or the chunks of
a document (or page) the question names."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from bot.knowledge.named import Named
from bot.knowledge.retrieval import Ranked
from bot.store.records import ChunkHit

# How many chunks of a page asked for by number the evidence is chosen from.
PAGE_CHUNKS = 4
# How many opening chunks answer "What is X about?" (title, abstract) and a question on
# its header ("Who wrote X?", "When was X published?"): an e-book's header runs longer
# (seen by hand in session 17: a cover, a licence, then the title, author and release
# date in the third chunk and the printed "1913" in the fourth).
OPENING_CHUNKS = 2
HEADER_CHUNKS = 4
# How many chunks the evidence sentences are chosen from (the relevant hits first).
EVIDENCE_CHUNKS = 8


async def evidence_candidates(
    store: Any,
    workspace_id: int,
    hits: list[Ranked],
    earlier: list[int],
    named: Named | None,
    retrieved: Any,
) -> list[ChunkHit]:
    """The chunks the evidence is chosen from, best first; ``earlier``: the chunks
    the previous answer cited, for a follow-up."""
    if named is not None and named.document_id is not None:
        if named.page is not None:  # "page 3 of X": that page's chunks, or none
            return await asyncio.to_thread(
                store.opening_chunks,
                workspace_id,
                named.document_id,
                PAGE_CHUNKS,
                page=named.page,
            )
        if named.about:
            n = HEADER_CHUNKS if named.header else OPENING_CHUNKS
            return await asyncio.to_thread(store.opening_chunks, workspace_id, named.document_id, n)
        # "In X, what ...": X's own chunks among the candidates, else its opening.
        own = [r.hit for r in retrieved.ranked if r.hit.document_id == named.document_id]
        if own:
            return own[:4]
        return await asyncio.to_thread(store.opening_chunks, workspace_id, named.document_id)
    # The relevant hits, then the next best candidates: a sentence that answers may sit
    # in a chunk ranked fifth (a table row, a name in a list); sentences are cheap.
    chunks = [r.hit for r in hits]
    if hits:
        seen_ids = {c.chunk_id for c in chunks}
        chunks.extend(
            r.hit for r in retrieved.ranked[:EVIDENCE_CHUNKS] if r.hit.chunk_id not in seen_ids
        )
        chunks = chunks[:EVIDENCE_CHUNKS]
        chunks = await _with_continuation(store, workspace_id, hits[0].hit, chunks, hits)
    if earlier:
        # A follow-up may be answered by what the previous answer rested on.
        seen = {c.chunk_id for c in chunks}
        fetched = await asyncio.to_thread(store.chunks_by_ids, workspace_id, earlier)
        chunks.extend(c for c in fetched if c.chunk_id not in seen)
    return chunks


async def _with_continuation(
    store: Any, workspace_id: int, best: ChunkHit, chunks: list[ChunkHit], hits: list[Ranked]
) -> list[ChunkHit]:
    """The candidates with the chunk that follows the best one in its document.

    Chunks are cut by length, not by meaning: the passage the best chunk begins often
    ends in the next one ("the proposed project ..." / "... allowing 43 more
    dwellings"; a title page, then the preface that says who wrote it and when),
    and that chunk alone, with fewer of the question's words, ranks far down.  It is
    scored as part of its passage (the best chunk's similarity).  It takes the place
    of the last candidate that is no relevant hit (one a list ranked for a few shared
    words), so the number of candidates stays what it was; it is added only when
    every candidate is relevant.
    """
    following = await asyncio.to_thread(store.next_chunks, workspace_id, [best.chunk_id])
    after = following.get(best.chunk_id)
    if after is None or any(c.chunk_id == after.chunk_id for c in chunks):
        return chunks
    after = replace(after, similarity=best.similarity)
    relevant = {r.hit.chunk_id for r in hits}
    filler = [i for i, c in enumerate(chunks) if c.chunk_id not in relevant]
    if filler:
        return [after if i == filler[-1] else c for i, c in enumerate(chunks)]
    return [*chunks, after]
