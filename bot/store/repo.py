"""Every query the bot runs, behind one class.

Methods are synchronous (SQLAlchemy Core on psycopg 3); the asynchronous core
calls them through ``asyncio.to_thread``.  Every search takes the workspace id
and filters on it in SQL: that filter is the boundary between teams.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Connection, Row

from bot.store.database import HNSW_EF_SEARCH, Database
from bot.store.keyword import search_bm25
from bot.store.records import (
    Binding,
    ChunkHit,
    Document,
    HistoryMessage,
    NewChunk,
    Workspace,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Advisory-lock namespaces (first key of the two-int form).
LOCK_DOCUMENT = 0x4C49  # one ingest worker per document
LOCK_EMBEDDING_MODEL = 0x4C4A  # registering an embedding model
LOCK_RETENTION = 0x4C4B  # one retention run at a time across processes
LOCK_WORKSPACE_INDEX = 0x4C4C  # building one workspace's own HNSW index

# Workspaces with at most this many chunks are searched exactly; above it, a
# workspace gets an HNSW index of its own (Store.ensure_workspace_index).  The exact
# scan costs ~1.7 us a row on the 2-core reference machine (half fetching the row,
# half pgvector's distance), so it is as fast as an HNSW search (~5 ms) near 3,000
# rows; below that it is both exact and no slower.  No index shared by workspaces
# stands in: pgvector < 0.8 filters after the index scan and can return fewer than k
# rows, and every chunk written would pay for its inserts.
EXACT_SCAN_MAX_ROWS = 3_000
# Build parameters of a workspace's own HNSW index.  pgvector's default
# ef_construction (64) left islands in the graph of a 40k-row workspace: single queries
# found 0 of their 10 true neighbours even at ef_search 160.  At 128 the same workspace
# gave recall@10 0.998 at ef_search 120, for a build ~1.5x as long.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# How long a workspace found without an index of its own is believed to have none.
NO_INDEX_RECHECK_S = 30.0
HNSW_WITH = f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"


@dataclass(frozen=True)
class WorkspaceDefaults:
    """Settings given to a workspace when it is created."""

    chunk_tokens: int
    chunk_overlap: int
    top_k: int
    relevance_floor: float

    @classmethod
    def from_settings(cls, settings: Any) -> WorkspaceDefaults:
        """The defaults configured in ``bot.config.Settings``."""
        return cls(
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            top_k=settings.top_k,
            relevance_floor=settings.relevance_floor,
        )


def channel_spec(platform: str, space_id: str, channel_id: str) -> str:
    """How the CLI and the audit log name a channel: ``console:general``, ``slack:T01/C02``."""
    return f"{platform}:{space_id}/{channel_id}" if space_id else f"{platform}:{channel_id}"


_WS_COLS = (
    "w.id AS w_id, w.name AS w_name, w.chunk_tokens, w.chunk_overlap, w.top_k, "
    "w.relevance_floor, w.chat_model, w.system_prompt"
)
_BINDING_SELECT = (
    "SELECT b.id, b.platform, b.space_id, b.channel_id, b.channel_name, b.retention_seconds, "
    f"b.answer_mode, b.auto_index, b.upload_policy, {_WS_COLS} "
    "FROM channel_bindings b JOIN workspaces w ON w.id = b.workspace_id "
)
_CHUNK_COUNT = "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
_DOC_COLS = (
    "d.id, d.workspace_id, d.file_name, d.media_type, d.sha256, d.size_bytes, d.page_count, "
    "d.status, d.error, d.uploader, d.source_platform, d.source_space, d.source_channel, "
    "d.source_message, d.source_file_id, d.source_url, d.attempts, d.created_at"
)


def _workspace(row: Row) -> Workspace:
    m = row._mapping
    return Workspace(
        id=m["w_id"],
        name=m["w_name"],
        chunk_tokens=m["chunk_tokens"],
        chunk_overlap=m["chunk_overlap"],
        top_k=m["top_k"],
        relevance_floor=m["relevance_floor"],
        chat_model=m["chat_model"],
        system_prompt=m["system_prompt"],
    )


def _binding(row: Row) -> Binding:
    m = row._mapping
    return Binding(
        id=m["id"],
        platform=m["platform"],
        space_id=m["space_id"],
        channel_id=m["channel_id"],
        channel_name=m["channel_name"],
        workspace=_workspace(row),
        retention_seconds=m["retention_seconds"],
        answer_mode=m["answer_mode"],
        auto_index=m["auto_index"],
        upload_policy=m["upload_policy"],
    )


def _document(row: Row) -> Document:
    m = dict(row._mapping)
    m.setdefault("chunk_count", 0)
    return Document(**m)


def workspace_index_name(embedding_model_id: int, workspace_id: int) -> str:
    """The name of a workspace's own partial HNSW index for one embedding model."""
    return f"chunks_embedding_hnsw_m{int(embedding_model_id)}_w{int(workspace_id)}"


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form; exact round trip of float32 values.

    ``str`` of a list formats its floats in C (shortest repr, which round-trips):
    ~3x faster than joining reprs, and pgvector skips the spaces after the commas.
    """
    return str([float(v) for v in values])


def _dense_hit(r: Sequence[Any]) -> ChunkHit:
    """A row of search_dense's SELECT, by position."""
    return ChunkHit(
        r[0], r[1], r[2], r[3], r[4], r[5], similarity=r[6], source_channel=r[7], source_url=r[8]
    )


class Store:
    """Queries over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        # Per instance so that a benchmark can exercise every plan on a small database.
        self.exact_scan_max_rows = EXACT_SCAN_MAX_ROWS
        # Searches run on their own pool, outside transactions (Database.searcher).
        self._searcher = db.searcher
        # Which workspaces have an HNSW index of their own: yes is kept (an index is
        # not dropped), no is looked up again after NO_INDEX_RECHECK_S.
        self._indexed: set[tuple[int, int]] = set()
        self._not_indexed: dict[tuple[int, int], float] = {}
        # How often each dense-search plan ran (exact, forced_exact, workspace_hnsw,
        # exact_fallback): for benchmarks and status, not for decisions.
        self.plan_counts: collections.Counter[str] = collections.Counter()

    # -- workspaces and bindings ------------------------------------------------------------

    def _create_workspace(self, conn: Connection, name: str, defaults: WorkspaceDefaults) -> int:
        return conn.execute(
            text(
                "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, relevance_floor)"
                " VALUES (:n, :c, :o, :k, :f) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
                " RETURNING id"
            ),
            {
                "n": name,
                "c": defaults.chunk_tokens,
                "o": defaults.chunk_overlap,
                "k": defaults.top_k,
                "f": defaults.relevance_floor,
            },
        ).scalar_one()

    def binding_for(
        self,
        platform: str,
        space_id: str,
        channel_id: str,
        defaults: WorkspaceDefaults,
        channel_name: str | None = None,
    ) -> Binding:
        """The channel's binding; an unbound channel gets a workspace of its own."""
        key = {"p": platform, "s": space_id, "c": channel_id}
        where = "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c"
        with self.engine.begin() as conn:
            row = conn.execute(text(_BINDING_SELECT + where), key).first()
            if row is not None:
                return _binding(row)
            # A workspace of its own, named after the channel, so that two unbound
            # channels never see each other's documents.
            ws_name = (
                f"{platform}:{space_id}/{channel_id}" if space_id else f"{platform}:{channel_id}"
            )
            ws_id = self._create_workspace(conn, ws_name, defaults)
            conn.execute(
                text(
                    "INSERT INTO channel_bindings (platform, space_id, channel_id, channel_name, "
                    "workspace_id) VALUES (:p, :s, :c, :name, :w) "
                    "ON CONFLICT ON CONSTRAINT uq_binding_channel DO NOTHING"
                ),
                {**key, "name": channel_name, "w": ws_id},
            )
            row = conn.execute(text(_BINDING_SELECT + where), key).one()
            return _binding(row)

    def bind(
        self,
        platform: str,
        space_id: str,
        channel_id: str,
        workspace_name: str,
        defaults: WorkspaceDefaults,
        channel_name: str | None = None,
    ) -> tuple[Binding, bool]:
        """Bind a channel to a named workspace, creating it if needed.

        Returns the binding and whether the workspace was new.
        """
        with self.engine.begin() as conn:
            existing = conn.execute(
                text("SELECT id FROM workspaces WHERE name = :n"), {"n": workspace_name}
            ).scalar()
            ws_id = existing or self._create_workspace(conn, workspace_name, defaults)
            conn.execute(
                text(
                    "INSERT INTO channel_bindings (platform, space_id, channel_id, channel_name, "
                    "workspace_id) VALUES (:p, :s, :c, :name, :w) "
                    "ON CONFLICT ON CONSTRAINT uq_binding_channel "
                    "DO UPDATE SET workspace_id = EXCLUDED.workspace_id"
                ),
                {"p": platform, "s": space_id, "c": channel_id, "name": channel_name, "w": ws_id},
            )
            row = conn.execute(
                text(
                    _BINDING_SELECT
                    + "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c"
                ),
                {"p": platform, "s": space_id, "c": channel_id},
            ).one()
        return _binding(row), existing is None

    def update_binding(self, binding_id: int, **fields: Any) -> None:
        """Change per-channel settings (retention_seconds, auto_index, answer_mode, ...)."""
        allowed = {"retention_seconds", "auto_index", "answer_mode", "upload_policy"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not binding settings: {sorted(unknown)}")
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE channel_bindings SET {sets} WHERE id = :id"),
                {**fields, "id": binding_id},
            )

    def update_workspace(self, workspace_id: int, **fields: Any) -> None:
        """Change workspace settings (chunk_tokens, top_k, chat_model, ...)."""
        allowed = {
            "chunk_tokens",
            "chunk_overlap",
            "top_k",
            "relevance_floor",
            "chat_model",
            "system_prompt",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not workspace settings: {sorted(unknown)}")
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE workspaces SET {sets} WHERE id = :id"), {**fields, "id": workspace_id}
            )

    def workspace(self, workspace_id: int) -> Workspace:
        """A workspace by id."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_WS_COLS} FROM workspaces w WHERE w.id = :id"), {"id": workspace_id}
            ).one()
        return _workspace(row)

    def workspace_by_name(self, name: str) -> Workspace | None:
        """A workspace by name."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_WS_COLS} FROM workspaces w WHERE w.name = :n"), {"n": name}
            ).first()
        return _workspace(row) if row else None

    def bindings(self) -> list[Binding]:
        """Every channel binding."""
        with self.engine.connect() as conn:
            return [_binding(r) for r in conn.execute(text(_BINDING_SELECT + "ORDER BY b.id"))]

    # -- de-duplication ---------------------------------------------------------------------

    def mark_event(self, platform: str, event_id: str) -> bool:
        """Record a platform event; False if it was seen before (a redelivery)."""
        with self.engine.begin() as conn:
            inserted = conn.execute(
                text(
                    "INSERT INTO processed_events (platform, event_id) VALUES (:p, :e) "
                    "ON CONFLICT DO NOTHING RETURNING 1"
                ),
                {"p": platform, "e": event_id},
            ).scalar()
        return inserted is not None

    def prune_events(self, older_than_days: float) -> int:
        """Forget event ids recorded more than ``older_than_days`` ago; how many.

        Platforms redeliver an event within minutes (Slack retries for about an
        hour at most), so old ids only grow the table.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                text(
                    "DELETE FROM processed_events "
                    "WHERE processed_at < now() - make_interval(secs => :s)"
                ),
                {"s": float(older_than_days) * 86400.0},
            )
        return int(result.rowcount or 0)

    # -- embedding models -------------------------------------------------------------------

    def ensure_embedding_model(self, name: str, dims: int) -> int:
        """The id of an embedding model, creating its row on first use.

        Every search names one model, so vectors of different models or dimensions
        never meet.  No index is made here: a workspace gets its own HNSW index when it
        outgrows the exact scan (``ensure_workspace_index``).
        """
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:a, 0)"), {"a": LOCK_EMBEDDING_MODEL})
            row = conn.execute(
                text("SELECT id, dims FROM embedding_models WHERE name = :n"), {"n": name}
            ).first()
            if row is not None:
                if row.dims != dims:
                    raise ValueError(
                        f"embedding model {name} was registered with {row.dims} dimensions, "
                        f"not {dims}"
                    )
                return int(row.id)
            model_id = conn.execute(
                text("INSERT INTO embedding_models (name, dims) VALUES (:n, :d) RETURNING id"),
                {"n": name, "d": dims},
            ).scalar_one()
            return int(model_id)

    # -- documents --------------------------------------------------------------------------

    def add_document(
        self,
        workspace_id: int,
        *,
        file_name: str,
        media_type: str,
        sha256: str,
        size_bytes: int,
        uploader: str | None,
        source: dict[str, str | None] | None = None,
    ) -> tuple[Document, bool]:
        """Queue a document for indexing; the same bytes twice in a workspace are one document.

        Returns the document and whether it is new.  A document that failed before is
        queued again when shared again (the parser or limits may have changed).
        """
        src = source or {}
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO documents (workspace_id, file_name, media_type, sha256,"
                    " size_bytes, uploader, source_platform, source_space, source_channel,"
                    " source_message,"
                    " source_file_id, source_url) VALUES (:w, :fn, :mt, :sha, :size, :up,"
                    " :sp, :ss, :sc, :sm, :sf, :su)"
                    " ON CONFLICT ON CONSTRAINT uq_documents_workspace_sha DO NOTHING"
                    " RETURNING id"
                ),
                {
                    "w": workspace_id,
                    "fn": file_name,
                    "mt": media_type,
                    "sha": sha256,
                    "size": size_bytes,
                    "up": uploader,
                    "sp": src.get("platform"),
                    "ss": src.get("space"),
                    "sc": src.get("channel"),
                    "sm": src.get("message"),
                    "sf": src.get("file_id"),
                    "su": src.get("url"),
                },
            ).first()
            created = row is not None
            if not created:
                conn.execute(
                    text(
                        "UPDATE documents SET status = 'queued', error = NULL, attempts = 0, "
                        "updated_at = now() WHERE workspace_id = :w AND sha256 = :sha "
                        "AND status = 'failed'"
                    ),
                    {"w": workspace_id, "sha": sha256},
                )
            doc = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                    "AND d.sha256 = :sha"
                ),
                {"w": workspace_id, "sha": sha256},
            ).one()
        return _document(doc), created

    def get_document(self, document_id: int) -> Document | None:
        """A document by id, with its chunk count."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {_DOC_COLS}, {_CHUNK_COUNT}"
                    " AS chunk_count FROM documents d WHERE d.id = :id"
                ),
                {"id": document_id},
            ).first()
        return _document(row) if row else None

    def list_documents(self, workspace_id: int) -> list[Document]:
        """A workspace's documents, newest first, with chunk counts."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS}, {_CHUNK_COUNT}"
                    " AS chunk_count FROM documents d WHERE d.workspace_id = :w"
                    " ORDER BY d.created_at DESC, d.id DESC"
                ),
                {"w": workspace_id},
            ).all()
        return [_document(r) for r in rows]

    def set_document_status(
        self, document_id: int, status: str, *, error: str | None = None
    ) -> None:
        """Record a status change (and the error text for 'failed')."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE documents SET status = :s, error = :e, updated_at = now(), "
                    "attempts = attempts + CASE WHEN :s = 'indexing' THEN 1 ELSE 0 END "
                    "WHERE id = :id"
                ),
                {"s": status, "e": error, "id": document_id},
            )

    @contextlib.contextmanager
    def claim_document(self) -> Iterator[Document | None]:
        """Claim the next queued document for indexing, across processes.

        The claim is a session advisory lock held on a dedicated connection for as
        long as the block runs.  A process that dies mid-ingest loses its session,
        hence its lock, and its document ('indexing' but unlocked) is claimed again.
        """
        conn = self.engine.connect()
        claimed: int | None = None
        try:
            candidates = (
                conn.execute(
                    text(
                        "SELECT id FROM documents WHERE status IN ('queued', 'indexing') "
                        "ORDER BY id LIMIT 50"
                    )
                )
                .scalars()
                .all()
            )
            conn.commit()
            for doc_id in candidates:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:a, :b)"),
                    {"a": LOCK_DOCUMENT, "b": int(doc_id)},
                ).scalar()
                conn.commit()
                if not got:
                    continue
                # Re-check under the lock: another process may have finished it.
                still = conn.execute(
                    text("SELECT status FROM documents WHERE id = :id"), {"id": doc_id}
                ).scalar()
                conn.commit()
                if still in ("queued", "indexing"):
                    claimed = int(doc_id)
                    break
                conn.execute(
                    text("SELECT pg_advisory_unlock(:a, :b)"),
                    {"a": LOCK_DOCUMENT, "b": int(doc_id)},
                )
                conn.commit()
            yield self.get_document(claimed) if claimed is not None else None
        finally:
            if claimed is not None:
                with contextlib.suppress(Exception):
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": LOCK_DOCUMENT, "b": claimed},
                    )
                    conn.commit()
            conn.close()

    def complete_document(
        self,
        document_id: int,
        *,
        page_count: int,
        chunks: Sequence[NewChunk],
        embedding_model_id: int,
    ) -> None:
        """Write a document's chunks and mark it ready, in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id})
            ws = conn.execute(
                text("SELECT workspace_id FROM documents WHERE id = :d FOR UPDATE"),
                {"d": document_id},
            ).scalar()
            if ws is None:
                return  # forgotten while it was being indexed: nothing to write
            if chunks:
                conn.execute(
                    text(
                        "INSERT INTO chunks (document_id, workspace_id, ordinal, page_start, "
                        "page_end, text, embedding, embedding_model_id) "
                        "VALUES (:d, :w, :o, :ps, :pe, :t, :e, :m)"
                    ),
                    [
                        {
                            "d": document_id,
                            "w": ws,
                            "o": c.ordinal,
                            "ps": c.page_start,
                            "pe": c.page_end,
                            "t": c.text,
                            "e": vector_literal(c.embedding),
                            "m": embedding_model_id,
                        }
                        for c in chunks
                    ],
                )
            conn.execute(
                text(
                    "UPDATE documents SET status = 'ready', error = NULL, page_count = :p, "
                    "updated_at = now() WHERE id = :d"
                ),
                {"p": page_count, "d": document_id},
            )

    def fail_document(self, document_id: int, error: str, *, page_count: int | None = None) -> None:
        """Mark a document failed with a plain reason; no chunks are kept."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id})
            conn.execute(
                text(
                    "UPDATE documents SET status = 'failed', error = :e, "
                    "page_count = COALESCE(:p, page_count), updated_at = now() WHERE id = :d"
                ),
                {"e": error, "p": page_count, "d": document_id},
            )

    def find_documents(self, workspace_id: int, name_or_id: str) -> list[Document]:
        """Documents of a workspace matching an id or a file name (exact, then partial)."""
        with self.engine.connect() as conn:
            if name_or_id.isdigit():
                rows = conn.execute(
                    text(
                        f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                        "AND d.id = :id"
                    ),
                    {"w": workspace_id, "id": int(name_or_id)},
                ).all()
                if rows:
                    return [_document(r) for r in rows]
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                    "AND lower(d.file_name) = lower(:n) ORDER BY d.id"
                ),
                {"w": workspace_id, "n": name_or_id},
            ).all()
            if not rows:
                rows = conn.execute(
                    text(
                        f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                        "AND d.file_name ILIKE :n ORDER BY d.id"
                    ),
                    {"w": workspace_id, "n": f"%{name_or_id}%"},
                ).all()
        return [_document(r) for r in rows]

    def forget_document(self, document_id: int) -> tuple[Document, int, bool] | None:
        """Delete a document and its chunks in one transaction.

        Returns the document, the number of chunks removed, and whether its bytes
        are still used by another document (so the file store keeps them).
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                text(f"SELECT {_DOC_COLS} FROM documents d WHERE d.id = :id FOR UPDATE"),
                {"id": document_id},
            ).first()
            if row is None:
                return None
            doc = _document(row)
            removed = conn.execute(
                text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id}
            ).rowcount
            conn.execute(text("DELETE FROM documents WHERE id = :d"), {"d": document_id})
            still_used = bool(
                conn.execute(
                    text("SELECT 1 FROM documents WHERE sha256 = :s LIMIT 1"), {"s": doc.sha256}
                ).scalar()
            )
        return doc, removed, still_used

    def sha_in_use(self, sha256: str) -> bool:
        """Whether any document still refers to these bytes."""
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM documents WHERE sha256 = :s LIMIT 1"), {"s": sha256}
                ).scalar()
            )

    # -- retrieval --------------------------------------------------------------------------

    def workspace_chunk_count(self, workspace_id: int, embedding_model_id: int) -> int:
        """How many chunks of this model a workspace holds (decides exact vs HNSW)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM chunks WHERE workspace_id = :w "
                        "AND embedding_model_id = :m"
                    ),
                    {"w": workspace_id, "m": embedding_model_id},
                ).scalar_one()
            )

    def total_chunk_count(self, embedding_model_id: int) -> int:
        """Chunks of this model across all workspaces (an estimate is enough)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM chunks WHERE embedding_model_id = :m"),
                    {"m": embedding_model_id},
                ).scalar_one()
            )

    def search_dense(
        self,
        workspace_id: int,
        embedding_model_id: int,
        dims: int,
        vector: Sequence[float],
        k: int,
        *,
        exact: bool = False,
    ) -> list[ChunkHit]:
        """The k chunks nearest to ``vector`` by cosine, in one workspace only.

        Two plans (see "Dense search plans" in the README's performance section):

        * a workspace with its own partial HNSW index (``ensure_workspace_index`` builds
          one when it outgrows ``exact_scan_max_rows``): a plain HNSW search of that
          index, which holds this workspace's rows only, so nothing is filtered after
          the scan and recall is that of unfiltered HNSW;
        * any other (or ``exact=True``): an exact scan of the workspace's rows, found
          through the b-tree on ``workspace_id``.  That covers small workspaces and a
          large one whose index is being built.  A model-wide HNSW index filtered by
          workspace used to stand in for the latter; it cost every chunk written an
          HNSW insert (~80% of writing a document).

        The plan is chosen without counting the workspace's rows.  Ids are integers,
        inlined into the SQL: a partial index is only considered when its predicate is
        proved by constants, never by a bound parameter.
        """
        query = np.asarray(vector, dtype=np.float32)
        dim = int(dims)
        ws, model, limit = int(workspace_id), int(embedding_model_id), int(k)
        select = (
            "SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, c.page_end, "
            f"c.text, 1 - (c.embedding::vector({dim}) <=> CAST(%(q)s AS vector({dim}))) "
            "AS similarity, "
            "d.source_channel, d.source_url "
        )
        # OFFSET 0 fences the workspace's rows off from the ORDER BY, so the planner
        # cannot answer it with an HNSW index, without materialising them: a MATERIALIZED
        # CTE copied every vector into a tuplestore that spilled to disk past work_mem
        # (20k rows: 3,800 temp blocks written, ~3x slower; EXPLAIN (ANALYZE, BUFFERS)).
        exact_sql = (
            "WITH top AS (SELECT id FROM (SELECT id, embedding FROM chunks "
            f"WHERE workspace_id = {ws} AND embedding_model_id = {model} OFFSET 0) ws "
            # No cast to vector(dim) here: no index is wanted, and the cast copied every
            # row's vector (~20% of the scan).  The model filter guarantees the dims.
            f"ORDER BY embedding <=> CAST(%(q)s AS vector) LIMIT {limit}) "
            + select
            + "FROM top JOIN chunks c ON c.id = top.id JOIN documents d ON d.id = c.document_id "
            "ORDER BY similarity DESC"
        )
        approx_sql = (
            select + "FROM chunks c JOIN documents d ON d.id = c.document_id "
            f"WHERE c.workspace_id = {ws} AND c.embedding_model_id = {model} "
            f"ORDER BY c.embedding::vector({dim}) <=> CAST(%(q)s AS vector({dim})) "
            f"LIMIT {limit}"
        )
        params = {"q": query}

        def run(conn: psycopg.Connection[Any]) -> tuple[str, list[Any]]:
            if exact or not self._workspace_indexed(conn, model, ws):
                return ("forced_exact" if exact else "exact"), conn.execute(
                    exact_sql, params
                ).fetchall()
            # Unfiltered HNSW over this workspace alone.  pgvector's default breadth of
            # 40 lost neighbours on a 100k-row workspace (recall@10 against the exact
            # scan, index built at ef_construction 128: 0.973 at ef 60, 0.988 at 120,
            # 0.998 at 160, for 9.9 / 9.4 / 12.3 ms p50 on a loaded machine).
            # HNSW_EF_SEARCH is every session's default (a connect option); larger k
            # needs more.
            ef = min(1000, max(HNSW_EF_SEARCH, 2 * limit))
            if ef == HNSW_EF_SEARCH:  # the session's default: one statement
                rows = conn.execute(approx_sql, params).fetchall()
            else:
                conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                try:
                    rows = conn.execute(approx_sql, params).fetchall()
                finally:
                    conn.execute(f"SET hnsw.ef_search = {int(HNSW_EF_SEARCH)}")
            if len(rows) < limit:  # a graph cut off around the query, or a tiny workspace
                return "exact_fallback", conn.execute(exact_sql, params).fetchall()
            return "workspace_hnsw", rows

        plan, rows = self._search(run)
        self.plan_counts[plan] += 1
        hits = [_dense_hit(r) for r in rows]
        hits.sort(key=lambda h: h.similarity or 0.0, reverse=True)
        return hits

    def _search(self, run: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``run`` on a search connection, once more on a new one if it was cut.

        The search pool does not ping before use (a round trip per search); a
        connection the server dropped (a restart, an admin's pg_terminate_backend)
        fails its first statement instead.  Its pooled siblings were most likely
        cut too, so the whole pool is replaced (connections checked out by other
        threads finish their work and are closed on return) before the retry.
        """
        for attempt in (1, 2):
            pooled = self._searcher.raw_connection()
            try:
                return run(pooled.driver_connection)
            except psycopg.OperationalError:
                # Only a lost connection is retried; a cancelled statement is not.
                if not pooled.driver_connection.broken:
                    raise
                pooled.invalidate()
                if attempt == 2:
                    raise
                log.info("a search connection was cut; retrying on a new pool")
                self._searcher.dispose()
            finally:
                pooled.close()
        raise AssertionError("unreachable")

    def _known_indexed(self, model: int, ws: int) -> None:
        self._indexed.add((model, ws))
        self._not_indexed.pop((model, ws), None)

    def _workspace_indexed(self, conn: psycopg.Connection[Any], model: int, ws: int) -> bool:
        key = (model, ws)
        if key in self._indexed:
            return True
        checked = self._not_indexed.get(key)
        if checked is not None and time.monotonic() - checked < NO_INDEX_RECHECK_S:
            return False
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (workspace_index_name(model, ws),),
        ).fetchone()
        if row is not None and row[0]:
            self._known_indexed(model, ws)
            return True
        self._not_indexed[key] = time.monotonic()
        return False

    def search_keyword(
        self, workspace_id: int, embedding_model_id: int, query: str, k: int
    ) -> list[ChunkHit]:
        """Full-text matches in one workspace: any query term, ranked by BM25.

        The SQL and the choice of statistics are in ``bot.store.keyword``.
        """
        return self._search(
            lambda conn: search_bm25(
                conn, workspace_id, embedding_model_id, query, k, plans=self.plan_counts
            )
        )

    def chunks_by_ids(self, workspace_id: int, ids: Sequence[int]) -> list[ChunkHit]:
        """Chunks by id, within one workspace (forgotten ones are simply absent)."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, "
                    "c.page_end, c.text, d.source_channel, d.source_url "
                    "FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE c.workspace_id = :w AND c.id = ANY(:ids)"
                ),
                {"w": workspace_id, "ids": list(ids)},
            ).all()
        return [ChunkHit(**r._mapping) for r in rows]

    # -- per-workspace HNSW indexes and bulk loading (issue 5) ------------------------------
    #
    # pgvector before 0.8 filters an HNSW search by workspace after the index scan, so a
    # workspace holding 10-20% of the rows gets fewer than k rows back, or poor recall,
    # unless ef_search is very large.  A workspace too large for an exact scan therefore
    # gets a partial HNSW index of its own, over its rows only:
    #
    #   CREATE INDEX CONCURRENTLY chunks_embedding_hnsw_m{M}_w{W} ON chunks
    #     USING hnsw ((embedding::vector(D)) vector_cosine_ops)
    #     WHERE embedding_model_id = M AND workspace_id = W
    #
    # created at runtime (like the per-model index of ensure_embedding_model) when the
    # workspace crosses exact_scan_max_rows: by the ingest worker after it completes a
    # document, or by a maintenance call.  A search of it is an unfiltered HNSW search.

    @staticmethod
    def _has_valid_index(conn: Connection, name: str) -> bool:
        return bool(
            conn.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
                {"n": name},
            ).scalar()
        )

    def workspace_index_exists(self, workspace_id: int, embedding_model_id: int) -> bool:
        """Whether the workspace has a usable (valid) HNSW index of its own."""
        with self.engine.connect() as conn:
            return self._has_valid_index(
                conn, workspace_index_name(embedding_model_id, workspace_id)
            )

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
            if self._has_valid_index(conn, name):
                self._known_indexed(model, ws)
                return False
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": LOCK_WORKSPACE_INDEX, "b": ws}
            ).scalar()
            if not got:
                return False
            try:
                if self._has_valid_index(conn, name):
                    self._known_indexed(model, ws)
                    return False
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))  # a failed build's leftover
                # The graph must fit in maintenance_work_mem or the build slows down many
                # times: about the vectors plus their neighbour lists, capped at 2 GB.
                need_mb = min(2048, max(64, rows * (4 * dim + 600) // 1_000_000 + 32))
                conn.execute(text(f"SET maintenance_work_mem = '{int(need_mb)}MB'"))
                conn.execute(
                    text(
                        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{name} "
                        f"ON chunks USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                        f"{HNSW_WITH} "
                        f"WHERE embedding_model_id = {model} AND workspace_id = {ws}"
                    )
                )
                conn.execute(text("RESET maintenance_work_mem"))
            finally:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:a, :b)"), {"a": LOCK_WORKSPACE_INDEX, "b": ws}
                )
        self._known_indexed(model, ws)
        return True

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

    def analyze_chunks(self) -> None:
        """Refresh the planner's statistics on chunks (after a bulk load)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE chunks"))

    def bulk_load_vectors(
        self,
        workspace_id: int,
        embedding_model_id: int,
        vectors: Any,
        *,
        file_name: str,
        chunk_text: str = "synthetic chunk",
    ) -> int:
        """Insert ready-made vectors as the chunks of one new 'ready' document, by COPY.

        For benchmarks and imports: ``vectors`` is a float32 array (rows x dims); rows are
        written in PostgreSQL's binary COPY format, built with numpy.  Returns the
        document id.
        """
        import hashlib

        import numpy as np

        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vecs.shape
        body = chunk_text.encode()
        with self.engine.begin() as conn:
            doc_id = int(
                conn.execute(
                    text(
                        "INSERT INTO documents (workspace_id, file_name, media_type, sha256, "
                        "size_bytes, status, page_count) VALUES (:w, :f, 'text/plain', :s, 0, "
                        "'ready', 1) RETURNING id"
                    ),
                    {
                        "w": int(workspace_id),
                        "f": file_name,
                        "s": hashlib.sha256(f"{workspace_id}/{file_name}".encode()).hexdigest(),
                    },
                ).scalar_one()
            )
        row = np.dtype(
            [
                ("nf", ">i2"),
                ("l1", ">i4"),
                ("doc", ">i8"),
                ("l2", ">i4"),
                ("ws", ">i8"),
                ("l3", ">i4"),
                ("ord", ">i4"),
                ("l4", ">i4"),
                ("txt", f"S{len(body)}"),
                ("l5", ">i4"),
                ("vdim", ">i2"),
                ("vpad", ">i2"),
                ("vec", ">f4", (dim,)),
                ("l6", ">i4"),
                ("model", ">i8"),
            ]
        )
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            copy_sql = (
                "COPY chunks (document_id, workspace_id, ordinal, text, embedding, "
                "embedding_model_id) FROM STDIN WITH (FORMAT BINARY)"
            )
            with cur.copy(copy_sql) as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2)
                for start in range(0, n, 20_000):
                    part = vecs[start : start + 20_000]
                    out = np.empty(len(part), dtype=row)
                    out["nf"] = 6
                    out["l1"], out["doc"] = 8, doc_id
                    out["l2"], out["ws"] = 8, int(workspace_id)
                    out["l3"], out["ord"] = 4, np.arange(start, start + len(part))
                    out["l4"], out["txt"] = len(body), body
                    out["l5"], out["vdim"], out["vpad"] = 4 + 4 * dim, dim, 0
                    out["vec"] = part
                    out["l6"], out["model"] = 8, int(embedding_model_id)
                    copy.write(out.tobytes())
                copy.write((-1).to_bytes(2, "big", signed=True))
            raw.commit()
        finally:
            raw.close()
        return doc_id

    def workspace_vectors(self, workspace_id: int, embedding_model_id: int) -> Any:
        """A workspace's chunk vectors as a float32 array (rows x dims), in chunk order."""
        import numpy as np

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT embedding::real[] FROM chunks WHERE workspace_id = :w "
                    "AND embedding_model_id = :m ORDER BY id"
                ),
                {"w": int(workspace_id), "m": int(embedding_model_id)},
            ).scalars()
            return np.array(list(rows), dtype=np.float32)

    def chunk_texts(self, document_ids: Sequence[int]) -> list[str]:
        """The chunk texts of some documents, in document and chunk order."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT text FROM chunks WHERE document_id = ANY(:d) "
                        "ORDER BY document_id, ordinal"
                    ),
                    {"d": [int(d) for d in document_ids]},
                ).scalars()
            )

    # -- conversation history ---------------------------------------------------------------

    def add_message(
        self,
        binding_id: int,
        thread_id: str | None,
        role: str,
        text_: str,
        *,
        author: str | None = None,
        platform_message_id: str | None = None,
        cited_chunk_ids: Sequence[int] = (),
    ) -> int:
        """Store one turn of a conversation."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    text(
                        "INSERT INTO messages (binding_id, thread_id, platform_message_id, role, "
                        "author, text, cited_chunk_ids) VALUES (:b, :t, :pm, :r, :a, :x, :c) "
                        "RETURNING id"
                    ),
                    {
                        "b": binding_id,
                        "t": thread_id or "",
                        "pm": platform_message_id,
                        "r": role,
                        "a": author,
                        "x": text_,
                        "c": list(cited_chunk_ids),
                    },
                ).scalar_one()
            )

    def recent_messages(
        self, binding_id: int, thread_id: str | None, limit: int = 20
    ) -> list[HistoryMessage]:
        """The last ``limit`` turns of a channel or thread, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, role, author, text, created_at, cited_chunk_ids FROM messages "
                    "WHERE binding_id = :b AND thread_id = :t "
                    "ORDER BY created_at DESC, id DESC LIMIT :n"
                ),
                {"b": binding_id, "t": thread_id or "", "n": limit},
            ).all()
        return [
            HistoryMessage(
                id=r.id,
                role=r.role,
                author=r.author,
                text=r.text,
                created_at=r.created_at,
                cited_chunk_ids=tuple(r.cited_chunk_ids or ()),
            )
            for r in reversed(rows)
        ]

    def clear_history(self, binding_id: int, thread_id: str | None = None) -> int:
        """Delete a thread's stored turns, or the whole channel's (every thread) when None."""
        with self.engine.begin() as conn:
            if thread_id is None:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b"), {"b": binding_id}
                )
            else:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b AND thread_id = :t"),
                    {"b": binding_id, "t": thread_id},
                )
            return int(result.rowcount or 0)

    def message_count(self, binding_id: int) -> int:
        """How many turns of a channel (all threads) are stored."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM messages WHERE binding_id = :b"), {"b": binding_id}
                ).scalar_one()
            )

    # -- retention --------------------------------------------------------------------------

    def expire_messages(self, *, audit_actor: str | None = None) -> dict[str, int] | None:
        """Delete every message older than its channel's retention; counts per channel.

        One transaction holds ``pg_try_advisory_xact_lock(LOCK_RETENTION, 0)`` while it
        deletes, so among several processes only one deletes at a time; returns None
        (and deletes nothing) when another process holds the lock.  Channels where
        nothing expired are absent from the result.  With ``audit_actor``, every run that
        took the lock writes one audit entry with the counts (possibly none), in the
        same transaction as the deletion.
        """
        with self.engine.begin() as conn:
            got = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, 0)"), {"a": LOCK_RETENTION}
            ).scalar()
            if not got:
                return None
            rows = conn.execute(
                text(
                    "WITH gone AS ("
                    " DELETE FROM messages m USING channel_bindings b"
                    " WHERE m.binding_id = b.id AND b.retention_seconds IS NOT NULL"
                    " AND m.created_at < now() - b.retention_seconds * interval '1 second'"
                    " RETURNING m.binding_id) "
                    "SELECT b.platform, b.space_id, b.channel_id, count(*) AS n "
                    "FROM gone JOIN channel_bindings b ON b.id = gone.binding_id "
                    "GROUP BY b.platform, b.space_id, b.channel_id "
                    "ORDER BY b.platform, b.space_id, b.channel_id"
                )
            ).all()
            deleted = {channel_spec(r.platform, r.space_id, r.channel_id): int(r.n) for r in rows}
            # Every run that took the lock leaves one entry, even when nothing had expired,
            # so the log shows the job is alive; a skipped run (lock held) did nothing.
            if audit_actor is not None:
                self._audit(
                    conn,
                    audit_actor,
                    "retention_run",
                    "messages",
                    {"deleted": deleted, "total": sum(deleted.values())},
                )
        return deleted

    # -- status -----------------------------------------------------------------------------

    def workspace_totals(self, workspace_id: int) -> dict[str, int]:
        """A workspace's documents (ready and all) and chunks."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM documents WHERE workspace_id = :w) AS documents,"
                    " (SELECT count(*) FROM documents WHERE workspace_id = :w"
                    "  AND status = 'ready') AS ready,"
                    " (SELECT count(*) FROM chunks WHERE workspace_id = :w) AS chunks"
                ),
                {"w": workspace_id},
            ).one()
        return {"documents": int(row.documents), "ready": int(row.ready), "chunks": int(row.chunks)}

    def ingest_queue_depth(self) -> int:
        """Documents waiting to be indexed or being indexed, across every workspace."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM documents WHERE status IN ('queued', 'indexing')")
                ).scalar_one()
            )

    def channels_of_workspace(self, workspace_id: int) -> list[Binding]:
        """The channels bound to a workspace."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(_BINDING_SELECT + "WHERE b.workspace_id = :w ORDER BY b.id"),
                {"w": workspace_id},
            ).all()
        return [_binding(r) for r in rows]

    # -- audit ------------------------------------------------------------------------------

    def audit(
        self, actor: str, action: str, target: str | None = None, details: dict | None = None
    ) -> None:
        """Append one entry to the audit log."""
        with self.engine.begin() as conn:
            self._audit(conn, actor, action, target, details)

    @staticmethod
    def _audit(
        conn: Connection, actor: str, action: str, target: str | None, details: dict | None
    ) -> None:
        conn.execute(
            text(
                "INSERT INTO audit_log (actor, action, target, details) "
                "VALUES (:a, :x, :t, CAST(:d AS jsonb))"
            ),
            {"a": actor, "x": action, "t": target, "d": json.dumps(details or {}, default=str)},
        )

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, at, actor, action, target, details FROM audit_log "
                    "ORDER BY at DESC, id DESC LIMIT :n"
                ),
                {"n": limit},
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- key-value settings (adapter state: the Matrix sync position) ----------------------
    # Owned by the Matrix adapter work (issue 7); small and self-contained.

    def get_setting(self, key: str) -> Any:
        """The value stored under ``key`` in the settings table, or None."""
        with self.engine.connect() as conn:
            return conn.execute(
                text("SELECT value FROM settings WHERE key = :k"), {"k": key}
            ).scalar()

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key`` (replacing any earlier one)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO settings (key, value) VALUES (:k, CAST(:v AS jsonb)) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
                ),
                {"k": key, "v": json.dumps(value)},
            )

    # -- documents by their platform file (issue 8: Slack file deletion) -------------------
    # Owned by the Slack adapter work; used by Dispatcher._on_file_removed and the Slack
    # adapter's reconciliation of deleted files.

    def documents_by_source_file(self, platform: str, file_id: str) -> list[Document]:
        """Every document (in any workspace) indexed from this platform file."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.source_platform = :p "
                    "AND d.source_file_id = :f ORDER BY d.id"
                ),
                {"p": platform, "f": file_id},
            ).all()
        return [_document(r) for r in rows]

    def source_file_ids(self, platform: str) -> list[str]:
        """The distinct platform file ids that documents were indexed from."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT DISTINCT source_file_id FROM documents WHERE source_platform = :p "
                        "AND source_file_id IS NOT NULL ORDER BY source_file_id"
                    ),
                    {"p": platform},
                ).scalars()
            )

    # -- end documents by platform file ------------------------------------------------------
