"""Per-workspace HNSW indexes: knowing them, building them, upgrading them to halfvec.

pgvector before 0.8 filters an HNSW search by workspace after the index scan, so a
workspace holding 10-20% of the rows gets fewer than k rows back, or poor recall,
unless ef_search is very large.  A workspace too large for an exact scan therefore
gets a partial HNSW index of its own, over its rows only:

  CREATE INDEX CONCURRENTLY chunks_embedding_hnsw_m{M}_w{W} ON chunks
    USING hnsw ((embedding::halfvec(D)) halfvec_cosine_ops)
    WHERE embedding_model_id = M AND workspace_id = W

(``vector`` and ``vector_cosine_ops`` on the fallback path: see ``IndexKind``)
created at runtime when the workspace crosses exact_scan_max_rows: by the ingest
worker after it completes a document, or by a maintenance call.  A search of it is an
unfiltered HNSW search (``bot.store.search``).  An index of the older kind (``vector``,
from a home made before the pgvector 0.8 path) is rebuilt as ``halfvec`` beside the
old one, which serves searches until the new one replaces it
(``upgrade_workspace_index``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot.store.database import PATH_08, Database
from bot.store.hnsw import (
    HALFVEC_INDEX,
    HNSW_WITH,
    VECTOR_INDEX,
    IndexKind,
    WorkspaceIndex,
    index_kind_of,
    workspace_index_name,
)

log = logging.getLogger(__name__)

# Whether an index is valid, its definition (which says whether it holds halfvec), and
# how many rows it held when last counted (set by its build, then by VACUUM/ANALYZE).
_INDEX_STATE = (
    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid), c.reltuples FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indexrelid = to_regclass(%s)"
)
LOCK_WORKSPACE_INDEX = 0x4C4C  # building one workspace's own HNSW index (see repo's list)

# Workspaces with at most this many chunks are searched exactly; above it, a
# workspace gets an HNSW index of its own (Store.ensure_workspace_index).  The exact
# scan costs ~1.7 us a row on the 2-core reference machine (half fetching the row,
# half pgvector's distance), so it is as fast as an HNSW search (~5 ms) near 3,000
# rows; below that it is both exact and no slower.  No index shared by workspaces
# stands in: pgvector < 0.8 filters after the index scan and can return fewer than k
# rows; pgvector 0.8's iterative scans return k, but at recall 0.83-0.97 and p95 up to
# 77 ms for workspaces of 1-2% (tools/compare_vector_plans.py, 200k rows); and every
# chunk written would pay for its inserts.
EXACT_SCAN_MAX_ROWS = 3_000
# Suffixes of an index being built to replace a workspace's own, and of the one it
# replaced while the latter is dropped (both within PostgreSQL's 63-byte names).
_NEXT, _OLD = "_next", "_old"


class WorkspaceIndexMixin:
    """The Store's knowledge of per-workspace HNSW indexes (state set up by ``Store``)."""

    db: Database
    engine: Engine
    exact_scan_max_rows: int
    index_recheck_s: float
    _indexed: dict[tuple[int, int], WorkspaceIndex]
    _not_indexed: dict[tuple[int, int], float]

    @property
    def index_kind(self) -> IndexKind:
        """The kind of HNSW index this server gets for a workspace that outgrows the
        exact scan: halfvec on the pgvector 0.8 path, vector on the fallback."""
        return HALFVEC_INDEX if self.db.vector_path == PATH_08 else VECTOR_INDEX

    def _known_indexed(self, model: int, ws: int, index: WorkspaceIndex) -> None:
        self._indexed[(model, ws)] = index
        self._not_indexed.pop((model, ws), None)

    def _workspace_indexed(
        self, conn: psycopg.Connection[Any], model: int, ws: int
    ) -> WorkspaceIndex | None:
        """The workspace's own valid index (kind and rows); None when it has none (yet).

        Both answers are kept for ``index_recheck_s``: a search costs no catalog lookup,
        and an index another process built, grew or upgraded is seen within that time.
        """
        key = (model, ws)
        now = time.monotonic()
        known = self._indexed.get(key)
        if known is not None and now - known.checked < self.index_recheck_s:
            return known
        checked = self._not_indexed.get(key)
        if checked is not None and now - checked < self.index_recheck_s:
            return None
        found = self._valid_index(conn, workspace_index_name(model, ws))
        if found is not None:
            self._known_indexed(model, ws, found)
            return found
        self._indexed.pop(key, None)
        self._not_indexed[key] = now
        return None

    @staticmethod
    def _valid_index(
        conn: Connection | psycopg.Connection[Any], name: str
    ) -> WorkspaceIndex | None:
        """Index ``name`` if it is valid, on a main-pool or search connection."""
        if isinstance(conn, Connection):
            row = conn.exec_driver_sql(_INDEX_STATE, (name,)).first()
        else:
            row = conn.execute(_INDEX_STATE, (name,)).fetchone()
        if not row or not row[0]:
            return None
        return WorkspaceIndex(index_kind_of(str(row[1])), max(0, int(row[2])), time.monotonic())

    @classmethod
    def _has_valid_index(cls, conn: Connection | psycopg.Connection[Any], name: str) -> bool:
        """Whether ``name`` is a valid index, on a main-pool or a search connection."""
        return cls._valid_index(conn, name) is not None

    def workspace_index_exists(self, workspace_id: int, embedding_model_id: int) -> bool:
        """Whether the workspace has a usable (valid) HNSW index of its own."""
        with self.engine.connect() as conn:
            return self._has_valid_index(
                conn, workspace_index_name(embedding_model_id, workspace_id)
            )

    def workspace_index_kind(self, workspace_id: int, embedding_model_id: int) -> str | None:
        """The type the workspace's own valid index holds ("halfvec", "vector"), or None."""
        with self.engine.connect() as conn:
            found = self._valid_index(conn, workspace_index_name(embedding_model_id, workspace_id))
        return found.kind.type if found else None

    def workspace_search_rows(self, workspace_id: int, embedding_model_id: int) -> int:
        """Whether a workspace outgrew the exact scan, as cheaply as possible.

        The exact count up to ``exact_scan_max_rows``; above it, that plus one.  A
        workspace with its own HNSW index is not counted at all (the index exists
        because it outgrew the exact scan): counting 100k rows through the heap costs
        more than the HNSW search itself.
        """
        ws, model = int(workspace_id), int(embedding_model_id)
        cap = self.exact_scan_max_rows + 1
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT CASE WHEN coalesce((SELECT indisvalid FROM pg_index "
                        "WHERE indexrelid = to_regclass(:n)), false) THEN :cap "
                        "ELSE (SELECT count(*) FROM (SELECT 1 FROM chunks "
                        f"WHERE workspace_id = {ws} AND embedding_model_id = {model} "
                        "LIMIT :cap) s) END"
                    ),
                    {"n": workspace_index_name(model, ws), "cap": cap},
                ).scalar_one()
            )

    def _create_index(
        self,
        conn: Connection,
        name: str,
        model: int,
        ws: int,
        dim: int,
        rows: int,
        *,
        concurrently: bool,
    ) -> None:
        """CREATE INDEX of the server's kind over one workspace's rows, named ``name``."""
        kind = self.index_kind
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))  # a failed build's leftover
        # The graph must fit in maintenance_work_mem or the build slows down many
        # times: about the vectors plus their neighbour lists, capped at 2 GB.
        need_mb = min(2048, max(64, rows * (4 * dim + 600) // 1_000_000 + 32))
        conn.execute(text(f"SET maintenance_work_mem = '{int(need_mb)}MB'"))
        try:
            conn.execute(
                text(
                    f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{name} "
                    f"ON chunks USING hnsw (({kind.of(dim)}) {kind.ops}) "
                    f"{HNSW_WITH} "
                    f"WHERE embedding_model_id = {model} AND workspace_id = {ws}"
                )
            )
        finally:
            conn.execute(text("RESET maintenance_work_mem"))

    def ensure_workspace_index(
        self,
        workspace_id: int,
        embedding_model_id: int,
        dims: int,
        *,
        concurrently: bool = True,
        workspace_rows: int | None = None,
    ) -> bool:
        """Give a workspace larger than ``exact_scan_max_rows`` its own HNSW index.

        Returns True when an index was built now.  ``concurrently`` (the default) builds
        it without blocking writes to ``chunks``; an invalid index left by an interrupted
        concurrent build is dropped and built again.  One process builds a given index at
        a time (a session advisory lock); another caller returns False at once.
        """
        ws, model, dim = int(workspace_id), int(embedding_model_id), int(dims)
        rows = workspace_rows
        if rows is None:
            rows = self.workspace_search_rows(ws, model)  # capped; no count once indexed
        if rows <= self.exact_scan_max_rows:
            return False
        name = workspace_index_name(model, ws)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # An index of the other kind is kept and used until upgrade_workspace_indexes
            # replaces it (a home made before the pgvector 0.8 path).
            existing = self._valid_index(conn, name)
            if existing is not None:
                self._known_indexed(model, ws, existing)
                return False
            if not self._try_lock(conn, ws):
                return False
            try:
                existing = self._valid_index(conn, name)
                if existing is not None:
                    self._known_indexed(model, ws, existing)
                    return False
                self._create_index(conn, name, model, ws, dim, rows, concurrently=concurrently)
                built = self._valid_index(conn, name)
            finally:
                self._unlock(conn, ws)
        if built is not None:
            self._known_indexed(model, ws, built)
        return True

    @staticmethod
    def _try_lock(conn: Connection, ws: int) -> bool:
        return bool(
            conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": LOCK_WORKSPACE_INDEX, "b": ws}
            ).scalar()
        )

    @staticmethod
    def _unlock(conn: Connection, ws: int) -> None:
        conn.execute(
            text("SELECT pg_advisory_unlock(:a, :b)"), {"a": LOCK_WORKSPACE_INDEX, "b": ws}
        )

    def ensure_workspace_indexes(
        self, embedding_model_id: int, dims: int, *, concurrently: bool = True
    ) -> list[int]:
        """Build the missing per-workspace indexes of one model (maintenance); ids built."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT workspace_id, count(*) AS n FROM chunks "
                    "WHERE embedding_model_id = :m GROUP BY workspace_id HAVING count(*) > :t"
                ),
                {"m": int(embedding_model_id), "t": self.exact_scan_max_rows},
            ).all()
        return [
            int(r.workspace_id)
            for r in rows
            if self.ensure_workspace_index(
                r.workspace_id,
                embedding_model_id,
                dims,
                concurrently=concurrently,
                workspace_rows=int(r.n),
            )
        ]

    def outdated_workspace_indexes(self, embedding_model_id: int) -> list[int]:
        """Workspaces whose own index is not of this server's kind (vector on 0.8)."""
        model = int(embedding_model_id)
        prefix = workspace_index_name(model, 0).removesuffix("0")
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = 'chunks'::regclass AND i.indisvalid "
                    "AND c.relname LIKE :p"
                ),
                {"p": prefix.replace("_", r"\_") + "%"},
            ).all()
        kind = self.index_kind
        out = []
        for name, definition in found:
            ws = str(name).removeprefix(prefix)
            if ws.isdigit() and index_kind_of(str(definition)) != kind:
                out.append(int(ws))
        return sorted(out)

    def upgrade_workspace_index(
        self,
        workspace_id: int,
        embedding_model_id: int,
        dims: int,
        *,
        grace_s: float | None = None,
    ) -> bool:
        """Replace a workspace's index of the older kind by one of the server's kind.

        Returns True when it was replaced now.  The new index is built CONCURRENTLY
        under a temporary name beside the old one, which keeps serving searches
        meanwhile (they are ordered by the old kind's expression, which only it
        matches); then the two swap names, and the old one is dropped CONCURRENTLY
        after ``grace_s``, the time another process takes to notice the new kind (it
        keeps searching the old index until then; ``index_recheck_s`` unless given).
        There is no moment when the workspace has no index serving its searches.  A
        build cut short leaves the old index in place (its leftover is dropped by the
        next attempt).
        """
        ws, model, dim = int(workspace_id), int(embedding_model_id), int(dims)
        name = workspace_index_name(model, ws)
        kind = self.index_kind
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not self._try_lock(conn, ws):
                return False
            try:
                # A swap cut short before its drop left the old index under _OLD.
                conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}{_OLD}"))
                current = self._valid_index(conn, name)
                if current is None or current.kind == kind:
                    return False
                rows = max(current.rows, self.exact_scan_max_rows + 1)
                log.info(
                    "workspace %s: building a %s HNSW index to replace its %s one (%d rows)",
                    ws,
                    kind.type,
                    current.kind.type,
                    rows,
                )
                started = time.monotonic()
                self._create_index(conn, f"{name}{_NEXT}", model, ws, dim, rows, concurrently=True)
                # Both renames in one statement, hence one transaction: the name always
                # belongs to a valid index (a plain BEGIN is a no-op in AUTOCOMMIT).
                conn.execute(
                    text(
                        f"DO $$ BEGIN ALTER INDEX {name} RENAME TO {name}{_OLD}; "
                        f"ALTER INDEX {name}{_NEXT} RENAME TO {name}; END $$"
                    )
                )
                built = self._valid_index(conn, name)
                if built is not None:
                    self._known_indexed(model, ws, built)
                time.sleep(self.index_recheck_s if grace_s is None else grace_s)
                conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}{_OLD}"))
                log.info(
                    "workspace %s: its HNSW index now holds %s (%.0f s)",
                    ws,
                    kind.type,
                    time.monotonic() - started,
                )
            finally:
                self._unlock(conn, ws)
        return True
