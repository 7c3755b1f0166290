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


def ef_search_for(rows: int, k: int) -> int:
    """The breadth of an HNSW search (hnsw.ef_search) of a workspace index of ``rows``
    rows asked for ``k`` neighbours.

    pgvector's default breadth of 40 lost neighbours on a 100k-row workspace
    (recall@10 against the exact scan, index built at ef_construction 128: 0.973 at
    ef 60, 0.988 at 120, 0.998 at 160, for 9.9 / 9.4 / 12.3 ms p50 on a loaded
    machine): HNSW_EF_SEARCH (160) is every session's default.  Larger k needs more.
    """
    return min(1000, max(HNSW_EF_SEARCH, 2 * int(k)))
