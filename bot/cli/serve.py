"""What every long-running process does around its work: logs, probes, metrics, signals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from bot import logs
from bot.app import App
from bot.health import HealthServer
from bot.inference.service import CHAT, EMBEDDING
from bot.roles import Role, until_stopped
from bot.store.health import probe


def readiness_checks(app: App, role: Role) -> dict[str, Callable[[], Awaitable[str | None]]]:
    """The database (reachable, schema current) and the inference servers this role uses."""

    async def database() -> str | None:
        return await asyncio.to_thread(probe, app.db, 1.5)

    async def chat() -> str | None:
        return app.inference.ready(CHAT)

    async def embedding() -> str | None:
        return app.inference.ready(EMBEDDING)

    checks: dict[str, Callable[[], Awaitable[str | None]]] = {"database": database}
    if role.adapters != ():
        checks["chat"] = chat
    checks["embedding"] = embedding
    return checks


def gauge_refresher(app: App) -> Callable[[], Awaitable[None]]:
    """Refresh the gauges that need SQL, and count retention runs this process made."""
    seen: list[Any] = [app.scheduler.last_retention]

    async def refresh() -> None:
        run = app.scheduler.last_retention
        if run is not None and run is not seen[0]:
            seen[0] = run
            if run.ran:
                app.metrics.retention_deleted.inc(run.total)
        depth = await asyncio.to_thread(app.store.ingest_queue_depth)
        app.metrics.ingest_queue_depth.set(depth)

    return refresh


async def serve_process(
    app: App, role: Role, work: Callable[[asyncio.Event], Awaitable[Any]]
) -> Any:
    """Run ``work(stop)`` with JSON logs if asked, the HTTP probes if a port is set, and
    ``stop`` set by SIGTERM/SIGINT."""
    settings = app.settings
    logs.configure(settings.log_format, settings.log_level, role.name)
    app.metrics.set_role(role.name)
    server: HealthServer | None = None
    if settings.http_port is not None:
        server = HealthServer(
            app.metrics,
            readiness_checks(app, role),
            host=settings.http_host,
            port=settings.http_port,
            refresh=gauge_refresher(app),
        )
        await server.start()
    try:
        return await until_stopped(work)
    finally:
        if server is not None:
            await server.close()


async def serve_gateways(app: App, role: Role, adapters: list[Any]) -> None:
    """Run ``adapters`` (and the background work if the role has it) until they stop or a
    signal asks the process to."""

    async def gateways(stop: asyncio.Event) -> None:
        running = asyncio.ensure_future(app.run_adapters(adapters, background=role.background))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not running.done():
            running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    await serve_process(app, role, gateways)
