"""The audit log: who changed what, and how a channel is named there.

``AuditMixin`` holds the Store's audit side (``bot.store.repo.Store`` is composed of
it).  ``_audit`` writes an entry inside a caller's transaction, so that a change and
its entry commit together (a retention run, ``bot.store.history``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

__all__ = ["AuditMixin", "channel_spec"]


def channel_spec(platform: str, space_id: str, channel_id: str) -> str:
    """How the CLI and the audit log name a channel: ``console:general``, ``slack:T01/C02``."""
    return f"{platform}:{space_id}/{channel_id}" if space_id else f"{platform}:{channel_id}"


class AuditMixin:
    """The audit side of ``Store`` (uses ``self.engine``)."""

    engine: Engine

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
