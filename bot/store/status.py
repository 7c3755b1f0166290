"""Read-only facts about the database, for `librarian status` and the status command."""

from __future__ import annotations

from sqlalchemy import text

from bot.store.database import Database

COUNTED_TABLES = (
    "workspaces",
    "channel_bindings",
    "documents",
    "chunks",
    "messages",
    "processed_events",
    "audit_log",
)


def table_counts(db: Database) -> dict[str, int]:
    """Row counts of the main tables (exact; these tables stay small enough)."""
    with db.engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in COUNTED_TABLES
        }


def server_version(db: Database) -> str:
    """The Postgres server version string, e.g. '16.2'."""
    with db.engine.connect() as conn:
        return str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
