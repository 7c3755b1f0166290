"""Each chat platform's adapter supervised on its own.

One adapter's fatal error (a revoked Matrix token, a Slack app uninstalled, Discord
refusing the bot's token) must not stop the others: ``Supervisor.run`` runs one
adapter, and when its ``start`` raises, it stops it, waits (1 s, doubling up to
``max_backoff_s``) and starts it again.  An adapter that keeps failing without ever
staying up ``stable_s`` is given up after ``max_restarts`` and shown as failed; a
``ConfigError`` (a setting that waiting cannot fix) is given up at once.  When every
adapter has failed, the first failure is raised, so ``librarian run`` still stops
with one clear line when its only platform cannot start.

What each adapter is doing is kept in memory and written to the ``settings`` table
(key ``adapter_states``) at every change, so both ``/librarian status`` in a chat and
``librarian status --json`` in another process show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from bot.adapter import Adapter, EventSink
from bot.errors import ConfigError, LibrarianError
from bot.redact import mask_secrets

log = logging.getLogger(__name__)

STATES_KEY = "adapter_states"
_REASON_CHARS = 300


def reason_of(exc: BaseException) -> str:
    """An error as one short line fit for a status: type, first line, passwords masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return mask_secrets(line)[:_REASON_CHARS]


class Supervisor:
    """Runs adapters side by side; restarts each on its own when it fails."""

    def __init__(
        self,
        store: Any,
        *,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        max_restarts: int = 12,
        stable_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_restarts = max_restarts
        self.stable_s = stable_s
        self.clock = clock
        self.states: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, Exception] = {}  # the last failure of each adapter
        self._write_lock = asyncio.Lock()

    async def run_all(self, adapters: list[Adapter], sink: EventSink) -> None:
        """Run every adapter until each has stopped for good (ended, or given up)."""
        try:
            await asyncio.gather(*(self.run(a, sink) for a in adapters))
        finally:
            for adapter in adapters:
                with contextlib.suppress(Exception):
                    await adapter.stop()
                if self.states.get(adapter.platform, {}).get("state") != "failed":
                    await self._set(adapter.platform, "stopped")
        failed = [a.platform for a in adapters if self.states[a.platform]["state"] == "failed"]
        if adapters and len(failed) == len(adapters):
            first = self.errors[failed[0]]
            if isinstance(first, LibrarianError):
                raise first
            raise LibrarianError(f"{failed[0]} could not run: {reason_of(first)}") from first

    async def run(self, adapter: Adapter, sink: EventSink) -> None:
        """Run one adapter; restart it with backoff when it fails; return when it ends."""
        platform = adapter.platform
        failures = 0
        backoff = self.initial_backoff_s
        while True:
            await self._set(platform, "running", restarts=failures)
            started = time.monotonic()
            try:
                await adapter.start(sink)
                return  # it ended by itself (the console at end of input, or stop())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = reason_of(exc)
                self.errors[platform] = exc
                log.error("%s stopped: %s", platform, reason, exc_info=True)
            with contextlib.suppress(Exception):
                await adapter.stop()
            if time.monotonic() - started >= self.stable_s:
                failures, backoff = 0, self.initial_backoff_s  # it had been up: start over
            failures += 1
            if isinstance(self.errors[platform], ConfigError) or failures > self.max_restarts:
                log.error("%s: giving up after %d failed starts", platform, failures)
                await self._set(platform, "failed", reason=reason, restarts=failures - 1)
                return
            await self._set(
                platform,
                "restarting",
                reason=reason,
                retry_at=self.clock() + backoff,
                restarts=failures - 1,
            )
            log.warning("%s: restarting in %.0f s", platform, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _set(self, platform: str, state: str, **details: Any) -> None:
        """Record an adapter's state here and in the database (best effort)."""
        self.states[platform] = {
            "state": state,
            "since": self.clock(),
            "pid": os.getpid(),
            **details,
        }
        async with self._write_lock:
            try:
                await asyncio.to_thread(self.store.set_setting, STATES_KEY, self.states)
            except Exception:  # the database being down must not stop the platforms
                log.warning("could not record the state of %s", platform, exc_info=True)


def recorded_states(store: Any) -> dict[str, dict[str, Any]]:
    """The adapters' states as the running bot last recorded them (empty if never run)."""
    value = store.get_setting(STATES_KEY)
    return value if isinstance(value, dict) else {}


def describe_state(entry: dict[str, Any], now: float | None = None, *, reason: bool = True) -> str:
    """One adapter's state in words: running, restarting in N s (why), failed (why).

    ``reason=False`` leaves out why: a chat's status shows it only to LIBRARIAN_ADMINS,
    since one platform's error may name another team's channel or file.
    """
    state = str(entry.get("state") or "unknown")
    why = entry.get("reason") if reason else None
    if state == "restarting":
        wait = max(0, round(float(entry.get("retry_at") or 0) - (now or time.time())))
        text = f"restarting in {wait} s"
    else:
        text = state
    if state in ("restarting", "failed") and why:
        text += f" ({why})"
    return text
