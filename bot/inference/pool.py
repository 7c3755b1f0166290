"""A pool of OpenAI-compatible servers of one model, used as one model.

``LIBRARIAN_CHAT_MODEL=http://a:8080/v1#m,http://b:8080/v1#m`` (and the same for the
embedding model) names several servers of the same model.  :class:`ChatPool` and
:class:`EmbeddingPool` offer the methods of one remote model, so the facade runs
them like any model, on a :class:`~bot.inference.worker.ModelWorker` with one thread
per answer the pool may run at once (``slots_per_server`` per server).

Routing: each request goes to the healthy server with the fewest requests in flight
from this process, ties broken by the idle slots llama.cpp's server reports
(``GET /slots``).  Health: llama.cpp's ``GET /health`` (200 ready, 503 loading);
servers without it (llama-cpp-python's ``llama_cpp.server``, Ollama, others) by
``GET /v1/models``.  A server that cannot be reached or answers 5xx (Ollama answers
503 when its queue is full) is *rested* for ``rest_s`` and probed back by a
background thread; meanwhile nothing is sent to it.

Failures: a request that fails before its first token is sent to another server.
An answer whose server dies mid-stream is generated again on another server: the
stream yields :data:`RESTART` and then the new answer from its beginning, so the
consumer drops what it had (the answerer shows no model text before the answer is
complete and checked, so the user sees one complete answer).  A 4xx answer is the
request's fault and is not retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import numpy as np

from bot.inference.llm import GenerationStats, Message, ModelSpec
from bot.inference.remote import RemoteChatModel, RemoteEmbeddingModel, RemoteError, split_url

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Restart:
    """The marker a pooled chat stream yields before regenerating an answer elsewhere."""

    def __repr__(self) -> str:
        return "RESTART"


#: Yielded by :meth:`ChatPool.generate` when the answer so far is void: drop it.
RESTART = _Restart()

#: Seconds a health probe may take.
PROBE_TIMEOUT_S = 2.0
#: How often healthy servers are probed even without traffic (for status and /readyz).
HEALTHY_PROBE_S = 10.0
#: How long a busy server (HTTP 503) rests, whatever ``rest_s`` says.
BUSY_REST_S = 1.0


def is_pool(ref: object) -> bool:
    """True for a comma-separated list of http(s) URLs (a pool), not one URL.

    A single URL with a trailing comma is a pool of one server (the pool's health
    checks, resting and status, e.g. for a benchmark's baseline).
    """
    if not isinstance(ref, str) or "," not in ref:
        return False
    parts = [p.strip() for p in ref.split(",") if p.strip()]
    return bool(parts) and all(p.startswith(("http://", "https://")) for p in parts)


def pool_urls(ref: str) -> list[str]:
    """The servers of a pool reference, in order, without repeats."""
    return list(dict.fromkeys(p.strip() for p in ref.split(",") if p.strip()))


@dataclass
class Server:
    """One server of a pool and what the pool knows about it."""

    url: str
    model: Any = None  # RemoteChatModel / RemoteEmbeddingModel once it answered
    up: bool = False
    inflight: int = 0
    served: int = 0
    failures: int = 0
    idle_slots: int | None = None  # llama.cpp's /slots, when it has it
    kind: str = "unknown"  # "llama.cpp" (has /health) or "openai"
    rested_until: float = 0.0
    probed_at: float = 0.0
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base_url(self) -> str:
        """The server's root, without /v1 and the model name."""
        return split_url(self.url)[0]

    def row(self) -> dict[str, Any]:
        """The server for status and metrics."""
        now = time.monotonic()
        if self.up:
            state = "up"
        elif now < self.rested_until:
            state = f"resting {self.rested_until - now:.0f} s"
        else:
            state = "down"
        return {
            "backend": self.base_url,
            "up": self.up,
            "state": state,
            "inflight": self.inflight,
            "served": self.served,
            "failures": self.failures,
            "idle_slots": self.idle_slots,
            "error": self.error,
        }


class NoServerAvailable(RemoteError):
    """Every server of the pool is down, resting, or failed this request."""


class _Pool:
    """Routing, health and resting shared by the chat and embedding pools."""

    cheap_tokenize = False
    role = "chat"

    def __init__(
        self,
        info: ModelSpec | str,
        *,
        timeout: float = 120.0,
        api_key: str | None = None,
        n_ctx: int | None = None,
        rest_s: float = 10.0,
    ) -> None:
        """Connect to the servers; at least one must answer (the others are probed later)."""
        ref = info.path if isinstance(info, ModelSpec) else info
        self.urls = pool_urls(ref)
        self._timeout = timeout
        self._api_key = api_key
        self._n_ctx_asked = n_ctx
        self.rest_s = rest_s
        self._cond = threading.Condition()
        self._servers = [Server(url) for url in self.urls]
        self._http = httpx.Client(timeout=PROBE_TIMEOUT_S)
        self._closed = threading.Event()
        for server in self._servers:
            self._probe(server)
        first = next((s for s in self._servers if s.model is not None), None)
        if first is None:
            errors = "; ".join(f"{s.base_url}: {s.error}" for s in self._servers)
            raise RemoteError(f"no server of the pool answers ({errors})")
        self.model_name = first.model.model_name
        self._n_ctx = min(s.model.n_ctx for s in self._servers if s.model is not None)
        self.info = ModelSpec(
            name=self.model_name or ref,
            path=ref,
            role=self.role,
            backend="remote",
        )
        self._prober = threading.Thread(target=self._probe_loop, name="pool-probe", daemon=True)
        self._prober.start()

    # -- what the facade and status read ----------------------------------------------------

    @property
    def n_ctx(self) -> int:
        """The smallest context of the servers that answered."""
        return self._n_ctx

    @property
    def base_url(self) -> str:
        """The servers, comma-separated (for logs)."""
        return ",".join(s.base_url for s in self._servers)

    def servers(self) -> list[dict[str, Any]]:
        """One row per server: backend, up, state, inflight, served, failures, error."""
        return [s.row() for s in self._servers]

    def close(self) -> None:
        """Stop probing and close every connection."""
        self._closed.set()
        self._http.close()
        for server in self._servers:
            if server.model is not None:
                server.model.close()

    # -- health -----------------------------------------------------------------------------

    def _connect(self, url: str) -> Any:
        raise NotImplementedError

    def _probe(self, server: Server) -> bool:
        """Ask the server whether it can serve; connect its model on first success."""
        server.probed_at = time.monotonic()
        base = server.base_url
        try:
            response = self._http.get(f"{base}/health")
            if response.status_code == 404:
                server.kind = "openai"
                response = self._http.get(f"{base}/v1/models")
            else:
                server.kind = "llama.cpp"
            if response.status_code != 200:
                raise RemoteError(f"HTTP {response.status_code}", response.status_code)
            if server.kind == "llama.cpp":
                server.idle_slots = self._idle_slots(base)
            if server.model is None:
                server.model = self._connect(server.url)
        except (httpx.HTTPError, RemoteError) as exc:
            self._mark_down(server, f"{type(exc).__name__}: {exc}", getattr(exc, "status", None))
            return False
        with self._cond:
            if not server.up:
                log.info("inference server %s is up", base)
            server.up = True
            server.error = None
            self._cond.notify_all()
        return True

    def _idle_slots(self, base: str) -> int | None:
        try:
            response = self._http.get(f"{base}/slots")
        except httpx.HTTPError:
            return None
        if response.status_code != 200 or not isinstance(response.json(), list):
            return None  # slots endpoint disabled
        slots = response.json()
        return sum(1 for s in slots if not s.get("is_processing", False) and s.get("state", 0) == 0)

    def _mark_down(self, server: Server, error: str, status: int | None = None) -> None:
        rest = BUSY_REST_S if status == 503 else self.rest_s
        with self._cond:
            if server.up:
                log.warning(
                    "inference server %s failed (%s): resting %.0f s",
                    server.base_url,
                    error[:200],
                    rest,
                )
            server.up = False
            server.failures += 1
            server.error = error[:300]
            server.rested_until = time.monotonic() + rest

    def _probe_loop(self) -> None:
        while not self._closed.wait(0.5):
            now = time.monotonic()
            for server in self._servers:
                if self._closed.is_set():
                    return
                due = (
                    now >= server.rested_until
                    if not server.up
                    else now - server.probed_at >= HEALTHY_PROBE_S and server.inflight == 0
                )
                if due:
                    try:
                        self._probe(server)
                    except Exception:  # a probe must never kill the prober
                        log.exception("probing %s failed", server.base_url)

    # -- routing ----------------------------------------------------------------------------

    def _acquire(self, exclude: set[int]) -> Server:
        """The least busy healthy server not in ``exclude`` (by index); counts it in flight."""
        with self._cond:
            candidates = [(i, s) for i, s in enumerate(self._servers) if s.up and i not in exclude]
            if not candidates:
                states = ", ".join(f"{s.base_url} {s.row()['state']}" for s in self._servers)
                raise NoServerAvailable(f"no inference server available ({states})")
            _, server = min(
                candidates, key=lambda c: (c[1].inflight, -(c[1].idle_slots or 0), c[0])
            )
            server.inflight += 1
            if server.idle_slots:
                server.idle_slots -= 1  # until the next probe says otherwise
            return server

    def _release(self, server: Server, *, ok: bool) -> None:
        with self._cond:
            server.inflight -= 1
            if ok:
                server.served += 1
            if server.idle_slots is not None:
                server.idle_slots += 1

    def _retryable(self, exc: RemoteError) -> bool:
        return exc.status is None or exc.status >= 500

    def _call(self, fn: Callable[[Any], T]) -> T:
        """``fn(server.model)`` on the least busy server; failed servers are rested, and the
        call goes to the next one (4xx errors are the request's and are raised)."""
        tried: set[int] = set()
        while True:
            server = self._acquire(tried)
            tried.add(self._servers.index(server))
            ok = False
            try:
                out = fn(server.model)
                ok = True
                return out
            except RemoteError as exc:
                if not self._retryable(exc):
                    ok = True  # the server is fine
                    raise
                self._mark_down(server, str(exc), exc.status)
            finally:
                self._release(server, ok=ok)

    # -- tokens (any healthy server: they run the same model) -------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS/CLS), from a healthy server."""
        return self._call(lambda m: m.tokenize(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``, from a healthy server."""
        return self._call(lambda m: m.detokenize(tokens))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (exact when the servers tokenize, else the estimate)."""
        return self._call(lambda m: m.count_tokens(text))

    @property
    def token_counts_estimated(self) -> bool:
        """Whether counts are the 4-characters-per-token estimate."""
        return self._call(lambda m: m.token_counts_estimated)


class ChatPool(_Pool):
    """Several servers of one chat model, answering as one."""

    role = "chat"

    def __init__(self, info: ModelSpec | str, **kwargs: Any) -> None:
        """Connect to the servers (see :class:`_Pool`)."""
        super().__init__(info, **kwargs)
        self.chat_template: str | None = None
        self.last_stats: GenerationStats | None = None
        #: Answers regenerated on another server after theirs died mid-stream.
        self.restarts = 0

    def _connect(self, url: str) -> RemoteChatModel:
        return RemoteChatModel(
            url, timeout=self._timeout, api_key=self._api_key, n_ctx=self._n_ctx_asked
        )

    def format_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the templated chat, from a healthy server."""
        return self._call(lambda m: m.format_prompt_tokens(messages))

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.7,
        stop: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Generator[Any, None, GenerationStats]:
        """Stream the answer from the least busy server; on failure, from another.

        Yields text pieces, and :data:`RESTART` before an answer is generated again
        because its server died mid-stream.  Closing the generator closes the stream.
        """
        tried: set[int] = set()
        while True:
            server = self._acquire(tried)
            tried.add(self._servers.index(server))
            ok = False
            produced = False
            stream = server.model.generate(messages, max_tokens, temperature, stop, **kwargs)
            try:
                while True:
                    try:
                        piece = next(stream)
                    except StopIteration as done:
                        ok = True
                        self.last_stats = done.value
                        return done.value
                    produced = True
                    yield piece
            except RemoteError as exc:
                if not self._retryable(exc):
                    ok = True
                    raise
                self._mark_down(server, str(exc), exc.status)
                if produced:
                    with self._cond:
                        self.restarts += 1
                    log.warning(
                        "inference server %s died mid-answer: generating it again elsewhere",
                        server.base_url,
                    )
                    yield RESTART
            finally:
                stream.close()
                self._release(server, ok=ok)

    def __repr__(self) -> str:
        return f"<ChatPool {self.model_name} at {self.base_url}>"


class EmbeddingPool(_Pool):
    """Several servers of one embedding model, embedding as one."""

    role = "embedding"

    def __init__(self, info: ModelSpec | str, **kwargs: Any) -> None:
        """Connect to the servers (see :class:`_Pool`)."""
        super().__init__(info, **kwargs)
        dims = {s.model.dims for s in self._servers if s.model is not None}
        if len(dims) > 1:
            raise RemoteError(f"the pool's servers give vectors of different sizes: {dims}")
        self.dims: int = dims.pop()

    def _connect(self, url: str) -> RemoteEmbeddingModel:
        model = RemoteEmbeddingModel(
            url, timeout=self._timeout, api_key=self._api_key, n_ctx=self._n_ctx_asked
        )
        if getattr(self, "dims", model.dims) != model.dims:
            raise RemoteError(f"{url} gives vectors of {model.dims} dimensions, not {self.dims}")
        return model

    @property
    def max_text_tokens(self) -> int:
        """The most plain-text tokens one text can have (smallest over the servers)."""
        return min(s.model.max_text_tokens for s in self._servers if s.model is not None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, from the least busy server."""
        return self._call(lambda m: m.embed(texts))

    def __repr__(self) -> str:
        return f"<EmbeddingPool {self.model_name} at {self.base_url}>"


def describe_servers(rows: list[dict[str, Any]]) -> str:
    """Remote servers in one line for a chat status: address, role, state, load."""
    return "; ".join(
        f"{r['backend']} ({r['role']}, {r.get('state') or ('up' if r['up'] else 'down')}, "
        f"{r['inflight']} in flight)"
        for r in rows
    )


def probe_configured(
    refs: dict[str, str], timeout: float = PROBE_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Health of every remote server named by ``refs`` (role -> model reference), for
    ``librarian status``: a separate process that has no pool of its own to ask."""
    rows: list[dict[str, Any]] = []
    with httpx.Client(timeout=timeout) as http:
        for role, ref in refs.items():
            if not isinstance(ref, str) or not ref.startswith(("http://", "https://")):
                continue
            for url in pool_urls(ref):
                base = split_url(url)[0]
                try:
                    response = http.get(f"{base}/health")
                    if response.status_code == 404:
                        response = http.get(f"{base}/v1/models")
                    up = response.status_code == 200
                    error = None if up else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    up, error = False, f"{type(exc).__name__}: {exc}"
                rows.append({"backend": base, "role": role, "up": up, "error": error})
    return rows
