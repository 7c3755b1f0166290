"""Connecting to Postgres: the embedded server by default, or ``DATABASE_URL``.

The embedded server (``bot.store.embedded``) is a real PostgreSQL 18 with pgvector
0.8, kept in ``LIBRARIAN_HOME/pgdata``; the bot and an admin's ``librarian ingest`` in
another terminal share one server, and the last process to leave stops it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
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
from bot.store.embedded import (
    EmbeddedServer,
    EmbeddedUnavailable,
    Watchdog,
    shared_buffers_mb,
    start_embedded,
)
from bot.store.server_state import ExternalWatch, forget, record

log = logging.getLogger(__name__)


class DatabaseUnavailable(LibrarianError):
    """The database cannot be reached or lacks what Librarian needs."""

    exit_code = 2


#: The first pgvector release whose features the "0.8" search path uses: halfvec (0.7)
#: and iterative index scans (0.8), measured together in tools/compare_vector_plans.py.
VECTOR_08 = (0, 8, 0)
PATH_08, FALLBACK = "0.8", "fallback"


def vector_path(pgvector_version: str, setting: str = "auto") -> str:
    """Which search path a server gets: "0.8" from pgvector 0.8 on, unless the
    setting (``LIBRARIAN_VECTOR_PLAN=fallback``) asks for the pgvector 0.6 plans."""
    parts = []
    for part in pgvector_version.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    if setting == "fallback" or tuple(parts) < VECTOR_08:
        return FALLBACK
    return PATH_08


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
    # "0.8" when searches may use pgvector 0.8's features (halfvec indexes), else
    # "fallback": the plans written for pgvector 0.6 (see vector_path).
    vector_path: str = FALLBACK
    _server: EmbeddedServer | None = None  # kept alive while we use it
    watchdog: Watchdog | ExternalWatch | None = None
    _state_home: Path | None = None  # where the watch records its state

    def watch(
        self, home: Path | None = None, interval: float = 1.0
    ) -> Watchdog | ExternalWatch | None:
        """Watch the server for as long as the database is open.

        The embedded server is restarted whenever it dies (see :class:`Watchdog`).  A
        ``DATABASE_URL`` server, which the bot does not own, is probed and retried with
        backoff while it is away (:class:`ExternalWatch`); its pools reconnect by
        themselves once it is back (``pool_pre_ping``).  With ``home``, the state is
        recorded there for ``librarian status`` (``bot.store.server_state``).
        """
        if self.watchdog is not None:
            return self.watchdog
        self._state_home = home
        on_state = (lambda state: record(home, state)) if home is not None else None
        if self._server is not None:
            self.watchdog = Watchdog(self._server, interval, on_state=on_state)
        else:
            url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.watchdog = ExternalWatch(url, self.display_url, on_state or (lambda _s: None))
        self.watchdog.start()
        return self.watchdog

    def close(self) -> None:
        """Return connections; the embedded server stops when its last user leaves."""
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
            if self._state_home is not None:
                forget(self._state_home)
        self.searcher.dispose()
        self.engine.dispose()
        if self._server is not None:
            # The server stops at exit of the last process holding it.
            self._server = None


_NOT_OUTAGES = (pg_errors.TransactionRollback, pg_errors.QueryCanceled)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error says the database could not be reached (down, restarting, its
    connection cut), as opposed to a statement that failed on a working server."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable | EmbeddedUnavailable | PoolTimeout):
            return True
        if isinstance(current, InterfaceError):
            return True
        # The search pool runs plain psycopg: its errors arrive unwrapped.
        if isinstance(current, psycopg.OperationalError) and not isinstance(current, _NOT_OUTAGES):
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
        try:
            server = start_embedded(settings.home, shared_buffers_mb(settings.pg_shared_buffers_mb))
        except EmbeddedUnavailable as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        url = _psycopg_url(server.uri)
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
    searcher = _search_engine(url, connect_timeout)
    if server is not None:
        for pool in (engine, searcher):
            sqlalchemy.event.listen(pool, "do_connect", _revive(server))
    return Database(
        engine=engine,
        display_url=shown,
        embedded=embedded,
        pgvector_version=version,
        searcher=searcher,
        vector_path=vector_path(version, settings.vector_plan),
        _server=server,
    )


def _revive(server: EmbeddedServer) -> Any:
    """A connect hook that starts the embedded server again if it died.

    Every new connection (the pool's pre-ping replaces a dead one) first checks the
    postmaster (its pid file and a ``kill(pid, 0)``, microseconds): after a kill -9
    the first statement that needs the database restarts it and goes on, instead of
    failing until someone restarts the bot.
    The watchdog does the same in the background when nothing asks.
    """

    def hook(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        if not server.ready():
            server.ensure_running(noticed_by="a new connection")

    return hook


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
        available = conn.execute(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    if installed and available and installed != available:
        return _update_vector(engine, str(installed), str(available))
    if installed:
        return str(installed)
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


def _update_vector(engine: Engine, installed: str, available: str) -> str:
    """Bring the extension's SQL objects up to the server's pgvector library.

    After an upgrade of the server (ours, or an operator's), the database still records
    the old version: the new functions (halfvec, iterative scans) exist only once the
    extension is updated.  A role that may not update it keeps working on what it has.
    """
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER EXTENSION vector UPDATE"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        log.warning(
            "pgvector %s is installed but the server has %s; could not update it (%s): "
            "ask a superuser to run ALTER EXTENSION vector UPDATE;",
            installed,
            available,
            reason,
        )
        return installed
    log.warning("pgvector updated from %s to %s in this database", installed, available)
    return available


@contextlib.contextmanager
def opened(settings: Settings):
    """Context manager form of open_database for CLI commands."""
    db = open_database(settings)
    try:
        yield db
    finally:
        db.close()
