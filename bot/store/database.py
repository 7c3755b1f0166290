"""Connecting to Postgres: the embedded server by default, or ``DATABASE_URL``.

The embedded server is a real PostgreSQL 16 with pgvector from the ``pgserver``
package, kept in ``LIBRARIAN_HOME/pgdata``.  pgserver counts the processes that
hold a handle on one data directory (under an inter-process lock), so the bot and
an admin's ``librarian ingest`` in another terminal share one server, and the last
process to leave stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy.event
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.config import Settings
from bot.errors import ConfigError, LibrarianError
from bot.redact import mask_secrets

log = logging.getLogger(__name__)


class DatabaseUnavailable(LibrarianError):
    """The database cannot be reached or lacks what Librarian needs."""

    exit_code = 2


@dataclass
class Database:
    """An open connection pool plus what we learned about the server."""

    engine: Engine
    display_url: str
    embedded: bool
    pgvector_version: str
    # A second pool for searches: autocommit, no ping, vectors sent in binary (see
    # _search_engine).
    searcher: Engine
    _server: Any = None  # the pgserver handle, kept alive while we use it

    def close(self) -> None:
        """Return connections; the embedded server stops when its last user leaves."""
        self.searcher.dispose()
        self.engine.dispose()
        if self._server is not None:
            # pgserver stops the server at exit of the last process holding it.
            self._server = None


_NOT_OUTAGES = (pg_errors.TransactionRollback, pg_errors.QueryCanceled)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error says the database could not be reached (down, restarting, its
    connection cut), as opposed to a statement that failed on a working server."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable | PoolTimeout | InterfaceError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        # psycopg's OperationalError also covers deadlocks and cancelled statements:
        # only a lost or refused connection is an outage.
        if isinstance(current, OperationalError) and not isinstance(current.orig, _NOT_OUTAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def _psycopg_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the URL was written with."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ConfigError(
        "DATABASE_URL: must start with postgresql:// (for example "
        "postgresql://user:password@host:5432/dbname)"
    )


def _display(url: str) -> str:
    """The URL as shown to people: the password masked, the socket path readable."""
    # Masked before unquoting, so an encoded character cannot end the password early;
    # ``?password=`` is masked too (SQLAlchemy's hide_password masks only user:pw@).
    return urllib.parse.unquote(mask_secrets(url)).replace("postgresql+psycopg://", "postgresql://")


# The breadth of an HNSW search (pgvector's hnsw.ef_search), every session's default
# so that a search needs no SET LOCAL, hence no transaction.  pgvector's default of 40
# lost neighbours on a 100k-row workspace (see Store.search_dense).
HNSW_EF_SEARCH = 160

# The embedded server reads our settings from this file, included by postgresql.conf.
EMBEDDED_CONF = "librarian.conf"
_INCLUDE_LINE = f"include_if_exists = '{EMBEDDED_CONF}'"


def shared_buffers_mb(configured: int = 0) -> int:
    """Shared buffers for the embedded server: ``configured``, or an eighth of the RAM
    within 128 MB (Postgres's default) and 1 GB."""
    if configured > 0:
        return configured
    try:
        ram_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return 128
    return int(min(1024, max(128, ram_mb // 8)))


def write_embedded_conf(pgdata: Path, shared_mb: int) -> bool:
    """Write our settings for the embedded server; True when they changed.

    They take effect when the server (re)starts: Postgres reads shared_buffers only then.
    """
    conf = pgdata / "postgresql.conf"
    main = conf.read_text()
    if _INCLUDE_LINE not in main:
        conf.write_text(main.rstrip("\n") + f"\n\n# Librarian's settings\n{_INCLUDE_LINE}\n")
    wanted = (
        "# Written by Librarian at every start; change LIBRARIAN_PG_SHARED_BUFFERS_MB instead.\n"
        f"shared_buffers = '{int(shared_mb)}MB'\n"
        # Our queries are short; a JIT compile (tens of ms) never pays for itself.
        "jit = off\n"
    )
    ours = pgdata / EMBEDDED_CONF
    if ours.exists() and ours.read_text() == wanted:
        return False
    ours.write_text(wanted)
    return True


def start_embedded(home: Path, shared_mb: int = 128) -> tuple[str, Any]:
    """Start (or join) the embedded Postgres in ``home/pgdata``; return its URL and handle.

    A new data directory is created by a first start with Postgres's defaults; the
    server is then stopped and started again with our settings (about a second, once).
    """
    import pgserver  # imported lazily: only the embedded mode needs it

    home.mkdir(parents=True, exist_ok=True)
    pgdata = home / "pgdata"
    try:
        fresh = not (pgdata / "PG_VERSION").exists()
        if not fresh:
            write_embedded_conf(pgdata, shared_mb)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        if fresh and write_embedded_conf(pgdata, shared_mb):
            # Stops it unless another process joined it meanwhile (then our settings
            # wait for the next start).
            server.cleanup()
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare CalledProcessError/asserts
        raise DatabaseUnavailable(
            f"could not start the embedded Postgres in {pgdata}: {exc} "
            f"(its log is {pgdata / 'log'})"
        ) from exc
    return server.get_uri(), server


def open_database(settings: Settings, *, connect_timeout: int = 5) -> Database:
    """Open the configured database and check that pgvector is usable.

    Raises DatabaseUnavailable (exit code 2) with one plain line when the server
    cannot be reached or has no pgvector.
    """
    server = None
    if settings.database_url is not None:
        raw = settings.database_url.get_secret_value()
        url = _psycopg_url(raw)
        embedded = False
    else:
        raw, server = start_embedded(
            settings.home, shared_buffers_mb(settings.pg_shared_buffers_mb)
        )
        url = _psycopg_url(raw)
        embedded = True
    shown = _display(url)
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a server that went away and came back is reconnected
        # A failing statement's error is logged without its bound parameters, which
        # hold message text, questions and document text.
        hide_parameters=True,
        pool_size=5,
        max_overflow=10,
        connect_args=_connect_args(connect_timeout),
    )
    try:
        version = _ensure_vector(engine, shown)
    except OperationalError as exc:
        engine.dispose()
        reason = mask_secrets(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
        raise DatabaseUnavailable(
            f"DATABASE_URL: cannot connect to {shown} ({reason})"
            if not embedded
            else f"cannot connect to the embedded Postgres ({reason})"
        ) from None
    return Database(
        engine=engine,
        display_url=shown,
        embedded=embedded,
        pgvector_version=version,
        searcher=_search_engine(url, connect_timeout),
        _server=server,
    )


def _search_engine(url: str, connect_timeout: int) -> Engine:
    """The pool searches run on: autocommit, no ping, vectors sent in binary.

    A search is one statement, so it needs no transaction (BEGIN/ROLLBACK were two
    round trips), and the pre-ping of the main pool was a third (~0.25 ms); a cut
    connection is retried once instead (``SearchMixin._search``).  pgvector's adapters
    send a query vector as 1.5 kB of binary instead of ~8 kB of text the server parses
    once per use.  Together with bypassing SQL compilation these took a 2,000-row
    exact search from ~7 ms to ~4 ms on the 2-core reference machine.  Connections are
    made on first use, so opening it costs nothing.
    """
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,  # as the main pool: no query text or vectors in errors
        pool_size=4,
        max_overflow=8,
        connect_args=_connect_args(connect_timeout),
    )
    sqlalchemy.event.listen(engine, "connect", _register_vector)
    return engine


def _connect_args(connect_timeout: int) -> dict[str, Any]:
    return {
        "connect_timeout": connect_timeout,
        "application_name": "librarian",
        # Our queries are short: a JIT compile (tens of ms, from a plan cost of
        # 100k, e.g. an exact scan of 60k rows) never pays for itself.
        "options": f"-c jit=off -c hnsw.ef_search={HNSW_EF_SEARCH}",
    }


def _register_vector(dbapi_connection: Any, _record: Any) -> None:
    """Teach a new search connection pgvector's types (four catalog lookups, once)."""
    register_vector(dbapi_connection)


def _ensure_vector(engine: Engine, shown: str) -> str:
    """Return the installed pgvector version, creating the extension if we may."""
    with engine.connect() as conn:
        installed = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
        if installed:
            return str(installed)
        available = conn.execute(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    if not available:
        raise DatabaseUnavailable(
            f"the Postgres server at {shown} has no pgvector extension: install pgvector on it "
            "(for example use the pgvector/pgvector:pg16 image), or unset DATABASE_URL to use "
            "the embedded server"
        )
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except DBAPIError as exc:
        reason = mask_secrets(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
        raise DatabaseUnavailable(
            f"pgvector is available on {shown} but could not be enabled ({reason}): "
            "ask a superuser to run CREATE EXTENSION vector; in this database"
        ) from None
    return str(available)


@contextlib.contextmanager
def opened(settings: Settings):
    """Context manager form of open_database for CLI commands."""
    db = open_database(settings)
    try:
        yield db
    finally:
        db.close()
