"""A workspace's own HNSW index: its name, build parameters and the type it holds.

The search side (``bot.store.search``) builds one for each workspace that outgrows the
exact scan; which type it holds depends on the server's pgvector
(``bot.store.database.vector_path``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.database import HNSW_EF_SEARCH

# Build parameters of a workspace's own HNSW index.  pgvector's default
# ef_construction (64) left islands in the graph of a 40k-row workspace: single queries
# found 0 of their 10 true neighbours even at ef_search 160.  At 128 the same workspace
# gave recall@10 0.998 at ef_search 120, for a build ~1.5x as long.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_WITH = f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"


@dataclass(frozen=True)
class IndexKind:
    """What a workspace's own HNSW index holds: the type its vectors are cast to."""

    type: str  # "vector" (4-byte floats) or "halfvec" (2-byte floats, pgvector >= 0.7)

    @property
    def ops(self) -> str:
        """The operator class of cosine distance on this type."""
        return f"{self.type}_cosine_ops"

    def of(self, dim: int) -> str:
        """The indexed expression, which a search must repeat for the index to serve it."""
        return f"embedding::{self.type}({int(dim)})"


# pgvector 0.6's only kind, and the kind the "0.8" path builds: half the index size and
# memory, with the same filtered recall (see "Dense search plans" in the README).
VECTOR_INDEX = IndexKind("vector")
HALFVEC_INDEX = IndexKind("halfvec")


@dataclass(frozen=True)
class WorkspaceIndex:
    """A workspace's own valid HNSW index, as last looked up."""

    kind: IndexKind
    rows: int  # rows it held when last counted (pg_class.reltuples); 0 if never
    checked: float  # time.monotonic() of the lookup


def index_kind_of(definition: str) -> IndexKind:
    """The kind of an index, from its definition (``pg_get_indexdef``)."""
    return HALFVEC_INDEX if "halfvec_cosine_ops" in definition else VECTOR_INDEX


def workspace_index_name(embedding_model_id: int, workspace_id: int) -> str:
    """The name of a workspace's own partial HNSW index for one embedding model."""
    return f"chunks_embedding_hnsw_m{int(embedding_model_id)}_w{int(workspace_id)}"


# Rows of a workspace index per unit of its search breadth, above HNSW_EF_SEARCH.
# Calibrated with tools/calibrate_hnsw.py on the retrieval benchmark's filler drawn
# from seed 7 (not the benchmark's own), one 500,000-row workspace (the largest of the
# 1M-row benchmark), 500 questions, m 16 / ef_construction 128, recall@10 against the
# exact top 10, two builds (HNSW builds differ run to run):
#   ef_search 160: 0.977 / 0.973 (5 / 9 queries below 0.5, some at 0.0)
#   ef_search 320: 0.989 / 0.987 (3 / 2 below 0.5)
#   ef_search 480: 0.995 / 0.994 (1 / 0 below 0.5)
#   ef_search 640: 0.996 (0 below 0.5; worst query 0.7), search alone p50 5.9 ms
# The 0.0 queries are the greedy descent ending in the wrong region of a big graph:
# a broader search recovers them, and more so per millisecond than a denser graph
# (m 24: 0.996 at ef_search 480 for the same p50 6.3 ms, built 1.6x as long) or a
# re-ordering of the halfvec top rows at full precision (+0.001).  So the breadth
# grows with the index: 160 up to 128k rows (0.998 at 100k), 625 at 500k.
ROWS_PER_EF = 800
EF_SEARCH_MAX = 1000  # pgvector's limit


def ef_search_for(rows: int, k: int) -> int:
    """The breadth of an HNSW search (hnsw.ef_search) of a workspace index of ``rows``
    rows asked for ``k`` neighbours: HNSW_EF_SEARCH, every session's default (a
    100k-row workspace: recall@10 0.973 / 0.988 / 0.998 at 60 / 120 / 160), more for a
    larger index (ROWS_PER_EF) and for a larger k, at most pgvector's 1000.
    """
    return min(EF_SEARCH_MAX, max(HNSW_EF_SEARCH, int(rows) // ROWS_PER_EF, 2 * int(k)))
