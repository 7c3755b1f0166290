"""The database server's state as a running bot sees it, recorded for `librarian status`.

A running bot watches its database: the embedded server's ``Watchdog`` restarts a dead
postmaster, and ``ExternalWatch`` probes a ``DATABASE_URL`` server and, while it is
away, retries with backoff.  Either writes what it sees to a small JSON file in
``LIBRARIAN_HOME/run/`` (one per process), because ``librarian status`` runs in another
process and the database itself cannot hold the news that it was down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

RUN_DIR = "run"
#: How often a reachable DATABASE_URL server is probed, and the longest wait between
#: tries while it is away (the waits double from ``retry_s``).
PROBE_INTERVAL_S = 5.0
MAX_RETRY_S = 60.0


@dataclass
class ServerState:
    """What one process knows of its database server."""

    kind: str  # "embedded" or "external" (DATABASE_URL)
    # embedded: running / restarting / failed; external: reachable / retrying
    state: str
    restarts: int = 0
    last_restart_at: float | None = None
    last_restart_reason: str | None = None
    last_error: str | None = None
    retry_at: float | None = None  # external, while retrying: the next try
    since: float = field(default_factory=time.time)  # when ``state`` began
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


def state_file(home: Path, pid: int | None = None) -> Path:
    """Where process ``pid`` (this one by default) records its database's state."""
    return home / RUN_DIR / f"database-{socket.gethostname()}-{pid or os.getpid()}.json"


def record(home: Path, state: ServerState) -> None:
    """Write this process's state (atomically: a reader never sees half a file)."""
    path = state_file(home, state.pid)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        part.write_text(json.dumps(asdict(state)))
        part.replace(path)
    except OSError as exc:  # a read-only home must not stop the watch
        log.debug("could not record the database state in %s: %s", path, exc)


def forget(home: Path) -> None:
    """Remove this process's record (it stops watching)."""
    with contextlib.suppress(OSError):
        state_file(home).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded(home: Path) -> list[dict[str, Any]]:
    """The states recorded by running processes on this host, newest first.

    A file left by a process that died without closing (kill -9) is skipped; one from
    another host (a shared home) is kept, since its process cannot be checked here.
    """
    folder = home / RUN_DIR
    entries = []
    for path in folder.glob("database-*.json") if folder.is_dir() else ():
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if entry.get("host") == socket.gethostname() and not _alive(int(entry.get("pid", 0))):
            continue
        entries.append(entry)
    entries.sort(key=lambda e: float(e.get("since") or 0), reverse=True)
    return entries


def _clock(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at or 0)))


def describe(entry: dict[str, Any], now: float | None = None) -> str:
    """One process's view in words, e.g. "running, restarted 2 times (last ...)"."""
    now = time.time() if now is None else now
    state = str(entry.get("state") or "unknown")
    if state == "retrying":
        wait = max(0, round(float(entry.get("retry_at") or now) - now))
        text = f"unreachable since {_clock(entry.get('since'))}, retrying in {wait} s"
    elif state == "restarting":
        text = f"restarting since {_clock(entry.get('since'))}"
    else:
        text = state
    if state in ("retrying", "restarting", "failed") and entry.get("last_error"):
        text += f" ({entry['last_error']})"
    restarts = int(entry.get("restarts") or 0)
    if entry.get("kind") == "embedded":
        if restarts:
            times = "once" if restarts == 1 else f"{restarts} times"
            text += (
                f", restarted {times} (last at {_clock(entry.get('last_restart_at'))}: "
                f"{entry.get('last_restart_reason')})"
            )
        else:
            text += ", never restarted"
    return text


def _probe(url: str, timeout_s: int) -> str | None:
    """None when the server answers ``SELECT 1`` on a fresh connection; else why not."""
    try:
        with psycopg.connect(
            url, connect_timeout=timeout_s, application_name="librarian-watch", autocommit=True
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


class ExternalWatch:
    """Probes a ``DATABASE_URL`` server the bot does not own, and says when it is away.

    While it answers, a probe every ``interval`` seconds (a fresh connection: a pool's
    connections may all be busy).  When it stops answering, one warning, then tries
    after 1, 2, 4 ... up to ``MAX_RETRY_S`` seconds, each logged in one line, and one
    line when it is back.  Work in the bot does its own retrying (the pools reconnect);
    this is what ``status`` and the log tell the operator.
    """

    def __init__(
        self,
        url: str,
        shown: str,
        on_state: Callable[[ServerState], None],
        *,
        interval: float = PROBE_INTERVAL_S,
        retry_s: float = 1.0,
        max_retry_s: float = MAX_RETRY_S,
        probe: Callable[[], str | None] | None = None,
    ) -> None:
        self.shown = shown
        self.on_state = on_state
        self.interval = interval
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._probe = probe or (lambda: _probe(url, max(1, int(min(interval, 5)))))
        self.state = ServerState(kind="external", state="reachable")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="db-watch", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self.on_state(self.state)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            error = self._probe()
            now = time.time()
            if error is None:
                if self.state.state != "reachable":
                    log.warning(
                        "the database at %s is reachable again (away %.0f s)",
                        self.shown,
                        now - self.state.since,
                    )
                    self.state = ServerState(kind="external", state="reachable")
                    self.on_state(self.state)
                wait = self.interval
                continue
            if self.state.state == "reachable":
                wait = self.retry_s
                self.state = ServerState(kind="external", state="retrying", since=now)
            else:
                wait = min(self.max_retry_s, wait * 2)
            self.state.last_error, self.state.retry_at = error, now + wait
            log.warning(
                "the database at %s is unreachable (%s); retrying in %.0f s",
                self.shown,
                error,
                wait,
            )
            self.on_state(self.state)
