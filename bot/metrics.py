"""Prometheus metrics of one process (``/metrics``, served by :mod:`bot.health`).

Every process owns one :class:`Metrics` with a registry of its own (no module-level
state): counters are updated where things happen (answers by :class:`MeteredAnswerer`,
documents by the ingest service's ``on_finished`` callback, retention runs by the
scheduler's record), gauges are read when Prometheus scrapes (inference backends,
database pools) or refreshed by :mod:`bot.health` (the ingest queue, which needs SQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.knowledge.answer import Answerer
from bot.knowledge.reply import Answer

#: Answer outcomes (``librarian_answers_total{outcome}``).
OUTCOMES = ("answered", "not_found", "replaced_by_evidence", "error")
#: Seconds buckets for answer stages: retrieval is milliseconds, an answer tens of seconds.
ANSWER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The metrics of one process."""

    def __init__(self) -> None:
        """Create the registry and every metric."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.answers = Counter(
            "librarian_answers",
            "Questions answered, by platform and outcome.",
            ["platform", "outcome"],
            registry=r,
        )
        self.answer_seconds = Histogram(
            "librarian_answer_seconds",
            "Seconds an answer took, by stage: retrieve, first_token (from the question), total.",
            ["stage"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.ingest_queue_depth = Gauge(
            "librarian_ingest_queue_depth",
            "Documents queued or being indexed (all workspaces).",
            registry=r,
        )
        self.ingest = Counter(
            "librarian_ingest",
            "Documents this process finished, by outcome.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("indexed", "failed"):  # present at 0, so rate() works from the start
            self.ingest.labels(outcome=outcome)
        self.retention_deleted = Counter(
            "librarian_retention_deleted",
            "Messages deleted by retention runs of this process.",
            registry=r,
        )
        self._info = Gauge("librarian_process_info", "This process's role.", ["role"], registry=r)
        self._sources: list[_Source] = []
        r.register(_Source(self._sources))

    def set_role(self, role: str) -> None:
        """Label the process: ``librarian_process_info{role="worker"} 1``."""
        self._info.clear()
        self._info.labels(role=role).set(1)

    def add_source(self, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        """Add gauges read at each scrape (backends, database pools)."""
        self._sources.append(collect)

    def record_answer(self, platform: str, answer: Answer | None) -> None:
        """Count one answer (None: it failed) and observe its stage timings."""
        self.answers.labels(platform=platform, outcome=outcome_of(answer)).inc()
        if answer is None:
            return
        for stage, key in (
            ("retrieve", "retrieval_ms"),
            ("first_token", "first_token_ms"),
            ("total", "total_ms"),
        ):
            ms = answer.timings.get(key)
            if isinstance(ms, int | float) and ms > 0:
                self.answer_seconds.labels(stage=stage).observe(ms / 1000.0)

    async def record_document(self, doc: Any) -> None:
        """The ingest service's ``on_finished`` callback: count ready and failed documents."""
        self.ingest.labels(outcome="indexed" if doc.status == "ready" else "failed").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def outcome_of(answer: Answer | None) -> str:
    """The ``outcome`` label of an answer."""
    if answer is None:
        return "error"
    if answer.checked == "replaced_by_evidence":
        return "replaced_by_evidence"
    return "answered" if answer.found else "not_found"


class _Source(Collector):
    def __init__(self, sources: list[Callable[[], Iterable[GaugeMetricFamily]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for source in self._sources:
            yield from source()


def backend_gauges(status: Callable[[], list[dict[str, Any]]]) -> Callable[[], list[Any]]:
    """``librarian_backend_up`` / ``_inflight`` from ``Inference.backends()`` rows."""

    def collect() -> list[Any]:
        up = GaugeMetricFamily(
            "librarian_backend_up", "1 if the inference server is healthy.", labels=["backend"]
        )
        inflight = GaugeMetricFamily(
            "librarian_backend_inflight",
            "Requests running on the inference server from this process.",
            labels=["backend"],
        )
        for row in status():
            up.add_metric([row["backend"]], 1.0 if row["up"] else 0.0)
            inflight.add_metric([row["backend"]], float(row["inflight"]))
        return [up, inflight]

    return collect


def pool_gauges(pools: dict[str, Any]) -> Callable[[], list[Any]]:
    """Database connection pool gauges (SQLAlchemy QueuePool) by pool name."""

    def collect() -> list[Any]:
        size = GaugeMetricFamily(
            "librarian_db_pool_size", "Connections the pool keeps.", labels=["pool"]
        )
        used = GaugeMetricFamily(
            "librarian_db_pool_checked_out", "Connections in use.", labels=["pool"]
        )
        overflow = GaugeMetricFamily(
            "librarian_db_pool_overflow", "Connections beyond the pool size.", labels=["pool"]
        )
        for name, engine in pools.items():
            pool = engine.pool
            size.add_metric([name], float(getattr(pool, "size", lambda: 0)()))
            used.add_metric([name], float(getattr(pool, "checkedout", lambda: 0)()))
            overflow.add_metric([name], float(max(0, getattr(pool, "overflow", lambda: 0)())))
        return [size, used, overflow]

    return collect


class MeteredAnswerer(Answerer):
    """The Answerer, counting each answer's outcome and timing its stages."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        """Everything the Answerer takes, plus the process's :class:`Metrics`."""
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    async def answer(self, binding: Any, *args: Any, **kwargs: Any) -> Answer:
        """:meth:`Answerer.answer`, counted (benchmarks' ``evidence_only`` runs are not)."""
        if kwargs.get("evidence_only"):
            return await super().answer(binding, *args, **kwargs)
        started = time.perf_counter()
        try:
            answer = await super().answer(binding, *args, **kwargs)
        except Exception:
            self.metrics.record_answer(binding.platform, None)
            self.metrics.answer_seconds.labels(stage="total").observe(time.perf_counter() - started)
            raise
        self.metrics.record_answer(binding.platform, answer)
        return answer
