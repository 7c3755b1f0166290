"""The Store: every query the bot runs, behind one class composed of parts by role.

The Store is the one object the core holds for the database.  This module holds
the class, composed of its parts, and what is not another part's: workspaces and
channel bindings (a binding is made under the workspace's row, so its own
workspace and the binding commit together), embedding models, a workspace's
totals, and key-value settings.  The parts, each a mixin of its own module:

- ``documents.py``: documents and the ingest queue;
- ``history.py``: conversation history and its retention;
- ``audit.py``: the audit log (and ``channel_spec``, how it names a channel);
- ``search.py``: dense and keyword search, per-workspace HNSW indexes, bulk loads;
- ``feedback.py``: the answer a verdict is about, verdicts, their deletion;
- ``events.py``: platform events' states.

Some writes span parts and share one transaction (forgetting a document with the
answers that quoted it, expiring history with its feedback and its audit entry);
``tests/test_store_shape.py`` keeps the parts from shadowing each other's names.

Methods are synchronous (SQLAlchemy Core on psycopg 3); the asynchronous core
calls them through ``asyncio.to_thread``.  Every search takes the workspace id
and filters on it in SQL: that filter is the boundary between teams.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row

from bot.config import Settings
from bot.store.audit import AuditMixin, channel_spec
from bot.store.database import Database
from bot.store.documents import LOCK_DOCUMENT, DocumentsMixin
from bot.store.events import EventsMixin
from bot.store.feedback import FeedbackMixin
from bot.store.history import LOCK_RETENTION, HistoryMixin
from bot.store.records import Binding, Workspace
from bot.store.search import (
    EXACT_SCAN_MAX_ROWS,
    LOCK_WORKSPACE_INDEX,
    SearchMixin,
    workspace_index_name,
)
from bot.store.workspace_index import WorkspaceIndex
from bot.teams import NO_TEAM, channel_team

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

# Advisory-lock namespaces (first key of the two-int form), each declared by its part:
# LOCK_DOCUMENT = 0x4C49, one ingest worker per document: bot.store.documents
LOCK_EMBEDDING_MODEL = 0x4C4A  # registering an embedding model
# LOCK_RETENTION = 0x4C4B, one retention run at a time across processes: bot.store.history
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
        if team == NO_TEAM:
            super().__init__(f"no workspace of no team is named {name}")
        else:
            super().__init__(f"team {team} has no workspace named {name}")
        self.team = team
        self.name = name


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


class Store(DocumentsMixin, HistoryMixin, AuditMixin, SearchMixin, FeedbackMixin, EventsMixin):
    """Queries over one Database (its parts are named in this module's docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        index_recheck_s: float = Settings.model_fields["index_recheck_seconds"].default,
    ) -> None:
        """``index_recheck_s``: how long what was found about a workspace's own index is
        believed (``Settings.index_recheck_seconds``)."""
        self.db = db
        self.engine = db.engine
        # Per instance so that a benchmark can exercise every plan on a small database.
        self.exact_scan_max_rows = EXACT_SCAN_MAX_ROWS
        # Searches run on their own pool, outside transactions (Database.searcher).
        self._searcher = db.searcher
        # Which workspaces have an HNSW index of their own (its kind and size) and which
        # have none: both are looked up again after index_recheck_s.
        self.index_recheck_s = index_recheck_s
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
            text(_BINDING_SELECT + _CHANNEL_WHERE),
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
        where = _CHANNEL_WHERE
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
        crossing teams), ``bot.teams.NO_TEAM`` for a workspace of no team; raises
        ``NoSuchWorkspace`` when it has none of that name.  Binding never changes
        whose a workspace is.
        """
        teams = tuple(teams or (channel_team(platform, space_id, channel_id),))
        look_in = [in_team] if in_team is not None else list(teams)
        # A workspace of no team counts as NO_TEAM's, which no channel's team ever is.
        find = text(
            "SELECT id FROM workspaces WHERE name = :n AND home_channel IS NULL "
            "AND COALESCE(owner_team, :none) = ANY(CAST(:teams AS text[])) "
            "ORDER BY array_position(CAST(:teams AS text[]), COALESCE(owner_team, :none)) "
            "LIMIT 1"
        )
        key = {"n": workspace_name, "teams": look_in, "none": NO_TEAM}
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

    def workspaces_of_no_team(self) -> list[Workspace]:
        """The workspaces of no team (NULL owner_team: made before migration 0009, bound
        by no channel then), by name: only LIBRARIAN_ADMINS reach them, as no-team/<name>."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_WS_COLS} FROM workspaces w WHERE w.owner_team IS NULL "
                    "ORDER BY w.name"
                )
            ).all()
        return [_workspace(r) for r in rows]

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

    # -- status -----------------------------------------------------------------------------

    def workspace_totals(self, workspace_id: int) -> dict[str, int]:
        """A workspace's documents (all, ready, and waiting to be indexed) and chunks."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM documents WHERE workspace_id = :w) AS documents,"
                    " (SELECT count(*) FROM documents WHERE workspace_id = :w"
                    "  AND status = 'ready') AS ready,"
                    " (SELECT count(*) FROM documents WHERE workspace_id = :w"
                    "  AND status IN ('queued', 'indexing')) AS waiting,"
                    " (SELECT count(*) FROM chunks WHERE workspace_id = :w) AS chunks"
                ),
                {"w": workspace_id},
            ).one()
        return {
            "documents": int(row.documents),
            "ready": int(row.ready),
            "waiting": int(row.waiting),
            "chunks": int(row.chunks),
        }

    def channels_of_workspace(self, workspace_id: int) -> list[Binding]:
        """The channels bound to a workspace."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(_BINDING_SELECT + "WHERE b.workspace_id = :w ORDER BY b.id"),
                {"w": workspace_id},
            ).all()
        return [_binding(r) for r in rows]

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
