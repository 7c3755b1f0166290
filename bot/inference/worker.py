"""One dedicated thread per loaded model, behind a fair, cancellable queue.

A ``llama_cpp.Llama`` object must never be used by two threads at once, and a
generation takes seconds: so every model gets its own daemon thread that runs
one request at a time, and the asyncio event loop only ever enqueues work and
receives results through ``loop.call_soon_threadsafe``.

Fairness: requests are grouped by a *conversation key* (a channel, a thread...).
Each key has its own FIFO and the keys are served in rotation, so a channel
that floods the queue with ten questions delays every other channel by at most
one of its requests at a time.  A key that becomes active joins the rotation
ahead of the key served last (which has just had its turn).

A *job* is a zero-argument callable run on the worker thread.  If it returns a
generator, each value the generator yields is a *piece* that is streamed to the
consumer as soon as it exists, and the generator's ``return`` value becomes the
request's result; any other return value is the result as is.  Cancelling a
running generator job closes the generator before it computes its next piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Generator, Hashable
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Any]


class RequestCancelled(Exception):
    """The request was cancelled before it produced its result."""


class WorkerClosed(RuntimeError):
    """The worker was closed: it takes no new requests and dropped queued ones."""


class RequestState(enum.Enum):
    """Where a request is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the request will not change any more."""
        return self in (RequestState.DONE, RequestState.FAILED, RequestState.CANCELLED)


class Request:
    """A job submitted to a :class:`ModelWorker`: its place in line, its pieces, its result.

    Created by :meth:`ModelWorker.submit`.  When submitted from inside a running
    event loop, pieces and the result are delivered to that loop thread-safely
    and consumed with :meth:`stream` / :meth:`result`; from plain threads use
    :meth:`result_sync`.
    """

    def __init__(
        self,
        worker: ModelWorker,
        key: Hashable,
        job: Job,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.key = key
        self._worker = worker
        self._job: Job | None = job
        self._loop = loop
        self.state = RequestState.QUEUED
        #: time.monotonic() stamps, for queue and latency statistics.
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._pieces: deque[Any] = deque()
        self._value: Any = None
        self._error: BaseException | None = None
        self._cancel_requested = False
        self._done = threading.Event()
        # Wake-up coalescing: at most one call_soon_threadsafe is in flight per
        # request, however fast the worker produces pieces.
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._changed: asyncio.Event | None = None

    # -- consumer side ----------------------------------------------------------------------

    def position(self) -> int:
        """How many requests are ahead of this one: 0 when it is running (or finished).

        Computed from the round-robin order: the running request, then every
        key's requests round by round, in the current rotation of keys.
        """
        return self._worker._position(self)

    def cancel(self) -> bool:
        """Cancel the request.

        A queued request is dropped and never runs; a running generator job
        stops before its next piece and the worker moves on.  Returns False
        when the request had already finished.
        """
        return self._worker._cancel(self)

    @property
    def cancelled(self) -> bool:
        """True when the request ended by cancellation."""
        return self.state is RequestState.CANCELLED

    def done(self) -> bool:
        """True once the request has finished (successfully, with an error, or cancelled)."""
        return self._done.is_set()

    async def stream(self) -> AsyncIterator[Any]:
        """Yield the pieces of a generator job as they are produced.

        Raises the job's exception, or :class:`RequestCancelled`, after the
        pieces produced before it.  An iteration that ends early cancels the
        request once the iterator is closed (task cancellation closes it at once;
        after a ``break`` asyncio closes it when it is garbage-collected, which
        CPython does immediately), so a consumer that goes away never leaves the
        model generating for nobody.
        """
        changed = self._bind_loop()
        try:
            while True:
                while self._pieces:
                    yield self._pieces.popleft()
                if self._done.is_set():
                    # Pieces are appended before the done flag is set: drain what is left.
                    while self._pieces:
                        yield self._pieces.popleft()
                    break
                changed.clear()
                if self._pieces or self._done.is_set():
                    continue
                await changed.wait()
        finally:
            if not self._done.is_set():
                self.cancel()
        self._raise_if_failed()

    async def result(self) -> Any:
        """Wait for the request to finish and return the job's result.

        Pieces not consumed through :meth:`stream` are discarded.  Raises the
        job's exception or :class:`RequestCancelled`.
        """
        changed = self._bind_loop()
        try:
            while not self._done.is_set():
                changed.clear()
                if self._done.is_set():
                    break
                await changed.wait()
        except asyncio.CancelledError:
            self.cancel()
            raise
        self._pieces.clear()
        self._raise_if_failed()
        return self._value

    def result_sync(self, timeout: float | None = None) -> Any:
        """Block the calling thread until the request finishes; for callers outside asyncio."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.key!r} did not finish within {timeout} s")
        self._raise_if_failed()
        return self._value

    @property
    def queue_ms(self) -> float | None:
        """Milliseconds spent waiting in the queue (None while still queued)."""
        if self.started_at is None:
            return None
        return (self.started_at - self.submitted_at) * 1000.0

    def __repr__(self) -> str:
        return f"<Request key={self.key!r} {self.state.value}>"

    # -- internals --------------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a Request is consumed on the event loop that submitted it")
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _raise_if_failed(self) -> None:
        if self.state is RequestState.CANCELLED:
            raise RequestCancelled(f"request for {self.key!r} was cancelled")
        if self._error is not None:
            raise self._error

    def _push(self, piece: Any) -> None:
        """Worker thread: hand one piece to the consumer."""
        self._pieces.append(piece)
        self._signal()

    def _finish(
        self,
        state: RequestState,
        value: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Any thread, under the worker lock: record the outcome and wake the consumer."""
        if self.state.finished:
            return
        self.state = state
        self._value = value
        self._error = error
        self.finished_at = time.monotonic()
        self._job = None  # drop references held by the closure (model, messages)
        self._done.set()
        self._signal()

    def _signal(self) -> None:
        loop = self._loop
        if loop is None:
            return  # a synchronous waiter uses the threading.Event
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            # The consumer's loop is closed: nobody listens any more.
            self._wake_pending = False
            self._cancel_requested = True

    def _wake(self) -> None:
        """Loop thread: runs via call_soon_threadsafe."""
        with self._wake_lock:
            self._wake_pending = False
        if self._changed is not None:
            self._changed.set()


class ModelWorker:
    """A daemon thread that runs jobs one at a time from a fair, per-key queue.

    ``threads`` > 1 is for a pool of remote servers (``bot.inference.pool``), which
    can run that many requests at once: the threads take requests from the same
    fair queue.  A local model always has one thread.
    """

    def __init__(self, name: str = "model", threads: int = 1) -> None:
        """Start the worker thread(s); ``name`` labels the threads and log lines."""
        self.name = name
        self._cond = threading.Condition()
        self._queues: OrderedDict[Hashable, deque[Request]] = OrderedDict()
        self._running: set[Request] = set()
        self._last_key: Hashable = object()  # the key of the request started last
        self._closing = False
        self._drain = False
        self._finalizer: Callable[[], Any] | None = None
        self._served = 0
        #: Wall-clock time of the last submission or completion (for status displays).
        self.last_used = time.time()
        self._last_activity = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, name=f"inference-{name}-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        self._alive = len(self._threads)
        for thread in self._threads:
            thread.start()

    # -- public -----------------------------------------------------------------------------

    def submit(self, key: Hashable, job: Job) -> Request:
        """Queue ``job`` under conversation ``key`` and return its :class:`Request`.

        Called from an event loop, the request delivers to that loop.  Raises
        :class:`WorkerClosed` once :meth:`close` has been called.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        request = Request(self, key, job, loop)
        with self._cond:
            if self._closing:
                raise WorkerClosed(f"worker {self.name} is closed")
            queue = self._queues.get(key)
            if queue is None:
                # A key that has nothing queued joins the end of the rotation, but ahead
                # of the key served last: that one has just had its turn.
                queue = self._queues[key] = deque()
                if self._last_key in self._queues and self._last_key != key:
                    self._queues.move_to_end(self._last_key)
            queue.append(request)
            self._touch()
            self._cond.notify_all()
        return request

    def depth(self) -> int:
        """Requests queued plus those running."""
        with self._cond:
            return self._queued_count() + len(self._running)

    def running(self) -> int:
        """Requests running now."""
        with self._cond:
            return len(self._running)

    def queued(self) -> int:
        """Requests waiting (not counting the one running)."""
        with self._cond:
            return self._queued_count()

    @property
    def busy(self) -> bool:
        """True while a request is running or waiting."""
        return self.depth() > 0

    def idle_seconds(self) -> float:
        """Seconds since the worker last did anything; 0 while busy."""
        with self._cond:
            if self._running or self._queues:
                return 0.0
            return time.monotonic() - self._last_activity

    @property
    def served(self) -> int:
        """How many requests ran to an end (success, error or cancellation while running)."""
        return self._served

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closing

    def close(
        self,
        *,
        drain: bool = False,
        finalizer: Callable[[], Any] | None = None,
        timeout: float | None = 30.0,
    ) -> bool:
        """Stop the worker and wait for its thread; returns True if the thread ended.

        With ``drain`` the queued requests still run; without, they are
        cancelled and a running generator stops at its next piece.
        ``finalizer`` runs on the worker thread after the last job, which is
        where a model should be freed: that thread is the only one that ever
        touched it.
        """
        with self._cond:
            if not self._closing:
                self._closing = True
                self._drain = drain
                self._finalizer = finalizer
                if not drain:
                    for queue in self._queues.values():
                        for request in queue:
                            request._finish(
                                RequestState.FAILED,
                                error=WorkerClosed(f"worker {self.name} closed"),
                            )
                    self._queues.clear()
                    for running in self._running:
                        running._cancel_requested = True
            self._cond.notify_all()
        if threading.current_thread() in self._threads:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    async def aclose(
        self,
        *,
        drain: bool = False,
        finalizer: Callable[[], Any] | None = None,
        timeout: float | None = 30.0,
    ) -> bool:
        """:meth:`close` without blocking the event loop while the thread finishes."""
        return await asyncio.to_thread(
            self.close, drain=drain, finalizer=finalizer, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"<ModelWorker {self.name} depth={self.depth()}>"

    # -- called by Request ------------------------------------------------------------------

    def _position(self, request: Request) -> int:
        with self._cond:
            if request.state is not RequestState.QUEUED:
                return 0
            queue = self._queues.get(request.key)
            if queue is None:
                return 0
            try:
                index = queue.index(request)
            except ValueError:
                return 0
            ahead = len(self._running)
            own_key_seen = False
            for key, other in self._queues.items():
                if key == request.key:
                    own_key_seen = True
                    ahead += index  # the requests before it under the same key
                    continue
                # Rounds 0..index-1 of every other key come first, then, in round
                # `index`, the keys before ours in the rotation.
                ahead += min(len(other), index)
                if not own_key_seen and len(other) > index:
                    ahead += 1
            return ahead

    def _cancel(self, request: Request) -> bool:
        with self._cond:
            if request.state is RequestState.QUEUED:
                queue = self._queues.get(request.key)
                if queue is not None:
                    with contextlib.suppress(ValueError):
                        queue.remove(request)
                    if not queue:
                        del self._queues[request.key]
                request._finish(RequestState.CANCELLED)
                return True
            if request.state is RequestState.RUNNING:
                request._cancel_requested = True
                return True
            return False

    # -- the thread -------------------------------------------------------------------------

    def _queued_count(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _touch(self) -> None:
        self.last_used = time.time()
        self._last_activity = time.monotonic()

    def _next(self) -> Request | None:
        """Block until there is a request to run; None when the worker should stop."""
        with self._cond:
            while True:
                if self._queues:
                    if self._closing and not self._drain:
                        return None
                    key, queue = self._queues.popitem(last=False)
                    request = queue.popleft()
                    if queue:
                        # Back to the end of the rotation: the other keys go first.
                        self._queues[key] = queue
                    self._last_key = key
                    request.state = RequestState.RUNNING
                    request.started_at = time.monotonic()
                    self._running.add(request)
                    return request
                if self._closing:
                    return None
                self._cond.wait()

    def _run(self) -> None:
        try:
            while True:
                request = self._next()
                if request is None:
                    break
                state, value, error = RequestState.FAILED, None, None
                try:
                    state, value, error = self._execute(request)
                finally:
                    # One lock hold: whoever sees the request finished also sees the worker free.
                    with self._cond:
                        request._finish(state, value=value, error=error)
                        self._running.discard(request)
                        self._served += 1
                        self._touch()
                        self._cond.notify_all()
        finally:
            # The last thread to leave runs the finalizer: no job can be running then.
            with self._cond:
                self._alive -= 1
                last = self._alive == 0
            finalizer = self._finalizer if last else None
            if last:
                self._finalizer = None
            if finalizer is not None:
                try:
                    finalizer()
                except Exception:
                    log.exception("worker %s: finalizer failed", self.name)

    def _execute(self, request: Request) -> tuple[RequestState, Any, BaseException | None]:
        """Run one job; returns its outcome (the caller records it)."""
        job = request._job
        if request._cancel_requested or job is None:
            return RequestState.CANCELLED, None, None
        try:
            out = job()
            value = out
            if isinstance(out, Generator):
                value = self._drive(request, out)
        except Exception as exc:  # the job's own failure belongs to its requester
            return RequestState.FAILED, None, exc
        if request._cancel_requested:
            return RequestState.CANCELLED, None, None
        return RequestState.DONE, value, None

    @staticmethod
    def _drive(request: Request, generator: Generator[Any, None, Any]) -> Any:
        """Run a generator job piece by piece, stopping early when cancelled."""
        # The hot loop of token streaming: keep it to an attribute check and an append.
        push = request._push
        try:
            while not request._cancel_requested:
                try:
                    piece = next(generator)
                except StopIteration as stop:
                    return stop.value
                push(piece)
        finally:
            # On cancellation (or an error in push) this runs the job's cleanup at once.
            generator.close()
        return None
