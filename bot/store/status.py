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


def storage_sizes(db: Database) -> dict[str, float]:
    """Disk used by this database, by the chunks table and by its HNSW indexes, and the
    server's shared_buffers (the memory it caches pages in), in MB.

    The HNSW indexes are what a search wants in memory (shared_buffers and the page
    cache), so their size is the memory a workspace's fast plan needs.
    """
    with db.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_database_size(current_database()), "
                "pg_total_relation_size('chunks'), "
                "coalesce(sum(pg_relation_size(i.indexrelid)), 0), "
                # shared_buffers is counted in blocks of block_size bytes.
                "(SELECT setting::bigint FROM pg_settings WHERE name = 'shared_buffers') "
                "* current_setting('block_size')::bigint "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw'"
            )
        ).one()
    mb = 1024 * 1024
    return {
        "database_mb": round(int(row[0]) / mb, 1),
        "chunks_total_mb": round(int(row[1]) / mb, 1),
        "hnsw_indexes_mb": round(int(row[2]) / mb, 1),
        "shared_buffers_mb": round(int(row[3]) / mb, 1),
    }
