"""Schema migrations: Alembic scripts in ``migrations/``, run on our own connection.

Upgrades take a Postgres advisory lock, so two processes starting at once on a
fresh database do not race each other through the same DDL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.errors import LibrarianError
from bot.store.database import Database

# An arbitrary constant shared by every Librarian process: the migration lock id.
MIGRATION_LOCK_ID = 0x4C6962_0001


class SchemaOutOfDate(LibrarianError):
    """The database schema is not the one this code expects."""

    exit_code = 2


def migrations_dir() -> Path:
    """The Alembic script folder, shipped beside the ``bot`` package."""
    return Path(__file__).resolve().parents[2] / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def head_revision() -> str:
    """The newest revision among the migration scripts."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; return the revision reached."""
    _run(db, "upgrade", revision)
    return current_revision(db)


def downgrade(db: Database, revision: str) -> str | None:
    """Downgrade the schema to ``revision`` ("base" drops everything)."""
    _run(db, "downgrade", revision)
    return current_revision(db)


def _run(db: Database, action: str, revision: str) -> None:
    cfg = _config()
    with db.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def ensure_schema(db: Database, *, auto_upgrade: bool) -> str:
    """Make sure the schema is current before the bot uses it.

    Upgrades an out-of-date schema when ``auto_upgrade`` is set; otherwise says
    which command to run.  A schema newer than this code is always an error.
    """
    head = head_revision()
    current = current_revision(db)
    if current == head:
        return head
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current}, which this version of Librarian "
            "does not know: upgrade Librarian"
        )
    if not auto_upgrade:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current or 'none'} but {head} is needed: "
            "run `librarian db upgrade`"
        )
    reached = upgrade(db)
    assert reached is not None
    return reached
