"""Every query the bot runs, behind one class.

Long (over 600 lines; about 1,200) and not yet one unit by necessity.  The Store is
the one object the core holds for the database, and some of its writes must share a
transaction (binding under the owner's row lock, forgetting every copy of a document
with the answers that quoted it, expiring history with its audit entry).  Its search,
feedback and event-state sides are already parts of their own (``search.py``,
``feedback.py``, ``events.py``, composed below); what remains here is workspaces and
bindings (~260 lines), documents and the ingest queue (~380), conversation history
and retention (~180), and status, audit and settings (~130).  Documents and history
are the next parts to move out, as the search side was; ``tests/test_store_shape.py``
keeps the parts from shadowing each other's names.

Methods are synchronous (SQLAlchemy Core on psycopg 3); the asynchronous core
calls them through ``asyncio.to_thread``.  Every search takes the workspace id
and filters on it in SQL: that filter is the boundary between teams.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row

from bot.store.database import Database
from bot.store.events import Claim, EventsMixin, record_effect_in
from bot.store.feedback import FeedbackMixin
from bot.store.records import (
    Binding,
    Document,
    ExpiredHistory,
    HistoryMessage,
    NewChunk,
    Workspace,
)
from bot.store.search import (
    EXACT_SCAN_MAX_ROWS,
    LOCK_WORKSPACE_INDEX,
    SearchMixin,
    vector_literal,
    workspace_index_name,
)
from bot.store.workspace_index import WorkspaceIndex
from bot.teams import channel_team

__all__ = [
    "LOCK_DOCUMENT",
    "LOCK_EMBEDDING_MODEL",
    "LOCK_RETENTION",
    "LOCK_WORKSPACE_INDEX",
    "NoSuchWorkspace",
    "Store",
    "WorkspaceDefaults",
    "channel_spec",
    "workspace_index_name",
]

# Advisory-lock namespaces (first key of the two-int form).
LOCK_DOCUMENT = 0x4C49  # one ingest worker per document
LOCK_EMBEDDING_MODEL = 0x4C4A  # registering an embedding model
LOCK_RETENTION = 0x4C4B  # one retention run at a time across processes
# LOCK_WORKSPACE_INDEX = 0x4C4C, building one workspace's own HNSW index: bot.store.search


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


class NoSuchWorkspace(LookupError):
    """A team has no workspace of that name (asked by a deployment admin crossing teams)."""

    def __init__(self, team: str, name: str) -> None:
        super().__init__(f"team {team} has no workspace named {name}")
        self.team = team
        self.name = name


def channel_spec(platform: str, space_id: str, channel_id: str) -> str:
    """How the CLI and the audit log name a channel: ``console:general``, ``slack:T01/C02``."""
    return f"{platform}:{space_id}/{channel_id}" if space_id else f"{platform}:{channel_id}"


_WS_COLS = (
    "w.id AS w_id, w.name AS w_name, w.chunk_tokens, w.chunk_overlap, w.top_k, "
    "w.relevance_floor, w.chat_model, w.system_prompt, w.evidence_coverage, "
    "w.evidence_similarity, w.owner_team, (w.home_channel IS NOT NULL) AS w_own"
)
_BINDING_SELECT = (
    "SELECT b.id, b.platform, b.space_id, b.channel_id, b.channel_name, b.retention_seconds, "
    f"b.answer_mode, b.auto_index, b.upload_policy, {_WS_COLS} "
    "FROM channel_bindings b JOIN workspaces w ON w.id = b.workspace_id "
)
_CHANNEL_WHERE = "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c"
_CHUNK_COUNT = "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
_DOC_COLS = (
    "d.id, d.workspace_id, d.file_name, d.media_type, d.sha256, d.size_bytes, d.page_count, "
    "d.status, d.error, d.uploader, d.source_platform, d.source_space, d.source_channel, "
    "d.source_message, d.source_file_id, d.source_url, d.attempts, d.created_at"
)


# The claim's candidates: up to four waiting documents per workspace (the first may be
# held by another worker), the workspace served least recently first, then within a
# workspace the documents with the fewest failed attempts, oldest first.
_CLAIM_ORDER = text(
    "SELECT id FROM (SELECT d.id, w.ingest_served_at AS served, row_number() OVER "
    "(PARTITION BY d.workspace_id ORDER BY d.attempts, d.id) AS place "
    "FROM documents d JOIN workspaces w ON w.id = d.workspace_id "
    "WHERE d.status IN ('queued', 'indexing')) waiting "
    "WHERE place <= 4 ORDER BY served ASC NULLS FIRST, place, id LIMIT 50"
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
        evidence_coverage=m["evidence_coverage"],
        evidence_similarity=m["evidence_similarity"],
        owner_team=m["owner_team"],
        own=bool(m["w_own"]),
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


class Store(SearchMixin, FeedbackMixin, EventsMixin):
    """Queries over one Database (its search side is ``bot.store.search``, its feedback
    side ``bot.store.feedback``, its events' states ``bot.store.events``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        # Per instance so that a benchmark can exercise every plan on a small database.
        self.exact_scan_max_rows = EXACT_SCAN_MAX_ROWS
        # Searches run on their own pool, outside transactions (Database.searcher).
        self._searcher = db.searcher
        # Which workspaces have an HNSW index of their own (its kind and size) and which
        # have none: both are looked up again after NO_INDEX_RECHECK_S.
        self._indexed: dict[tuple[int, int], WorkspaceIndex] = {}
        self._not_indexed: dict[tuple[int, int], float] = {}
        # How often each dense-search plan ran (exact, forced_exact, workspace_hnsw,
        # exact_fallback): for benchmarks and status, not for decisions.
        self.plan_counts: collections.Counter[str] = collections.Counter()

    # -- workspaces and bindings ------------------------------------------------------------

    def _insert_workspace(
        self,
        conn: Connection,
        name: str,
        defaults: WorkspaceDefaults,
        owner_team: str | None,
        home: tuple[str, str, str] | None = None,
    ) -> int | None:
        """A new workspace's id; None when its team has the name (or the home is taken)."""
        platform, space, channel = home or (None, None, None)
        return conn.execute(
            text(
                "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, relevance_floor,"
                " owner_team, home_platform, home_space, home_channel)"
                " VALUES (:n, :c, :o, :k, :f, :team, :hp, :hs, :hc) ON CONFLICT DO NOTHING"
                " RETURNING id"
            ),
            {
                "n": name,
                "c": defaults.chunk_tokens,
                "o": defaults.chunk_overlap,
                "k": defaults.top_k,
                "f": defaults.relevance_floor,
                "team": owner_team,
                "hp": platform,
                "hs": space,
                "hc": channel,
            },
        ).scalar()

    def _own_workspace(
        self,
        conn: Connection,
        platform: str,
        space_id: str,
        channel_id: str,
        defaults: WorkspaceDefaults,
        team: str,
    ) -> tuple[int, bool]:
        """The id of a channel's own workspace, made if missing; and whether it was made.

        Found by the channel (the home columns), never by name: a name can be typed by
        anyone, a home only set here.  Its name is the channel's spec, which
        ``/librarian workspace`` refuses (``:`` and ``/``); should the name be taken
        anyway (a workspace so named before migration 0009), a suffix is added.
        """
        home = {"p": platform, "s": space_id, "c": channel_id}
        find = text(
            "SELECT id FROM workspaces WHERE home_platform = :p AND home_space = :s "
            "AND home_channel = :c"
        )
        found = conn.execute(find, home).scalar()
        if found is not None:
            return int(found), False
        spec = channel_spec(platform, space_id, channel_id)
        for attempt in range(1, 100):
            name = spec if attempt == 1 else f"{spec}~{attempt}"
            made = self._insert_workspace(
                conn, name, defaults, team, (platform, space_id, channel_id)
            )
            if made is not None:
                return int(made), True
            # Another process may have made it meanwhile (the home is unique), or the
            # name is taken: look again before trying another name.
            found = conn.execute(find, home).scalar()
            if found is not None:
                return int(found), False
        raise RuntimeError(f"no free workspace name for {spec}")

    def _binding_row(self, conn: Connection, platform: str, space_id: str, channel_id: str) -> Row:
        return conn.execute(
            text(
                _BINDING_SELECT + "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c"
            ),
            {"p": platform, "s": space_id, "c": channel_id},
        ).one()

    def _set_binding(
        self,
        conn: Connection,
        platform: str,
        space_id: str,
        channel_id: str,
        channel_name: str | None,
        workspace_id: int,
    ) -> Binding:
        conn.execute(
            text(
                "INSERT INTO channel_bindings (platform, space_id, channel_id, channel_name, "
                "workspace_id) VALUES (:p, :s, :c, :name, :w) "
                "ON CONFLICT ON CONSTRAINT uq_binding_channel "
                "DO UPDATE SET workspace_id = EXCLUDED.workspace_id"
            ),
            {
                "p": platform,
                "s": space_id,
                "c": channel_id,
                "name": channel_name,
                "w": workspace_id,
            },
        )
        return _binding(self._binding_row(conn, platform, space_id, channel_id))

    def binding_for(
        self,
        platform: str,
        space_id: str,
        channel_id: str,
        defaults: WorkspaceDefaults,
        channel_name: str | None = None,
        team: str | None = None,
    ) -> Binding:
        """The channel's binding; an unbound channel gets a workspace of its own.

        ``team`` owns that workspace if it is made (default: the channel's team by the
        platform's structure, ``bot.teams.channel_team``).
        """
        key = {"p": platform, "s": space_id, "c": channel_id}
        where = "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c"
        with self.engine.begin() as conn:
            row = conn.execute(text(_BINDING_SELECT + where), key).first()
            if row is not None:
                return _binding(row)
            # A workspace of its own, so that two unbound channels never see each
            # other's documents.
            ws_id, _ = self._own_workspace(
                conn,
                platform,
                space_id,
                channel_id,
                defaults,
                team or channel_team(platform, space_id, channel_id),
            )
            conn.execute(
                text(
                    "INSERT INTO channel_bindings (platform, space_id, channel_id, channel_name, "
                    "workspace_id) VALUES (:p, :s, :c, :name, :w) "
                    "ON CONFLICT ON CONSTRAINT uq_binding_channel DO NOTHING"
                ),
                {**key, "name": channel_name, "w": ws_id},
            )
            return _binding(self._binding_row(conn, platform, space_id, channel_id))

    def bind(
        self,
        platform: str,
        space_id: str,
        channel_id: str,
        workspace_name: str,
        defaults: WorkspaceDefaults,
        channel_name: str | None = None,
        *,
        teams: Sequence[str] | None = None,
        in_team: str | None = None,
    ) -> tuple[Binding, bool]:
        """Bind a channel to its team's workspace named ``workspace_name``, made if new.

        Returns the binding and whether the workspace was new.  The name is looked up
        only among the named workspaces of ``teams`` (default: the channel's own team,
        ``bot.teams.channel_team``), in that order; another team's workspace of the same
        name is never found, so nothing here tells whether one exists.  A new workspace
        is owned by ``teams[0]``.

        ``in_team``: bind to that team's existing workspace instead (a deployment admin
        crossing teams); raises ``NoSuchWorkspace`` when it has none of that name.
        """
        teams = tuple(teams or (channel_team(platform, space_id, channel_id),))
        look_in = [in_team] if in_team is not None else list(teams)
        find = text(
            "SELECT id FROM workspaces WHERE name = :n AND home_channel IS NULL "
            "AND owner_team = ANY(CAST(:teams AS text[])) "
            "ORDER BY array_position(CAST(:teams AS text[]), owner_team) LIMIT 1"
        )
        key = {"n": workspace_name, "teams": look_in}
        with self.engine.begin() as conn:
            found = conn.execute(find, key).scalar()
            created = False
            if found is None and in_team is not None:
                raise NoSuchWorkspace(in_team, workspace_name)
            if found is None:
                made = self._insert_workspace(conn, workspace_name, defaults, teams[0])
                if made is None:  # made by another transaction meanwhile
                    found = conn.execute(find, key).scalar_one()
                else:
                    found, created = made, True
            binding = self._set_binding(
                conn, platform, space_id, channel_id, channel_name, int(found)
            )
        return binding, created

    def bind_own(
        self,
        platform: str,
        space_id: str,
        channel_id: str,
        defaults: WorkspaceDefaults,
        channel_name: str | None = None,
        team: str | None = None,
    ) -> tuple[Binding, bool]:
        """Bind a channel back to its own workspace (made if missing); and whether it was."""
        with self.engine.begin() as conn:
            ws_id, created = self._own_workspace(
                conn,
                platform,
                space_id,
                channel_id,
                defaults,
                team or channel_team(platform, space_id, channel_id),
            )
            binding = self._set_binding(conn, platform, space_id, channel_id, channel_name, ws_id)
        return binding, created

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
            "evidence_coverage",
            "evidence_similarity",
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

    def workspace_by_name(self, name: str, *, team: str | None) -> Workspace | None:
        """A workspace by its name and owning team (names are unique per team)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {_WS_COLS} FROM workspaces w "
                    "WHERE w.name = :n AND w.owner_team IS NOT DISTINCT FROM :t"
                ),
                {"n": name, "t": team},
            ).first()
        return _workspace(row) if row else None

    def bindings(self) -> list[Binding]:
        """Every channel binding."""
        with self.engine.connect() as conn:
            return [_binding(r) for r in conn.execute(text(_BINDING_SELECT + "ORDER BY b.id"))]

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
        event: Claim | None = None,
    ) -> tuple[Document, bool]:
        """Queue a document for indexing; the same bytes twice in a workspace are one document.

        Returns the document and whether it is new.  A document that failed before is
        queued again when shared again (the parser or limits may have changed).
        ``event``: the claimed event that shared it; the document is recorded as its
        effect in the same transaction (``document:<file id>``).
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
            if event is not None:
                record_effect_in(conn, event, {f"document:{src.get('file_id')}": doc.id})
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

        The next is the oldest document of the workspace served least recently
        (:meth:`mark_served`; never served first), so that one team's large upload
        does not hold every other team's files behind it.  Within a workspace, a
        document that failed attempts goes behind the ones not yet tried.

        The claim is a session advisory lock held on a dedicated connection for as
        long as the block runs.  A process that dies mid-ingest loses its session,
        hence its lock, and its document ('indexing' but unlocked) is claimed again.
        """
        conn = self.engine.connect()
        claimed: int | None = None
        try:
            candidates = conn.execute(_CLAIM_ORDER).scalars().all()
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

    def mark_served(self, workspace_id: int) -> None:
        """Record that the ingest worker is taking one of this workspace's documents now."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE workspaces SET ingest_served_at = clock_timestamp() WHERE id = :w"),
                {"w": workspace_id},
            )

    def fairer_waiting(self, workspace_id: int) -> bool:
        """Whether another workspace served less recently has a document nobody holds.

        A worker reads the next document ahead while it embeds the current one; when a
        team shares a file meanwhile, the read-ahead of the busy workspace gives way.
        """
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM documents d "
                        "JOIN workspaces w ON w.id = d.workspace_id, "
                        "(SELECT ingest_served_at AS at FROM workspaces WHERE id = :w) mine "
                        "WHERE d.status IN ('queued', 'indexing') AND d.workspace_id <> :w "
                        "AND mine.at IS NOT NULL "
                        "AND (w.ingest_served_at IS NULL OR w.ingest_served_at < mine.at) "
                        "AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                        " AND l.classid::bigint = :a AND l.objid::bigint = d.id"
                        " AND l.objsubid = 2))"
                    ),
                    {"w": workspace_id, "a": LOCK_DOCUMENT},
                ).scalar_one()
            )

    def count_attempt(self, document_id: int) -> int:
        """Count a failed attempt at a queued document (it stays queued); the new count."""
        with self.engine.begin() as conn:
            count = conn.execute(
                text(
                    "UPDATE documents SET attempts = attempts + 1, updated_at = now() "
                    "WHERE id = :d RETURNING attempts"
                ),
                {"d": document_id},
            ).scalar()
        return int(count or 0)

    def workspace_chunks_held(self, workspace_id: int, *, excluding: int | None = None) -> int:
        """Chunks a workspace holds, those of document ``excluding`` left out."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM chunks WHERE workspace_id = :w "
                        "AND document_id IS DISTINCT FROM :d"
                    ),
                    {"w": workspace_id, "d": excluding},
                ).scalar_one()
            )

    def complete_document(
        self,
        document_id: int,
        *,
        page_count: int,
        chunks: Sequence[NewChunk],
        embedding_model_id: int,
        notes: str | None = None,
    ) -> None:
        """Write a document's chunks and mark it ready, in one transaction.

        ``notes``: what the user should know about a document that was indexed anyway
        (pages that could not be read), kept in ``error`` beside the ready status.
        """
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
                        "page_end, location, text, embedding, embedding_model_id) "
                        "VALUES (:d, :w, :o, :ps, :pe, :loc, :t, :e, :m)"
                    ),
                    [
                        {
                            "d": document_id,
                            "w": ws,
                            "o": c.ordinal,
                            "ps": c.page_start,
                            "pe": c.page_end,
                            "loc": c.location,
                            "t": c.text,
                            "e": vector_literal(c.embedding),
                            "m": embedding_model_id,
                        }
                        for c in chunks
                    ],
                )
            conn.execute(
                text(
                    "UPDATE documents SET status = 'ready', error = :n, page_count = :p, "
                    "updated_at = now() WHERE id = :d"
                ),
                {"p": page_count, "d": document_id, "n": notes},
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

    def forget_document(
        self, document_id: int, history_window: int = 12
    ) -> tuple[Document, int, bool] | None:
        """Delete a document, its chunks, and every stored message that quoted it, at once.

        Also the answers citing its chunks with their questions, and the workspace's
        keyword terms left with no chunk.  Returns the document, the number of chunks
        removed, and whether its bytes are still used by another document (so the file
        store keeps them).
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                text(f"SELECT {_DOC_COLS} FROM documents d WHERE d.id = :id FOR UPDATE"),
                {"id": document_id},
            ).first()
            if row is None:
                return None
            doc = _document(row)
            # Every stored copy of its text goes with it: the answers that cited its
            # chunks (they quote them, and history puts them back into prompts), the
            # question each answered, and the turns after it in that conversation that
            # were answered with it in their history (the next ``history_window``
            # messages, and their questions), and feedback that copied any of them.
            quoted = list(
                conn.execute(
                    text(
                        "WITH cited AS (SELECT coalesce(array_agg(id), '{}') AS ids "
                        "  FROM chunks WHERE document_id = :d), "
                        "conv AS (SELECT m.id, m.binding_id, m.thread_id, m.role, "
                        "  m.cited_chunk_ids, row_number() OVER (PARTITION BY m.binding_id, "
                        "  m.thread_id ORDER BY m.created_at, m.id) AS pos FROM messages m "
                        "  WHERE (m.binding_id, m.thread_id) IN (SELECT q.binding_id, "
                        "  q.thread_id FROM messages q, cited WHERE q.role = 'assistant' "
                        "  AND q.cited_chunk_ids && cited.ids)), "
                        "quoting AS (SELECT c.binding_id, c.thread_id, c.pos FROM conv c, "
                        "  cited WHERE c.role = 'assistant' AND c.cited_chunk_ids && cited.ids) "
                        "SELECT DISTINCT c.id FROM conv c JOIN quoting q "
                        "  ON c.binding_id = q.binding_id AND c.thread_id = q.thread_id "
                        "  AND c.pos BETWEEN q.pos - 1 AND q.pos + :window + 1"
                    ),
                    {"d": document_id, "window": history_window},
                ).scalars()
            )
            quoted = [int(i) for i in quoted if i is not None]
            if quoted:
                conn.execute(
                    text("DELETE FROM feedback WHERE message_id = ANY(:ids)"), {"ids": quoted}
                )
                conn.execute(text("DELETE FROM messages WHERE id = ANY(:ids)"), {"ids": quoted})
            removed = conn.execute(
                text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id}
            ).rowcount
            # The triggers lowered df; terms no chunk of the workspace holds any more
            # would still list the document's vocabulary.
            conn.execute(
                text("DELETE FROM keyword_terms WHERE workspace_id = :w AND df <= 0"),
                {"w": doc.workspace_id},
            )
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
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store one turn of a conversation; ``meta`` is an answer's metadata (JSON)."""
        with self.engine.begin() as conn:
            return _insert_message(
                conn,
                binding_id,
                thread_id,
                role,
                text_,
                author=author,
                platform_message_id=platform_message_id,
                cited_chunk_ids=cited_chunk_ids,
                meta=meta,
            )

    def add_exchange(
        self,
        binding_id: int,
        thread_id: str | None,
        question: str,
        answer: str,
        *,
        author: str | None,
        question_message_id: str | None,
        cited_chunk_ids: Sequence[int],
        meta: dict[str, Any],
        event: Claim | None = None,
        reply: str | None = None,
    ) -> int:
        """Store a question and its answer in one transaction; the answer's id.

        ``event``: the claimed event that asked; the stored answer and ``reply`` (the
        text to post) are recorded as its effect in the same transaction, so a question
        re-run after a crash or a failed post is stored once and posted from the record.
        """
        with self.engine.begin() as conn:
            _insert_message(
                conn,
                binding_id,
                thread_id,
                "user",
                question,
                author=author,
                platform_message_id=question_message_id,
            )
            answer_id = _insert_message(
                conn,
                binding_id,
                thread_id,
                "assistant",
                answer,
                author="librarian",
                cited_chunk_ids=cited_chunk_ids,
                meta=meta,
            )
            if event is not None:
                record_effect_in(
                    conn, event, {"answer": {"message": answer_id, "reply": reply or answer}}
                )
        return answer_id

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

    def clear_history(self, binding_id: int, thread_id: str | None = None) -> tuple[int, int]:
        """Delete a thread's stored turns and feedback, or the whole channel's when None.

        Returns how many messages and how many verdicts on answers were deleted.
        """
        with self.engine.begin() as conn:
            feedback = self._clear_feedback(conn, binding_id, thread_id)
            if thread_id is None:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b"), {"b": binding_id}
                )
            else:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b AND thread_id = :t"),
                    {"b": binding_id, "t": thread_id},
                )
            return int(result.rowcount or 0), feedback

    def message_count(self, binding_id: int) -> int:
        """How many turns of a channel (all threads) are stored."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM messages WHERE binding_id = :b"), {"b": binding_id}
                ).scalar_one()
            )

    # -- retention --------------------------------------------------------------------------

    def expire_messages(self, *, audit_actor: str | None = None) -> ExpiredHistory | None:
        """Delete every message (and feedback) older than its channel's retention.

        One transaction holds ``pg_try_advisory_xact_lock(LOCK_RETENTION, 0)`` while it
        deletes, so among several processes only one deletes at a time; returns None
        (and deletes nothing) when another process holds the lock.  Returns the counts
        per channel of messages and of verdicts on answers; channels where nothing
        expired are absent.  With ``audit_actor``, every run that
        took the lock writes one audit entry with the counts (possibly none), in the
        same transaction as the deletion.
        """
        with self.engine.begin() as conn:
            got = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, 0)"), {"a": LOCK_RETENTION}
            ).scalar()
            if not got:
                return None
            # Feedback first: it also goes with the answers it rates, found by message_id.
            feedback = self._expire_feedback(conn)
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
                    {
                        "deleted": deleted,
                        "total": sum(deleted.values()),
                        "feedback": feedback,
                    },
                )
        return ExpiredHistory(messages=deleted, feedback=feedback)

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

    def ingest_queue_depth(self, workspace_id: int | None = None) -> int:
        """Documents waiting to be indexed or being indexed: of one workspace, or all."""
        where = "status IN ('queued', 'indexing')"
        if workspace_id is not None:
            where += " AND workspace_id = :w"
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM documents WHERE {where}"), {"w": workspace_id}
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

    def prune_audit(self, older_than_days: float) -> int:
        """Delete audit entries older than ``older_than_days``; how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                text("DELETE FROM audit_log WHERE at < now() - make_interval(secs => :s)"),
                {"s": float(older_than_days) * 86400.0},
            )
        return int(result.rowcount or 0)

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

    # -- documents by their platform file (deleted on the platform: forgotten here) --------
    # Used by Dispatcher._on_file_removed and the Slack adapter's reconciliation of
    # deleted files.

    def documents_by_source_file(
        self, platform: str, file_id: str, workspace_id: int | None = None
    ) -> list[Document]:
        """The documents indexed from this platform file: in every workspace, or one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.source_platform = :p "
                    "AND d.source_file_id = :f "
                    "AND (CAST(:w AS bigint) IS NULL OR d.workspace_id = :w) ORDER BY d.id"
                ),
                {"p": platform, "f": file_id, "w": workspace_id},
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


def _insert_message(
    conn: Connection,
    binding_id: int,
    thread_id: str | None,
    role: str,
    text_: str,
    *,
    author: str | None = None,
    platform_message_id: str | None = None,
    cited_chunk_ids: Sequence[int] = (),
    meta: dict[str, Any] | None = None,
) -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO messages (binding_id, thread_id, platform_message_id, role, "
                "author, text, cited_chunk_ids, meta) "
                "VALUES (:b, :t, :pm, :r, :a, :x, :c, CAST(:meta AS jsonb)) "
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
                "meta": json.dumps(meta or {}),
            },
        ).scalar_one()
    )
