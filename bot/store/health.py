"""The readiness probe's look at the database: reachable, and its schema current."""

from __future__ import annotations

import psycopg

from bot.store import migrate
from bot.store.database import Database


def probe(db: Database, timeout_s: float = 2.0) -> str | None:
    """None when the database answers within ``timeout_s`` at the current schema; else why not.

    A fresh connection, not one of the pools: a pool can be exhausted by busy work,
    and a pooled connection to a frozen server waits without limit.  libpq's
    ``connect_timeout`` bounds the connection and ``statement_timeout`` the query.
    """
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    seconds = max(1, int(timeout_s))
    try:
        with psycopg.connect(
            url,
            connect_timeout=seconds,
            options=f"-c statement_timeout={int(timeout_s * 1000)}",
            application_name="librarian-readyz",
            autocommit=True,
        ) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database unreachable ({first})"
    current = row[0] if row else None
    head = migrate.head_revision()
    if current != head:
        return f"schema at {current or 'none'}, this version needs {head} (librarian db upgrade)"
    return None
