"""``/healthz``, ``/readyz`` and ``/metrics``: a small HTTP server in every process.

Started when ``LIBRARIAN_HTTP_PORT`` is set.  It runs on the process's own event
loop, so ``/healthz`` answering proves that the loop turns (liveness) and never
touches the database.  ``/readyz`` asks every readiness check at once and answers
within :data:`READY_TIMEOUT_S` whatever they do: a check still running then (a
frozen database) counts as failed, and is not started again until it returns, so
a hung server never piles up threads.  HTTP/1.0 semantics (one request per
connection) are all a probe or a Prometheus scrape needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

#: /readyz answers within this many seconds, even when the database hangs.
READY_TIMEOUT_S = 1.5
#: How often the gauges that need SQL (the ingest queue) are refreshed.
REFRESH_S = 5.0

#: A readiness check: None when ready, else the reason in plain words.
Check = Callable[[], Awaitable[str | None]]


class _OneAtATime:
    """A check that runs at most once at a time; a caller that times out leaves it running."""

    def __init__(self, name: str, check: Check) -> None:
        self.name = name
        self._check = check
        self._task: asyncio.Task[str | None] | None = None

    async def __call__(self, timeout: float) -> str | None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._check())
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return f"{self.name}: no answer within {timeout:.1f} s"
        except Exception as exc:  # a failing check means not ready, never a crash
            return f"{self.name}: {type(exc).__name__}: {exc}"


class HealthServer:
    """The probe and metrics endpoints of one process."""

    def __init__(
        self,
        metrics: Metrics,
        checks: dict[str, Check],
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``checks`` name readiness checks; ``refresh`` updates gauges every REFRESH_S."""
        self.metrics = metrics
        self.checks = [_OneAtATime(name, check) for name, check in checks.items()]
        self.host = host
        self.port = port
        self._refresh = refresh
        self._server: asyncio.base_events.Server | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._refresh is not None:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="metrics-refresh")
        log.info("health and metrics on %s:%d", self.host, self.port)
        return self.port

    async def close(self) -> None:
        """Stop listening and refreshing."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def ready(self) -> list[str]:
        """The reasons this process is not ready (empty: ready)."""
        results = await asyncio.gather(*(check(READY_TIMEOUT_S) for check in self.checks))
        return [r for r in results if r]

    async def _refresh_loop(self) -> None:
        assert self._refresh is not None
        while True:
            try:
                await asyncio.wait_for(self._refresh(), REFRESH_S)
            except Exception as exc:  # the database may be away: try again next time
                log.debug("metrics refresh failed: %s", type(exc).__name__)
            await asyncio.sleep(REFRESH_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while True:  # skip the headers
                header = await asyncio.wait_for(reader.readline(), 5)
                if header in (b"\r\n", b"\n", b""):
                    break
            parts = line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            status, ctype, body = await self._route(method, path)
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            reasons = await self.ready()
            body: dict[str, Any] = {"ready": not reasons, "reasons": reasons}
            status = "200 OK" if not reasons else "503 Service Unavailable"
            return status, "application/json", (json.dumps(body) + "\n").encode()
        if path == "/metrics":
            rendered = await asyncio.to_thread(self.metrics.render)
            return "200 OK", CONTENT_TYPE, rendered
        return "404 Not Found", "text/plain", b"/healthz, /readyz or /metrics\n"
