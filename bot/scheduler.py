"""Periodic jobs of the bot process, on APScheduler 3.x's AsyncIOScheduler.

Every job is idempotent, coalesces missed runs into one (``coalesce=True``),
never overlaps itself (``max_instances=1``), still runs when it is late by up to
one interval (``misfire_grace_time``, e.g. after the machine slept), and takes a
Postgres advisory lock, so several bot processes sharing a database may all run
the scheduler.  Blocking work runs in a thread: the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.retention import AUDIT_KEPT_DAYS, SCHEDULER_ACTOR, RetentionRun, run_retention
from bot.store.repo import Store

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
IDLE_MODELS_JOB = "idle-models"
#: The first retention run comes this long after start (or one interval, if shorter),
#: so that a bot restarted more often than its interval still enforces retention.
FIRST_RUN_DELAY_S = 60.0


class Scheduler:
    """The bot's scheduled jobs; ``start`` inside the running event loop."""

    def __init__(
        self,
        store: Store,
        *,
        retention_interval_minutes: float,
        first_run_delay_s: float = FIRST_RUN_DELAY_S,
        unload_idle: Callable[[float], Awaitable[list[str]]] | None = None,
        model_idle_minutes: float = 0.0,
        audit_retention_days: float = AUDIT_KEPT_DAYS,
    ) -> None:
        """``unload_idle(seconds)`` unloads models idle that long (``Inference.unload_idle``);
        with ``model_idle_minutes`` > 0 a job calls it, checking four times per idle period
        (at most every 5 minutes), so a model is unloaded at most 25% late.
        """
        self.store = store
        self.audit_retention_days = audit_retention_days
        self.unload_idle = unload_idle
        self.model_idle_s = model_idle_minutes * 60.0
        self.unloaded_models: list[str] = []
        self.interval_s = retention_interval_minutes * 60.0
        self.first_run_delay_s = min(first_run_delay_s, self.interval_s)
        self.last_retention: RetentionRun | None = None
        self.retention_runs = 0
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: asyncio.Future[RetentionRun] | None = None

    @property
    def running(self) -> bool:
        """Whether the scheduler has been started and not shut down."""
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        """Start the jobs on the running event loop (idempotent)."""
        if self.running:
            return
        grace = max(1, int(self.interval_s))
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        scheduler.add_job(
            self.retention_job,
            IntervalTrigger(seconds=self.interval_s, timezone=UTC),
            id=RETENTION_JOB,
            name="retention: delete expired conversation history",
            next_run_time=datetime.now(UTC) + timedelta(seconds=self.first_run_delay_s),
            replace_existing=True,
        )
        if self.unload_idle is not None and self.model_idle_s > 0:
            every = min(self.model_idle_s / 4, 300.0)
            scheduler.add_job(
                self.idle_models_job,
                IntervalTrigger(seconds=every, timezone=UTC),
                id=IDLE_MODELS_JOB,
                name="models: unload those nobody used for a while",
                misfire_grace_time=max(1, int(every)),
                replace_existing=True,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started: retention every %.0f s", self.interval_s)

    async def idle_models_job(self) -> list[str]:
        """Unload the models idle for ``model_idle_minutes``; errors are logged, not raised."""
        if self.unload_idle is None:
            return []
        try:
            names = await self.unload_idle(self.model_idle_s)
        except Exception:
            log.exception("unloading idle models failed; it will be tried again")
            return []
        if names:
            self.unloaded_models.extend(names)
            log.info("unloaded idle models: %s", ", ".join(names))
        return names

    async def retention_job(self) -> RetentionRun | None:
        """One scheduled retention run; errors are logged, never raised into the scheduler."""
        # Shielded: cancelling the job (shutdown) must not abandon the thread mid-transaction
        # while the database is being closed; shutdown waits for it instead.
        self._inflight = asyncio.ensure_future(
            asyncio.to_thread(
                run_retention,
                self.store,
                actor=SCHEDULER_ACTOR,
                audit_days=self.audit_retention_days,
            )
        )
        try:
            result = await asyncio.shield(self._inflight)
        except Exception:
            log.exception("the retention job failed; it will run again at the next interval")
            return None
        self.last_retention = result
        self.retention_runs += 1
        level = logging.INFO if result.deleted or result.feedback else logging.DEBUG
        log.log(level, "retention job: %s", result.describe())
        return result

    def job(self, job_id: str = RETENTION_JOB) -> Job | None:
        """A scheduled job (its trigger, next run time and options), None when not running."""
        return self._scheduler.get_job(job_id) if self._scheduler is not None else None

    def next_run(self, job_id: str = RETENTION_JOB) -> datetime | None:
        """When a job runs next (None when not scheduled)."""
        job = self.job(job_id)
        return job.next_run_time if job is not None else None

    async def shutdown(self) -> None:
        """Stop the jobs, after letting a run in progress finish its (short) transaction."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        with contextlib.suppress(SchedulerNotRunningError):
            scheduler.shutdown(wait=False)
        # AsyncIOScheduler shuts down through call_soon: let the loop run it.
        await asyncio.sleep(0)
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(Exception):
                await self._inflight
