"""Wiring: the one place where every part is built and handed its dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from bot.adapter import Adapter
from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.inference.registry import ModelRegistry
from bot.inference.service import Inference
from bot.ingest.filestore import FileStore
from bot.ingest.limits import IngestLimits
from bot.ingest.pipeline import IngestService
from bot.ingest.sandbox import Sandbox
from bot.knowledge.answer import Answerer
from bot.knowledge.retrieval import Retriever
from bot.logs import with_event_id
from bot.metrics import MeteredAnswerer, Metrics, backend_gauges, pool_gauges
from bot.scheduler import Scheduler
from bot.store import migrate
from bot.store.database import Database, open_database
from bot.store.repo import Store
from bot.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass
class App:
    """Every long-lived part of a running bot."""

    settings: Settings
    db: Database
    store: Store
    files: FileStore
    registry: ModelRegistry
    inference: Inference
    sandbox: Sandbox
    ingest: IngestService
    retriever: Retriever
    answerer: Answerer
    dispatcher: Dispatcher
    scheduler: Scheduler
    supervisor: Supervisor
    metrics: Metrics
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, database: Database | None = None) -> App:
        """Open storage (upgrading the schema if needed) and build the core around it."""
        db = database or open_database(settings)
        migrate.ensure_schema(db, auto_upgrade=True)
        store = Store(db, index_recheck_s=settings.index_recheck_seconds)
        files = FileStore(settings.files_dir)
        registry = ModelRegistry(settings)
        inference = Inference.from_settings(settings, registry.resolve)
        sandbox = Sandbox()
        ingest = IngestService(
            store,
            files,
            inference,
            sandbox,
            max_file_mb=settings.max_file_mb,
            limits=IngestLimits.from_settings(settings),
            max_attempts=settings.ingest_attempts,
        )
        retriever = Retriever(store, inference, ingest.embedding_model)
        metrics = Metrics()
        metrics.add_source(pool_gauges({"main": db.engine, "search": db.searcher}))
        metrics.add_source(backend_gauges(inference.backends))
        ingest.on_finished(metrics.record_document)
        answerer = MeteredAnswerer(
            store,
            retriever,
            inference,
            prompt_budget=settings.prompt_budget,
            evidence_coverage=settings.evidence_coverage,
            evidence_similarity=settings.evidence_similarity,
            metrics=metrics,
        )
        dispatcher = Dispatcher(settings, store, answerer, ingest, registry=registry)
        scheduler = Scheduler(
            store,
            retention_interval_minutes=settings.retention_interval_minutes,
            unload_idle=inference.unload_idle,
            model_idle_minutes=settings.model_idle_minutes,
            audit_retention_days=settings.audit_retention_days,
        )
        return cls(
            settings,
            db,
            store,
            files,
            registry,
            inference,
            sandbox,
            ingest,
            retriever,
            answerer,
            dispatcher,
            scheduler,
            Supervisor(store),
            metrics,
        )

    def start_background(self) -> None:
        """Start the ingest worker, the scheduler, and the pass that finishes events a
        stopped process left in flight (call inside the running event loop, after the
        adapters are added: only their platforms' events are run again here)."""
        self._start_jobs()
        self._start_recovery()

    def _start_jobs(self) -> None:
        self._tasks.append(asyncio.create_task(self.ingest.run(), name="ingest-worker"))
        # The embedded server is restarted if it dies; a DATABASE_URL server is probed and
        # retried with backoff; either way `librarian status` can tell.
        self.db.watch(self.settings.home)
        self.scheduler.start()

    def _start_recovery(self) -> None:
        self._tasks.append(
            asyncio.create_task(self.dispatcher.recover_forever(), name="event-recovery")
        )

    async def run_adapters(self, adapters: list[Adapter], *, background: bool = True) -> None:
        """Run adapters until they all stop (the console stops at end of input).

        Each is supervised on its own: one platform's fatal error restarts that one,
        with backoff, and the others go on (``bot.supervisor``).  ``background=False``
        is a gateway of a split deployment (bot.roles): files are queued here and
        indexed by a ``librarian worker``; events left in flight are still recovered
        here, where their platforms are.
        """
        for adapter in adapters:
            self.dispatcher.add_adapter(adapter)
        if background:
            self.start_background()
        else:
            self._start_recovery()
        await self.supervisor.run_all(adapters, with_event_id(self.dispatcher.handle))

    async def run_worker(self, stop: asyncio.Event) -> None:
        """A ``librarian worker``: the ingest queue and the scheduled jobs until ``stop``.

        No event recovery: a worker has no adapter to run an event again with.
        """
        self._start_jobs()
        await stop.wait()

    async def close(self) -> None:
        """Stop background work, unload models, close the database."""
        await self.scheduler.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.ingest.close()  # a document prefetched by a caller of process_next
        await self.inference.close()
        self.sandbox.close()
        self.db.close()
