"""Process roles: which parts of the bot one process runs.

One process can run everything (``librarian run``: the embedded default), or the
work can be split over processes that share one database:

* a **gateway** (``librarian run --adapters slack,matrix``) holds chat connections and
  answers questions; it queues uploaded files but indexes nothing and runs no
  scheduled job (unless ``--with-worker``);
* a **worker** (``librarian worker``) indexes the ingest queue and runs the scheduled
  jobs; it has no chat connection.  Any number of workers may run: a document is
  claimed under a session advisory lock, a retention run under a transaction
  advisory lock (``bot.store``), so each is done once however many there are.

Replicas of a gateway follow the platform's rules (:data:`GATEWAY_REPLICAS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError

log = logging.getLogger(__name__)

#: The platforms ``--adapters`` may name.
KNOWN_ADAPTERS = ("slack", "matrix", "discord", "console")

#: Whether a platform's connection may be held by several processes at once, and why.
GATEWAY_REPLICAS: dict[str, str] = {
    "slack": "yes: Socket Mode allows several connections per app token (Slack spreads "
    "events over them); HTTP mode replicas sit behind one load balancer",
    "discord": "one per shard: LIBRARIAN_DISCORD_SHARD_COUNT and LIBRARIAN_DISCORD_SHARD_IDS "
    "say which shards a process runs (discord.py's AutoShardedClient); Discord sends each "
    "guild's events to one shard, so together the processes run each shard once; two "
    "unsharded processes would each receive every event",
    "matrix": "no: one account has one sync loop; a second process would read the same "
    "timeline and answer twice (the event de-duplication then drops one, but both work)",
    "console": "no: it reads this terminal",
}


@dataclass(frozen=True)
class Role:
    """What one process runs: chat gateways (all or some platforms) and/or background work."""

    adapters: tuple[str, ...] | None  # None: every configured platform (or the console)
    background: bool  # the ingest worker and the scheduler

    @property
    def name(self) -> str:
        """``all``, ``gateway`` or ``worker`` (for logs, metrics and status)."""
        if self.adapters == ():
            return "worker"
        return "all" if self.background else "gateway"


def parse_adapters(spec: str | None) -> tuple[str, ...] | None:
    """``"slack,matrix"`` -> ("slack", "matrix"); None or empty -> None (everything)."""
    if spec is None or not spec.strip():
        return None
    names = tuple(dict.fromkeys(p.strip().lower() for p in spec.split(",") if p.strip()))
    unknown = [n for n in names if n not in KNOWN_ADAPTERS]
    if unknown:
        raise ConfigError(
            f"--adapters: unknown platform {', '.join(unknown)} "
            f"(choose from {', '.join(KNOWN_ADAPTERS)})"
        )
    return names


def run_role(adapters: tuple[str, ...] | None, with_worker: bool) -> Role:
    """The role of ``librarian run``: with no ``--adapters``, everything in one process."""
    if adapters is None:
        return Role(None, True)
    return Role(adapters, with_worker)


def select(configured: Sequence[Any], wanted: tuple[str, ...]) -> list[Any]:
    """The configured adapters of the ``wanted`` platforms; an unconfigured one is an error."""
    by_platform = {a.platform: a for a in configured}
    missing = [n for n in wanted if n not in by_platform and n != "console"]
    if missing:
        raise ConfigError(
            f"--adapters {','.join(wanted)}: {', '.join(missing)} is not configured "
            "(set its tokens in the environment)"
        )
    return [by_platform[n] for n in wanted if n in by_platform]


async def until_stopped(work: Callable[[asyncio.Event], Awaitable[Any]]) -> Any:
    """Run ``work(stop)``; SIGTERM and SIGINT set ``stop`` (a container's shutdown)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        return await work(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
