"""What every adapter shares: the command prefix, capped downloads, tracked work, delivery.

Adapters translate and transport; these are the rules that must not differ between
platforms, written once.  Every adapter class subclasses ``bot.adapter.Adapter``,
which declares what it must do and its optional features with their defaults (the
core's side of the contract, so it lives in ``bot/``).  Each adapter package also
exports, with one signature, ``configured(settings)`` (whether its settings are
present; ConfigError when only some are) and ``from_settings(settings, services)``,
which ``bot.cli.run`` loops over.  Which file types are worth downloading is the
core's rule, ``bot.ingest.filetypes.may_download``; the dispatcher applies it to every
share it is handed, and tells the channel why a file is not taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.adapter import EventSink
from bot.command_spec import Command
from bot.events import Event
from bot.ingest.filetypes import check_size

log = logging.getLogger(__name__)

#: A message starting with one of these (then a space, a newline or nothing) is a command.
COMMAND_PREFIXES = ("/librarian", "!librarian")


def command_text(text: str) -> str | None:
    """What follows a ``/librarian`` or ``!librarian`` prefix, or None if it is not a command.

    The prefix is case-insensitive and ends at any whitespace (a space or a newline)
    or at the end of the text: ``/librarians`` is not a command.
    """
    stripped = text.strip()
    lowered = stripped.lower()
    for prefix in COMMAND_PREFIXES:
        if lowered.startswith(prefix):
            rest = stripped[len(prefix) :]
            if not rest or rest[0].isspace():
                return rest.strip()
    return None


class AdapterStore(Protocol):
    """What adapters may ask of the store: their own place, and files indexed from them."""

    def get_setting(self, key: str) -> Any: ...

    def set_setting(self, key: str, value: Any) -> None: ...

    def source_file_ids(self, platform: str) -> list[str]: ...


@dataclass(frozen=True)
class AdapterServices:
    """What ``from_settings`` hands every adapter, whether it uses it or not."""

    store: AdapterStore
    commands: Mapping[str, Command]  # the core's declarations (Discord's slash commands)


async def read_capped(pieces: AsyncIterator[bytes], max_file_mb: float | None, name: str) -> bytes:
    """A download read piece by piece, refused (ExtractionRefused) once past the size limit."""
    limit = None if max_file_mb is None else int(max_file_mb * 2**20)
    data = bytearray()
    async for piece in pieces:
        data += piece
        if limit is not None and len(data) > limit:
            check_size(len(data), max_file_mb, name)
    return bytes(data)


async def deliver(sink: EventSink | None, event: Event, platform: str) -> None:
    """Hand an event to the core; a failure is logged, never raised into the platform's loop."""
    if sink is None:
        log.warning("%s: event %s arrived before start()", platform, event.event_id)
        return
    try:
        await sink(event)
    except Exception:
        log.exception("%s: event %s failed", platform, event.event_id)


class Tasks:
    """Work started by platform events: tracked, drained on shutdown, or cancelled."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self._running: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, work: Awaitable[Any], name: str = "") -> asyncio.Future[Any]:
        """Run ``work`` in the background; its failure is logged with its name."""
        task = asyncio.ensure_future(work)
        if name and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else "work"
            log.error("%s: %s failed", self.platform, name, exc_info=task.exception())

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the work started so far (and what it starts), up to ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._running), timeout=left)

    async def cancel(self) -> None:
        """Cancel the work still running and wait until it has stopped."""
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
