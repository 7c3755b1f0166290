"""The model worker: one thread per model, a fair queue, cancellation, streaming to asyncio.

Every scenario runs real generations with the packaged SmolLM2 model, loaded on
the worker's own thread like the service does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.inference.llm import ChatModel
from bot.inference.worker import ModelWorker, Request, RequestCancelled, WorkerClosed

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@pytest.fixture
async def worker(runtime_chat_path: Path) -> AsyncIterator[tuple[ModelWorker, ChatModel]]:
    """A worker with SmolLM2 loaded on its thread (small context: tests stay fast)."""
    w = ModelWorker("test-chat")
    model = await w.submit("load", lambda: ChatModel(runtime_chat_path, n_ctx=1024)).result()
    yield w, model
    await w.aclose(finalizer=model.close)


def recorded(log: list[str], label: str, job: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a job so that the order in which the worker starts jobs is recorded."""

    def run() -> Any:
        log.append(label)
        return job()

    return run


def gate() -> tuple[threading.Event, Callable[[], None]]:
    """A job that holds the worker until the test opens the gate."""
    opened = threading.Event()
    return opened, lambda: opened.wait(30)


def answer(model: ChatModel, max_tokens: int = 3) -> Callable[[], Any]:
    return lambda: model.generate(QUESTION, max_tokens=max_tokens, temperature=0.0)


async def test_a_flooding_conversation_does_not_starve_the_other(worker) -> None:
    w, model = worker
    opened, hold = gate()
    started: list[str] = []
    blocker = w.submit("setup", hold)
    # Alice floods the queue with four questions, then Bob asks two.
    alice = [w.submit("alice", recorded(started, f"a{i}", answer(model))) for i in range(4)]
    bob = [w.submit("bob", recorded(started, f"b{i}", answer(model))) for i in range(2)]

    # Places in line follow the rotation: a0 b0 a1 b1 a2 a3 behind the running job.
    assert [r.position() for r in alice] == [1, 3, 5, 6]
    assert [r.position() for r in bob] == [2, 4]
    assert blocker.position() == 0
    assert w.depth() == 7

    opened.set()
    for request in alice + bob:
        await request.result()
    assert started == ["a0", "b0", "a1", "b1", "a2", "a3"]
    assert w.depth() == 0


async def test_a_cancelled_queued_request_never_runs(worker) -> None:
    w, model = worker
    opened, hold = gate()
    started: list[str] = []
    w.submit("setup", hold)
    dropped = w.submit("carol", recorded(started, "dropped", answer(model)))
    kept = w.submit("dave", recorded(started, "kept", answer(model)))
    assert kept.position() == 2

    assert dropped.cancel()
    assert kept.position() == 1  # the cancelled request left the line at once
    opened.set()
    await kept.result()

    assert started == ["kept"]
    assert dropped.cancelled
    with pytest.raises(RequestCancelled):
        await dropped.result()


async def test_cancelling_a_running_generation_frees_the_worker(worker) -> None:
    w, model = worker
    long_answer = w.submit("erin", answer(model, max_tokens=400))
    next_started = threading.Event()

    def next_answer() -> Any:
        next_started.set()
        return model.generate(QUESTION, max_tokens=3)

    after = w.submit("frank", next_answer)

    pieces = []
    with pytest.raises(RequestCancelled):  # the listener learns that the answer was cut
        async for piece in long_answer.stream():
            pieces.append(piece)
            if len(pieces) == 5:
                cancelled_at = time.monotonic()
                assert long_answer.cancel()
    # The generation stopped at the next token, not after 400.
    assert 5 <= len(pieces) <= 7
    assert long_answer.cancelled
    # ...and the worker went straight on to the next conversation.
    assert await asyncio.to_thread(next_started.wait, 10)
    await after.result()
    assert time.monotonic() - cancelled_at < 5
    assert after.state.value == "done"


async def test_tokens_stream_while_the_event_loop_stays_responsive(worker) -> None:
    w, model = worker
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    request = w.submit("gina", answer(model, max_tokens=60))
    arrivals: list[float] = []
    async for _piece in request.stream():
        arrivals.append(time.monotonic())
    ticking.cancel()

    stats = await request.result()
    assert stats.completion_tokens >= 20
    # Pieces arrived one by one over the generation, not all at the end...
    assert len(arrivals) >= 20
    assert arrivals[-1] - arrivals[0] > 0.1
    # ...while the loop kept ticking every ~10 ms (allowing for a busy 2-core machine:
    # a blocked loop would show gaps as long as the whole generation).
    window = [t for t in ticks if arrivals[0] <= t <= arrivals[-1]]
    gaps = sorted(b - a for a, b in zip(window, window[1:], strict=False))
    assert len(window) >= 0.5 * (arrivals[-1] - arrivals[0]) / 0.01
    assert gaps[int(len(gaps) * 0.95)] < 0.05
    assert gaps[-1] < 0.5


async def test_a_consumer_that_stops_listening_cancels_its_request(worker) -> None:
    w, model = worker
    request = w.submit("hank", answer(model, max_tokens=400))
    async for _piece in request.stream():
        break  # e.g. the user deleted the question
    follow_up = w.submit("ivy", answer(model, max_tokens=2))
    await follow_up.result()
    assert request.cancelled


async def test_job_errors_reach_the_caller_and_the_worker_goes_on(worker) -> None:
    w, model = worker

    def broken() -> None:
        raise ValueError("bad prompt")

    failed: Request = w.submit("jack", broken)
    with pytest.raises(ValueError, match="bad prompt"):
        await failed.result()
    assert await w.submit("jack", lambda: model.count_tokens("still alive")).result() > 0


async def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    w = ModelWorker("closing")
    opened, hold = gate()
    w.submit("a", hold)
    queued = w.submit("b", lambda: 42)
    closing = asyncio.create_task(w.aclose(timeout=10))
    await asyncio.sleep(0.05)
    opened.set()
    assert await closing
    with pytest.raises(WorkerClosed):
        await queued.result()
    with pytest.raises(WorkerClosed):
        w.submit("c", lambda: 1)
