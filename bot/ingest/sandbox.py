"""Extract untrusted files in a separate, time- and memory-limited worker process.

One unit although long (over 600 lines): the parent's side and the worker's side of
one pipe protocol, with the limits each sets, which must change together.

PDF parsers meet hostile input: page-tree loops, decompression bombs, fuzzer
reproducers.  pypdf is pure Python, so the worst it usually does is spin or allocate
without end, but that is enough to stall or kill the bot.  Here the parsing runs in a
child Python process that

- has an address-space limit (``RLIMIT_AS``) while it parses, so a blow-up ends in a
  ``MemoryError`` (or, failing that, the child's death) instead of the host's OOM killer;
- is killed, with its whole process group, when it runs past the wall-time limit;
- also has a CPU-time limit a little above the wall limit, so a worker orphaned by a
  crashed bot cannot spin forever;
- checks any extractor's result against the document limits (pages, characters:
  :class:`bot.ingest.limits.IngestLimits`) before sending it, and the parent refuses a
  reply longer than those limits allow from its length line, before reading its body.

Starting Python and importing pypdf costs a few hundred milliseconds, so the worker
is reused: a small pool (one by default) of long-lived children, each restarted after
a timeout, a crash, a memory refusal, or a fixed number of files.

The parent and child speak over the child's stdin/stdout: a request is one JSON header
line followed by the raw file bytes; a reply is a decimal length line followed by a
JSON body.  The child moves its own stdout aside first so a stray ``print`` in a
library cannot corrupt the channel.

OCR (bot/ingest/ocr.py) runs here too.  onnxruntime and the decoded page images need
more address space than PDF parsing (about 1.5 GB at peak on a 2000-px page, most of
it reserved rather than used), so a request carries a second, larger limit that the
worker switches to just before it first runs the OCR engine for that file; the file's
own parsing and decoding stay under the normal limit.  A worker that ran OCR holds the
engine's 1.1 GB afterwards, more than the next file's normal limit, so it is replaced
after that file (loading the engine again costs about a second).  OCR also stops starting
new pages at 85% of the wall-time limit, so a long scan returns the pages read so far
(with a warning) instead of timing out whole.

Run as ``python -m bot.ingest.sandbox`` it is the worker; nothing else should start it.

One unit though over 600 lines: both ends of one pipe protocol (framing, limits, the
reply cap, how each failure is reported) live here so that they cannot drift apart.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import LibrarianError
from bot.ingest.extract import Extracted, extract
from bot.ingest.filetypes import (
    ExtractionRefused,
    RefusalCode,
    check_size,
    detect_kind,
    display_name,
    refusal,
)
from bot.ingest.limits import IngestLimits
from bot.ingest.ocr import OcrOptions

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_OCR_MEMORY_MB",
    "DEFAULT_TIMEOUT_S",
    "Sandbox",
    "SandboxError",
    "default_sandbox",
    "extract_sandboxed",
    "shutdown_default_sandbox",
]

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 1024
# The address-space limit while OCR runs (see the module docstring for why it is higher).
DEFAULT_OCR_MEMORY_MB = 2560
# Share of the wall-time limit after which OCR starts no new page.
_OCR_TIME_SHARE = 0.85
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_IO_CHUNK = 1 << 20
_MAX_HEADER_BYTES = 64
# The longest reply read from a child when no document limits are given (the greeting,
# or a caller outside the ingest worker); with limits, IngestLimits.reply_cap_bytes.
_DEFAULT_REPLY_CAP = 256 * 1024 * 1024


class SandboxError(LibrarianError):
    """The sandbox itself failed (e.g. a worker could not start).

    Unlike :class:`ExtractionRefused` this is not the file's fault; retrying later or
    fixing the installation may help.
    """


class _WorkerDied(Exception):
    """The worker closed its end of the pipe: it exited or was killed."""


class _Deadline(Exception):
    """The wall-time limit passed before the exchange finished."""


class _ReplyTooLarge(Exception):
    """The child announced a reply longer than the cap; its body was not read."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _memory_message(name: str, memory_mb: int) -> str:
    return f"{name}: parsing needed more than {memory_mb} MB of memory and was stopped."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Worker:
    """One child process and its pipes; used by one thread at a time."""

    def __init__(self, python: str, startup_timeout_s: float) -> None:
        env = dict(os.environ)
        # The child must import this package even when the bot runs from a checkout
        # rather than an installed wheel.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        # glibc reserves 64 MB of address space per thread arena; onnxruntime's threads
        # would otherwise spend the address-space limit on reservations.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        try:
            self.proc = self._spawn(python, env)
        except OSError as exc:
            raise SandboxError(
                f"the extraction worker could not start: {exc.strerror or exc} ({python})"
            ) from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in_fd = self.proc.stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        os.set_blocking(self._in_fd, False)
        os.set_blocking(self._out_fd, False)
        self._buffer = bytearray()
        self._reply_cap = _DEFAULT_REPLY_CAP
        self.requests = 0
        try:
            ready = self._exchange(b"", time.monotonic() + startup_timeout_s)
        except (_WorkerDied, _Deadline) as exc:
            status = self.kill()
            why = "timed out" if isinstance(exc, _Deadline) else f"exit status {status}"
            raise SandboxError(
                f"the extraction worker did not start ({why}); "
                f"check that '{python} -m bot.ingest.sandbox' runs"
            ) from None
        if not ready.get("ready"):
            self.kill()
            raise SandboxError("the extraction worker sent an unexpected greeting")
        self.pid = self.proc.pid

    @staticmethod
    def _spawn(python: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [python, "-m", "bot.ingest.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # inherited: faulthandler tracebacks land in the bot's log
            bufsize=0,
            env=env,
            # Its own process group, so a kill reaches anything it might have started.
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int | None:
        """Kill the worker and its process group; return its exit status."""
        # Only while it is unreaped: after wait() its pid (= the group id) may be reused
        # by an unrelated process.
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
            status = None
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        return status

    def wait_exit(self, timeout: float = 5.0) -> int | None:
        """After EOF: wait for the child to finish dying and return its status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def request(
        self,
        header: dict[str, Any],
        data: bytes,
        deadline: float,
        reply_cap: int = _DEFAULT_REPLY_CAP,
    ) -> dict[str, Any]:
        """Send one file and wait for the reply, until ``deadline`` (time.monotonic).

        A reply announced longer than ``reply_cap`` bytes raises :class:`_ReplyTooLarge`
        before its body is read.
        """
        self.requests += 1
        self._reply_cap = reply_cap
        line = json.dumps(header).encode() + b"\n"
        return self._exchange(line + data, deadline)

    def _exchange(self, payload: bytes, deadline: float) -> dict[str, Any]:
        """Write ``payload`` while reading one reply; both bounded by ``deadline``.

        Writing and reading are multiplexed so that a child which stops reading (or
        answers early) can never block us past the deadline.
        """
        view = memoryview(payload)
        sent = 0
        with selectors.DefaultSelector() as selector:
            if view:
                selector.register(self._in_fd, selectors.EVENT_WRITE)
            selector.register(self._out_fd, selectors.EVENT_READ)
            while True:
                message = self._take_message()
                if message is not None:
                    if sent < len(view):
                        # The child answers only after reading the whole file; an early
                        # answer means the channel is out of step.
                        raise _WorkerDied
                    return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Deadline
                for key, _events in selector.select(remaining):
                    if key.fd == self._in_fd:
                        try:
                            sent += os.write(self._in_fd, view[sent : sent + _IO_CHUNK])
                        except BlockingIOError:
                            continue
                        except (BrokenPipeError, ConnectionResetError):
                            # The child is gone; its EOF on stdout tells us how.
                            selector.unregister(self._in_fd)
                            continue
                        if sent >= len(view):
                            selector.unregister(self._in_fd)
                    else:
                        try:
                            chunk = os.read(self._out_fd, _IO_CHUNK)
                        except BlockingIOError:
                            continue
                        if not chunk:
                            raise _WorkerDied
                        self._buffer += chunk

    def _take_message(self) -> dict[str, Any] | None:
        newline = self._buffer.find(b"\n", 0, _MAX_HEADER_BYTES)
        if newline < 0:
            if len(self._buffer) >= _MAX_HEADER_BYTES:
                raise _WorkerDied  # garbage on the channel: treat the child as broken
            return None
        try:
            size = int(self._buffer[:newline])
        except ValueError:
            raise _WorkerDied from None
        if size > self._reply_cap:
            raise _ReplyTooLarge(size)
        end = newline + 1 + size
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[newline + 1 : end])
        del self._buffer[:end]
        try:
            message = json.loads(body)
        except ValueError:
            raise _WorkerDied from None
        if not isinstance(message, dict):
            raise _WorkerDied
        return message


@dataclass
class _Slot:
    worker: _Worker | None = None


_ALL_SANDBOXES: weakref.WeakSet[Sandbox] = weakref.WeakSet()


class Sandbox:
    """A pool of reusable, limited extraction workers.

    Thread-safe: each call takes a free worker (waiting for one if all are busy), so
    ``asyncio.to_thread(sandbox.extract, ...)`` from many tasks is fine.  Workers start
    lazily on first use (or with :meth:`warm`) and are killed by :meth:`close`, at
    interpreter exit, or when their parent goes away (their stdin closes).
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        max_requests_per_worker: int = 500,
        startup_timeout_s: float = 30.0,
        python: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._python = python or sys.executable
        self._startup_timeout_s = startup_timeout_s
        self._max_requests = max_requests_per_worker
        self._slots: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._all_slots = [_Slot() for _ in range(workers)]
        for slot in self._all_slots:
            self._slots.put(slot)
        self._closed = False
        self.starts = 0  # worker processes started so far, for monitoring and tests
        _ALL_SANDBOXES.add(self)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def warm(self) -> None:
        """Start every worker now, so the first files do not pay the start-up cost."""
        slots = [self._slots.get() for _ in self._all_slots]
        try:
            for slot in slots:
                self._ensure_worker(slot)
        finally:
            for slot in slots:
                self._slots.put(slot)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring and tests)."""
        return [s.worker.pid for s in self._all_slots if s.worker is not None and s.worker.alive()]

    def close(self) -> None:
        """Kill all workers.  Calls in progress finish or fail with :class:`SandboxError`."""
        self._closed = True
        for slot in self._all_slots:
            worker, slot.worker = slot.worker, None
            if worker is not None:
                worker.kill()

    def _ensure_worker(self, slot: _Slot) -> _Worker:
        worker = slot.worker
        if worker is not None and (not worker.alive() or worker.requests >= self._max_requests):
            worker.kill()
            worker = slot.worker = None
        if worker is None:
            worker = slot.worker = _Worker(self._python, self._startup_timeout_s)
            self.starts += 1
        return worker

    def extract(
        self,
        data: bytes,
        filename: str,
        media_type: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_mb: float | None = None,
        limits: IngestLimits | None = None,
        ocr_memory_mb: int = DEFAULT_OCR_MEMORY_MB,
    ) -> Extracted:
        """Like :func:`bot.ingest.extract.extract`, but in a limited worker process.

        ``timeout_s`` bounds the wall time from handing over the bytes to getting the
        text back (worker start-up is not counted); ``memory_mb`` bounds the worker's
        whole address space while it parses (the interpreter and pypdf take about
        40 MB of it); ``ocr_memory_mb`` replaces it once OCR starts on the file (never
        lower than ``memory_mb``).  ``limits`` (pages, characters) are checked in the
        worker on whatever the extractor returns, and bound the length of the reply.

        Raises:
            ExtractionRefused: everything :func:`~bot.ingest.extract.extract` refuses,
                plus codes ``timeout``, ``memory``, ``crashed`` and ``over_limit``.
            SandboxError: the worker could not be started, or the sandbox is closed.
        """
        if timeout_s <= 0 or memory_mb <= 0:
            raise ValueError("timeout_s and memory_mb must be positive")
        # Cheap checks first: no need to ship 200 MB or a PNG to a worker to refuse it.
        check_size(len(data), max_mb, filename)
        detect_kind(data, filename, media_type)

        name = display_name(filename)
        header = {
            "filename": filename,
            "media_type": media_type,
            "size": len(data),
            "memory_mb": int(memory_mb),
            "ocr_memory_mb": max(int(ocr_memory_mb), int(memory_mb)),
            "timeout_s": float(timeout_s),
        }
        reply_cap = _DEFAULT_REPLY_CAP
        if limits is not None:
            header["limits"] = limits.to_dict()
            reply_cap = limits.reply_cap_bytes
        slot = self._slots.get()
        try:
            if self._closed:
                raise SandboxError("the extraction sandbox is closed")
            worker = self._ensure_worker(slot)
            try:
                reply = worker.request(header, data, time.monotonic() + timeout_s, reply_cap)
            except _ReplyTooLarge as big:
                # The body was never read: the channel is out of step, the worker goes.
                worker.kill()
                slot.worker = None
                if limits is not None:
                    raise limits.reply_too_large(big.size, filename) from None
                raise ExtractionRefused(
                    RefusalCode.OVER_LIMIT,
                    f"{name}: the text read from it ({big.size / 2**20:,.0f} MB) is over "
                    f"the {reply_cap / 2**20:,.0f} MB the extraction worker may send back.",
                ) from None
            except _Deadline:
                worker.kill()
                slot.worker = None
                raise ExtractionRefused(
                    RefusalCode.TIMEOUT,
                    f"{name}: parsing took longer than {timeout_s:g} s and was stopped.",
                ) from None
            except _WorkerDied:
                status = worker.wait_exit()
                worker.kill()
                slot.worker = None
                if self._closed:  # close() killed it: not the file's fault
                    raise SandboxError("the extraction sandbox was closed") from None
                raise self._death_refusal(name, status, memory_mb, timeout_s) from None
            except BaseException:
                # Interrupted mid-exchange: the worker's state is unknown.
                worker.kill()
                slot.worker = None
                raise
            return self._unpack(reply, slot, name, memory_mb)
        finally:
            self._slots.put(slot)

    def _unpack(self, reply: dict[str, Any], slot: _Slot, name: str, memory_mb: int) -> Extracted:
        worker = slot.worker
        assert worker is not None
        # A worker that ran out of memory or hit an unexpected error may be left in a
        # poor state; one whose heap grew large would hand the next file less room.
        code = reply.get("code")
        vm_mb = reply.get("vm_mb") or 0
        # After OCR the worker holds the engine, about 1.1 GB of address space: more
        # than the next file's normal limit allows, so it is replaced too.
        if (
            code in (RefusalCode.MEMORY, RefusalCode.CRASHED)
            or vm_mb > memory_mb / 2
            or reply.get("ocr")
        ):
            worker.kill()
            slot.worker = None
        if reply.get("ok"):
            try:
                return Extracted.from_dict(reply["result"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ExtractionRefused(
                    RefusalCode.CRASHED,
                    f"{name}: the extraction worker returned an unreadable result ({exc}).",
                ) from None
        try:
            return_code = RefusalCode(code)
        except ValueError:
            return_code = RefusalCode.CRASHED
        if return_code is RefusalCode.MEMORY:
            # Only this side knows the limit was ours; say it in the same words as a kill.
            raise ExtractionRefused(return_code, _memory_message(name, memory_mb))
        raise refusal(return_code, str(reply.get("message") or f"{name} could not be read."))

    @staticmethod
    def _death_refusal(
        name: str, status: int | None, memory_mb: int, timeout_s: float
    ) -> ExtractionRefused:
        if status is not None and status < 0:
            sig = -status
            if sig == signal.SIGKILL:
                # Not our kill (that path is the timeout): most likely the kernel's OOM
                # killer, which acts when RLIMIT_AS could not stop the growth in time.
                return ExtractionRefused(RefusalCode.MEMORY, _memory_message(name, memory_mb))
            if sig == signal.SIGXCPU:
                return ExtractionRefused(
                    RefusalCode.TIMEOUT,
                    f"{name}: parsing took longer than {timeout_s:g} s and was stopped.",
                )
            return ExtractionRefused(
                RefusalCode.CRASHED,
                f"{name}: the PDF reader crashed on this file ({_signal_name(sig)}); "
                "it was not read.",
            )
        return ExtractionRefused(
            RefusalCode.CRASHED,
            f"{name}: the PDF reader stopped unexpectedly on this file "
            f"(exit status {status}); it was not read.",
        )


_default_lock = threading.Lock()
_default: Sandbox | None = None


def default_sandbox() -> Sandbox:
    """The process-wide sandbox (one worker) used by :func:`extract_sandboxed`."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Sandbox()
        return _default


def shutdown_default_sandbox() -> None:
    """Kill the default sandbox's worker (it restarts on the next call)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None


def extract_sandboxed(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_mb: float | None = None,
    limits: IngestLimits | None = None,
    ocr_memory_mb: int = DEFAULT_OCR_MEMORY_MB,
) -> Extracted:
    """Extract ``data`` in the shared, limited worker process; see :meth:`Sandbox.extract`.

    Synchronous and thread-safe; from asyncio use ``await asyncio.to_thread(...)``.

    Raises:
        ExtractionRefused: codes unsupported_type, too_large, empty, scanned,
            encrypted, broken, timeout, memory or crashed.
        SandboxError: the worker could not be started.
    """
    return default_sandbox().extract(
        data,
        filename,
        media_type,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        max_mb=max_mb,
        limits=limits,
        ocr_memory_mb=ocr_memory_mb,
    )


@atexit.register
def _close_all() -> None:
    for sandbox in list(_ALL_SANDBOXES):
        sandbox.close()


# --- the worker side ------------------------------------------------------------------


def _vm_mb() -> int:
    """This process's current address-space size in MB (Linux), or 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


def _set_memory_limit(memory_mb: int) -> None:
    import resource

    _, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * 1024 * 1024
    if as_hard != resource.RLIM_INFINITY:
        limit = min(limit, as_hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, as_hard))


def _set_limits(memory_mb: int, timeout_s: float) -> None:
    import resource

    _set_memory_limit(memory_mb)
    # CPU time is cumulative over the worker's life: allow this request its wall limit
    # plus slack on top of what is used so far.  The parent normally kills first; this
    # only matters if the parent is gone.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + timeout_s) + 5
    if cpu_hard != resource.RLIM_INFINITY:
        soft = min(soft, cpu_hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))


def _relax_limits() -> None:
    import resource

    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def _vm_peak_mb() -> int:
    """The most address space this process has ever had, in MB (Linux), or 0."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _near_memory_limit(peak_before_mb: int, memory_mb: int) -> bool:
    """Did this request push the address space up against the limit?

    Under RLIMIT_AS a failed allocation usually surfaces as MemoryError, but some C
    code in CPython and its extensions reports it as SystemError or another error.
    A peak that grew during the request to most of the limit tells those apart.
    """
    peak = _vm_peak_mb()
    return peak > peak_before_mb and peak >= 0.7 * memory_mb


def _memory_reply(filename: str, memory_mb: object) -> dict[str, Any]:
    return {
        "ok": False,
        "code": "memory",
        "message": f"{display_name(filename)}: parsing needed more than {memory_mb} MB "
        "of memory and was stopped.",
    }


class _Limits:
    """The limits of the request being served; OCR may switch to its larger memory limit."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.memory_mb = int(header.get("memory_mb") or 0)
        self.timeout_s = float(header.get("timeout_s") or DEFAULT_TIMEOUT_S)
        self._ocr_memory_mb = int(header.get("ocr_memory_mb") or self.memory_mb)
        self.deadline = time.monotonic() + _OCR_TIME_SHARE * self.timeout_s
        self.ocr_started = False

    def apply(self) -> None:
        _set_limits(self.memory_mb, self.timeout_s)

    def enter_ocr(self) -> None:
        """Switch to the OCR memory limit (called once, before the engine first runs)."""
        self.ocr_started = True
        if self._ocr_memory_mb > self.memory_mb:
            self.memory_mb = self._ocr_memory_mb
            _set_memory_limit(self.memory_mb)

    def ocr_options(self) -> OcrOptions:
        return OcrOptions(deadline=self.deadline, before_engine=self.enter_ocr)


def _handle(
    data: bytes, header: dict[str, Any], peak_before_mb: int, limits: _Limits
) -> dict[str, Any]:
    """Extract one file; every outcome becomes a reply (a dict ready for JSON)."""
    filename = str(header.get("filename") or "")
    try:
        result = extract(data, filename, header.get("media_type"), ocr_options=limits.ocr_options())
        if header.get("limits"):
            # Whatever the extractor, a result over the limits never leaves this process.
            IngestLimits.from_dict(header["limits"]).check_extracted(
                result.page_count, sum(len(page.text) for page in result.pages), filename
            )
        return {"ok": True, "result": result.to_dict()}
    except ExtractionRefused as exc:
        if exc.reason_code is RefusalCode.MEMORY:
            return _memory_reply(filename, limits.memory_mb)
        return {"ok": False, "code": str(exc.reason_code), "message": exc.message}
    except RecursionError:
        return {
            "ok": False,
            "code": "broken",
            "message": f"{display_name(filename)} could not be read as a PDF: its structure "
            "is nested too deeply or loops back on itself.",
        }
    except Exception as exc:
        if isinstance(exc, MemoryError) or _near_memory_limit(peak_before_mb, limits.memory_mb):
            return _memory_reply(filename, limits.memory_mb)
        # A bug in extract() or pypdf that the file triggered.
        return {
            "ok": False,
            "code": "crashed",
            "message": f"{display_name(filename)}: the PDF reader failed unexpectedly "
            f"({type(exc).__name__}); it was not read.",
        }


def _reply_cap(header: dict[str, Any]) -> int:
    """The reply length the parent will read for this request (see Sandbox.extract)."""
    if header.get("limits"):
        return IngestLimits.from_dict(header["limits"]).reply_cap_bytes
    return _DEFAULT_REPLY_CAP


def _over_cap_reply(header: dict[str, Any], size: int, cap: int) -> dict[str, Any]:
    filename = str(header.get("filename") or "")
    if header.get("limits"):
        refused = IngestLimits.from_dict(header["limits"]).reply_too_large(size, filename)
        message = refused.message
    else:
        message = (
            f"{display_name(filename)}: the text read from it ({size / 2**20:,.0f} MB) is "
            f"over the {cap / 2**20:,.0f} MB the extraction worker may send back."
        )
    return {"ok": False, "code": "over_limit", "message": message, "vm_mb": _vm_mb()}


def _encode(message: dict[str, Any]) -> bytes:
    """Frame a message: its length in decimal, a newline, then the JSON body.

    ASCII-only JSON: lone surrogates or odd characters in a file name or in extracted
    text cannot make the encoding fail half-way.
    """
    body = json.dumps(message).encode("ascii")
    return str(len(body)).encode() + b"\n" + body


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _worker_main() -> None:
    """Serve requests on stdin/stdout until stdin closes."""
    import faulthandler
    import gc
    import logging
    import warnings

    # Keep the protocol channel private: a library that prints must not corrupt it.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    # pypdf warns loudly about every oddity of a malformed file; the refusal message
    # already says what matters.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    faulthandler.enable()
    import pypdf  # noqa: F401  - preload so each file does not pay for the import

    # Move everything imported so far out of the collector's sight: the full collection
    # after each file then only walks that file's leftovers (about 10 ms saved per file).
    gc.collect()
    gc.freeze()

    _write_all(proto_out, _encode({"ready": True, "pid": os.getpid()}))
    while True:
        line = proto_in.readline()
        if not line:
            return  # the parent closed the pipe: it is done with us, or gone
        header = json.loads(line)
        size = int(header["size"])
        data = proto_in.read(size)
        if len(data) != size:
            return
        payload: bytes | None = None
        failure = "crashed"
        peak_before = _vm_peak_mb()
        limits = _Limits(header)
        try:
            limits.apply()
            try:
                reply = _handle(data, header, peak_before, limits)
                del data
                reply["vm_mb"] = _vm_mb()
                reply["ocr"] = limits.ocr_started
                payload = _encode(reply)
                del reply
                cap = _reply_cap(header)
                if len(payload) > cap:
                    # Say so in a short reply rather than be cut off by the parent.
                    size = len(payload)
                    payload = _encode(_over_cap_reply(header, size, cap))
            except MemoryError:
                # Raised again while handling the first one (building the message, or
                # the reply): only a bare except with no allocation is safe here.
                failure = "memory"
            except Exception:
                near = _near_memory_limit(peak_before, limits.memory_mb)
                failure = "memory" if near else "crashed"
        finally:
            _relax_limits()
        if payload is None:
            # The limits are off again and the file's objects are unreachable now.
            data = reply = None  # noqa: F841 - drop whatever survived the failure
            gc.collect()
            what = (
                f"parsing needed more than {limits.memory_mb} MB of memory and was stopped"
                if failure == "memory"
                else "the PDF reader failed unexpectedly; it was not read"
            )
            payload = _encode(
                {
                    "ok": False,
                    "code": failure,
                    "message": f"{display_name(header.get('filename'))}: {what}.",
                    "vm_mb": _vm_mb(),
                }
            )
        _write_all(proto_out, payload)
        del payload
        # Drop this file's objects now rather than while the next file is limited.
        gc.collect()


if __name__ == "__main__":
    _worker_main()
