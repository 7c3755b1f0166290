"""A throwaway database on the configured server, for benchmarks.

Benchmarks load hundreds of thousands of rows: they must never touch the bot's own
database.  ``scratch_database`` creates an empty database beside it on the same
server (the embedded one by default), yields its URL, and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from sqlalchemy import text

from bot.store.database import Database


@contextlib.contextmanager
def scratch_database(db: Database, prefix: str = "librarian_bench") -> Iterator[str]:
    """Create an empty database on ``db``'s server; yield a postgresql:// URL to it."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = db.engine.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
