"""The inference facade the core talks to: chat streams, embeddings, token counts.

One unit although long (over 600 lines): resolving, loading, queueing, evicting and
reporting all read and change one table of loaded models (``_slots`` and the loads in
flight), by role and file, which a split would have to share.

The core never sees llama_cpp.  It names a model by a *reference* (whatever the
registry understands, an ``http(s)://`` URL of an OpenAI-compatible server, or a
:class:`~bot.inference.llm.ModelSpec`) and the facade resolves, loads, queues
and unloads:

* each loaded model lives on its own :class:`~bot.inference.worker.ModelWorker`
  thread (loading included), behind a fair per-conversation queue, so the event
  loop never blocks on inference;
* asking for another model loads it at run time; when more than
  ``max_loaded_per_role`` models of a role are loaded, the least recently used
  one is unloaded as soon as its queue drains (``Llama.close()``, references
  dropped, ``gc``, ``malloc_trim``); :meth:`Inference.unload_idle` unloads
  models nobody used for a while;
* a comma-separated list of server URLs is a pool (:mod:`bot.inference.pool`), run
  on a worker with one thread per answer it may serve at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.errors import LibrarianError
from bot.inference import pool
from bot.inference.gguf import read_gguf_facts
from bot.inference.llm import (
    ChatModel,
    EmbeddingModel,
    GenerationStats,
    Message,
    ModelSpec,
)
from bot.inference.worker import ModelWorker, Request

log = logging.getLogger(__name__)

#: A model reference: a registry name, a path, an http(s) URL, a ModelSpec, or any
#: resolved object with a ``path`` (such as the registry's ModelInfo).
ModelRef = str | os.PathLike[str] | ModelSpec | Any

#: ``resolver(ref, role=...)`` -> ModelSpec, a path, or any object with a ``path``
#: attribute (and optionally ``name``, ``quant``, ``size_bytes``).  It may block (the
#: registry can convert a model on first use): the facade calls it in a thread.
Resolver = Callable[..., Any]

CHAT = "chat"
#: A workspace's chat model ``remote:<name>``: the server named <name> in
#: LIBRARIAN_REMOTE_MODELS (addresses come from configuration, never from chat).
REMOTE_PREFIX = "remote:"
EMBEDDING = "embedding"
ROLES = (CHAT, EMBEDDING)

# Above this many characters tokenization takes milliseconds: do it off the loop.
_INLINE_TOKENIZE_CHARS = 20_000


class ChatBackend(Protocol):
    """What a chat model offers; :class:`ChatModel` and ``RemoteChatModel`` both do."""

    info: ModelSpec
    cheap_tokenize: bool

    @property
    def n_ctx(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def format_prompt_tokens(self, messages: Sequence[Message]) -> int: ...

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = ...,
        temperature: float = ...,
        stop: Sequence[str] | None = ...,
        *,
        seed: int | None = ...,
    ) -> Any: ...

    def close(self) -> None: ...


class EmbeddingBackend(Protocol):
    """What an embedding model offers; :class:`EmbeddingModel` and ``RemoteEmbeddingModel`` do."""

    info: ModelSpec
    dims: int
    cheap_tokenize: bool

    @property
    def n_ctx(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ChatStats:
    """Figures of one answer, available on the ChatStream once it has ended.

    ``first_token_ms`` runs from submission to the first piece (queue wait plus
    prompt evaluation: what the user waits); ``prompt_ms`` is the prompt
    evaluation alone, measured on the worker.
    """

    model: str
    prompt_tokens: int
    completion_tokens: int
    queue_ms: float
    prompt_ms: float | None
    first_token_ms: float | None
    total_ms: float
    tokens_per_s: float
    finish_reason: str | None

    @classmethod
    def from_generation(cls, model: str, queue_ms: float, gen: GenerationStats) -> ChatStats:
        """Combine the worker-side generation figures with the queue wait."""
        return cls(
            model=model,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            queue_ms=queue_ms,
            prompt_ms=gen.first_token_ms,
            first_token_ms=None if gen.first_token_ms is None else queue_ms + gen.first_token_ms,
            total_ms=queue_ms + gen.total_ms,
            tokens_per_s=gen.tokens_per_s,
            finish_reason=gen.finish_reason,
        )


class ChatStream:
    """An answer being generated: iterate it (``async for piece in stream``) for text pieces.

    ``position()`` tells how many requests are ahead while it waits; ``cancel()``
    drops it from the queue or stops the generation at the next token; ``stats``
    is set once the iteration has ended normally.  Breaking out of the iteration
    cancels the generation.
    """

    def __init__(self, request: Request, info: ModelSpec) -> None:
        self._request = request
        self.model = info
        self.stats: ChatStats | None = None
        self._iterated = False

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterated:
            raise RuntimeError("a ChatStream can be iterated only once")
        self._iterated = True
        return self._pieces()

    #: Yielded when a pooled server died mid-answer: drop the pieces so far, the answer
    #: follows again from its beginning (bot.inference.pool).
    RESTART = pool.RESTART

    async def _pieces(self) -> AsyncIterator[str]:
        async for piece in self._request.stream():
            yield piece
        gen = self._request._value
        if isinstance(gen, GenerationStats):
            self.stats = ChatStats.from_generation(
                self.model.name, self._request.queue_ms or 0.0, gen
            )

    async def text(self) -> str:
        """Consume the whole stream and return the answer (the last one, after a restart)."""
        pieces: list[str] = []
        async for piece in self:
            if piece is self.RESTART:
                pieces.clear()
            else:
                pieces.append(piece)
        return "".join(pieces)

    def position(self) -> int:
        """Requests ahead of this one in the model's queue; 0 once it runs."""
        return self._request.position()

    def cancel(self) -> bool:
        """Cancel: a queued answer never runs, a running one stops at the next token."""
        return self._request.cancel()

    @property
    def state(self) -> str:
        """``queued``, ``running``, ``done``, ``failed`` or ``cancelled``."""
        return self._request.state.value

    @property
    def key(self) -> Hashable:
        """The conversation key the answer was queued under."""
        return self._request.key


@dataclass
class _Slot:
    """A loaded model with its worker."""

    ident: tuple[str, str]
    info: ModelSpec
    model: Any
    worker: ModelWorker
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    last_used_wall: float = field(default_factory=time.time)

    def touch(self) -> None:
        self.last_used = time.monotonic()
        self.last_used_wall = time.time()

    def idle_seconds(self) -> float:
        """Seconds since the facade or the worker last used the model."""
        worker_idle = self.worker.idle_seconds()
        if worker_idle == 0.0:
            return 0.0
        return min(worker_idle, time.monotonic() - self.last_used)


def _is_url(ref: object) -> bool:
    return isinstance(ref, str) and ref.startswith(("http://", "https://"))


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim)."""
    gc.collect()
    # Not glibc (OSError, AttributeError): that allocator keeps its pages.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Inference:
    """Chat, embeddings and token counts over local (or remote) models, off the event loop."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        chat_model: ModelRef | None = None,
        embedding_model: ModelRef | None = None,
        n_threads: int = 0,
        chat_context: int = 4096,
        max_loaded_per_role: int = 1,
        embed_job_texts: int = 16,
        embed_batch_tokens: int = 256,
        remote_timeout: float = 120.0,
        remotes: dict[str, str] | None = None,
        pool_slots_per_server: int = 4,
        pool_rest_s: float = 10.0,
    ) -> None:
        """Set up the facade; nothing is loaded until first use.

        ``resolver(ref, role=...)`` turns a reference into a model file (the
        registry's ``resolve``).  ``chat_model`` / ``embedding_model`` are the
        defaults used when a call passes ``None``.  ``embed_job_texts`` splits
        big embedding calls into jobs of that many texts so that a query's
        embedding never waits behind a whole document's; ``embed_batch_tokens``
        is EmbeddingModel's packing of short texts into one llama.cpp call.
        """
        self._resolver = resolver
        self.chat_model = chat_model
        self.embedding_model = embedding_model
        self.n_threads = n_threads
        self.chat_context = chat_context
        self.max_loaded_per_role = max(1, max_loaded_per_role)
        self.embed_job_texts = max(1, embed_job_texts)
        self.embed_batch_tokens = embed_batch_tokens
        self.remote_timeout = remote_timeout
        self.remotes = dict(remotes or {})
        self.pool_slots_per_server = max(1, pool_slots_per_server)
        self.pool_rest_s = pool_rest_s
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[_Slot]] = {}
        self._resolved: dict[tuple[str, str], ModelSpec] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Any, resolver: Resolver, **kwargs: Any) -> Inference:
        """The facade configured from :class:`bot.config.Settings`."""
        return cls(
            resolver,
            chat_model=settings.chat_model,
            embedding_model=settings.embedding_model,
            n_threads=settings.n_threads,
            chat_context=settings.chat_context,
            remotes=dict(getattr(settings, "remote_models", None) or {}),
            pool_slots_per_server=getattr(settings, "pool_slots_per_server", 4),
            pool_rest_s=getattr(settings, "pool_rest_s", 10.0),
            **kwargs,
        )

    # -- chat -------------------------------------------------------------------------------

    async def chat_stream(
        self,
        model: ModelRef | None,
        messages: Sequence[Message],
        key: Hashable,
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> ChatStream:
        """Queue an answer to ``messages`` under conversation ``key`` and return its stream.

        Returns as soon as the request is queued (after loading the model if
        needed); the pieces arrive as the model produces them.  ``seed`` fixes the
        sampling: the same messages give the same answer (None: the model's own RNG,
        which runs on from call to call).
        """
        slot = await self._get(model, CHAT)
        # A copy: the caller may reuse its list while the worker reads this one.
        msgs = [dict(m) for m in messages]
        job = functools.partial(
            slot.model.generate,
            msgs,
            max_tokens,
            temperature,
            list(stop) if stop else None,
            seed=seed,
        )
        request = slot.worker.submit(key, job)
        return ChatStream(request, slot.info)

    async def count_prompt_tokens(self, model: ModelRef | None, messages: Sequence[Message]) -> int:
        """Tokens of ``messages`` once rendered by the model's chat template."""
        slot = await self._get(model, CHAT)
        msgs = [dict(m) for m in messages]
        size = sum(len(str(m.get("content") or "")) for m in msgs)
        if slot.model.cheap_tokenize and size < _INLINE_TOKENIZE_CHARS:
            return slot.model.format_prompt_tokens(msgs)
        return await asyncio.to_thread(slot.model.format_prompt_tokens, msgs)

    # -- embeddings -------------------------------------------------------------------------

    async def embed(
        self,
        texts: Sequence[str],
        *,
        model: ModelRef | None = None,
        key: Hashable = "embed",
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, computed on the model's worker.

        Large lists are split into jobs of ``embed_job_texts`` texts queued
        under ``key``: pass the workspace or "query" as ``key`` so that queries
        and ingestion of several documents take turns.
        """
        slot = await self._get(model, EMBEDDING)
        texts = list(texts)
        if not texts:
            return np.zeros((0, slot.model.dims), dtype=np.float32)
        size = self.embed_job_texts
        requests = [
            slot.worker.submit(key, functools.partial(slot.model.embed, texts[i : i + size]))
            for i in range(0, len(texts), size)
        ]
        try:
            parts = [await request.result() for request in requests]
        except BaseException:
            for request in requests:
                request.cancel()
            raise
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    # -- tokens -----------------------------------------------------------------------------

    async def count_tokens(self, model: ModelRef | None, text: str, *, role: str = CHAT) -> int:
        """Tokens of ``text`` by the model's own tokenizer (no BOS/CLS added).

        Local tokenization only reads the vocabulary, never the context a
        generation is using, so it runs directly (off the loop for long texts).
        """
        slot = await self._get(model, role)
        if slot.model.cheap_tokenize and len(text) < _INLINE_TOKENIZE_CHARS:
            return slot.model.count_tokens(text)
        return await asyncio.to_thread(slot.model.count_tokens, text)

    async def tokenize(
        self, model: ModelRef | None, text: str, *, role: str = EMBEDDING
    ) -> list[int]:
        """Token ids of ``text`` (for chunking by tokens)."""
        slot = await self._get(model, role)
        if slot.model.cheap_tokenize and len(text) < _INLINE_TOKENIZE_CHARS:
            return slot.model.tokenize(text)
        return await asyncio.to_thread(slot.model.tokenize, text)

    async def detokenize(
        self, model: ModelRef | None, tokens: Sequence[int], *, role: str = EMBEDDING
    ) -> str:
        """Text of token ids produced by :meth:`tokenize`."""
        slot = await self._get(model, role)
        tokens = list(tokens)
        if slot.model.cheap_tokenize and len(tokens) < _INLINE_TOKENIZE_CHARS // 4:
            return slot.model.detokenize(tokens)
        return await asyncio.to_thread(slot.model.detokenize, tokens)

    async def describe(self, model: ModelRef | None = None, *, role: str = CHAT) -> dict[str, Any]:
        """Facts the core plans with: ``n_ctx``; ``languages``, those a local model's file
        says it was trained for (empty when it does not say, and for a remote model);
        ``dims`` and ``max_text_tokens`` for embeddings."""
        slot = await self._get(model, role)
        facts = slot.info.as_dict()
        facts["n_ctx"] = slot.model.n_ctx
        facts["languages"] = list(_languages(slot.info))
        if role == EMBEDDING:
            facts["dims"] = slot.model.dims
            facts["max_text_tokens"] = getattr(slot.model, "max_text_tokens", slot.model.n_ctx)
        return facts

    # -- loaded models ----------------------------------------------------------------------

    def loaded(self) -> list[dict[str, Any]]:
        """The loaded models, for a status command: one dict per model.

        Keys: name, role, quant, size_bytes, backend, path, queue_depth
        (running + waiting), loaded_at and last_used (epoch seconds), idle_s, served.
        """
        rows = []
        for slot in self._slots.values():
            row = slot.info.as_dict()
            row.update(
                queue_depth=slot.worker.depth(),
                loaded_at=slot.loaded_at,
                last_used=max(slot.worker.last_used, slot.last_used_wall),
                idle_s=round(slot.idle_seconds(), 3),
                served=slot.worker.served,
            )
            rows.append(row)
        return rows

    def backends(self) -> list[dict[str, Any]]:
        """Every inference server or local model in use, for status and metrics.

        Keys: backend (a server's base URL, or ``local:<name>``), role, up, inflight
        (requests running from this process), and for pooled servers state and error.
        A pool of remote servers lists each server.
        """
        rows: list[dict[str, Any]] = []
        for slot in list(self._slots.values()):
            servers = getattr(slot.model, "servers", None)
            if callable(servers):
                rows.extend(dict(row, role=slot.info.role) for row in servers())
                continue
            name = getattr(slot.model, "base_url", None) or f"local:{slot.info.name}"
            rows.append(
                {
                    "backend": name,
                    "role": slot.info.role,
                    "up": not slot.worker.closed,
                    "inflight": slot.worker.running(),
                }
            )
        return rows

    def ready(self, role: str = CHAT) -> str | None:
        """None when a model of ``role`` can serve (a pool: one server up); else why not.

        A local model, or one not loaded yet, counts as ready: it loads on first use.
        """
        pools = [
            s.model
            for s in list(self._slots.values())
            if s.info.role == role and callable(getattr(s.model, "servers", None))
        ]
        for group in pools:
            if not any(row["up"] for row in group.servers()):
                return f"no {role} server is up ({', '.join(group.urls)})"
        return None

    async def load(self, model: ModelRef | None, *, role: str = CHAT) -> ModelSpec:
        """Load a model now (otherwise it loads on first use); returns what was loaded."""
        return (await self._get(model, role)).info

    async def unload(self, model: ModelRef | None, *, role: str = CHAT, drain: bool = True) -> bool:
        """Unload a model; with ``drain`` its queued requests finish first. False if not loaded."""
        ref = self._default(model, role)
        info = self._resolved.get((self._ref_key(ref), role))
        if info is None and not isinstance(ref, str | os.PathLike):
            info = await self._resolve(ref, role)
        if info is None:
            return False
        slot = self._slots.get((role, info.path))
        if slot is None:
            return False
        await self._retire(slot, drain=drain)
        return True

    async def unload_idle(self, max_idle_s: float) -> list[str]:
        """Unload every model idle for at least ``max_idle_s`` seconds; returns their names."""
        idle = [s for s in self._slots.values() if s.idle_seconds() >= max_idle_s]
        for slot in idle:
            await self._retire(slot, drain=True)
        return [slot.info.name for slot in idle]

    async def close(self) -> None:
        """Stop every worker (queued requests fail, running ones stop) and free the models."""
        self._closed = True
        for task in list(self._loading.values()):
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        for slot in list(self._slots.values()):
            await self._retire(slot, drain=False)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> Inference:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals --------------------------------------------------------------------------

    def _default(self, model: ModelRef | None, role: str) -> ModelRef:
        if model is not None:
            return model
        default = self.chat_model if role == CHAT else self.embedding_model
        if default is None:
            raise ValueError(f"no {role} model given and no default {role} model configured")
        return default

    @staticmethod
    def _ref_key(ref: ModelRef) -> str:
        if isinstance(ref, str | os.PathLike):
            return os.fspath(ref)
        return f"info:{getattr(ref, 'backend', 'local')}:{ref.path}"

    async def _resolve(self, ref: ModelRef, role: str) -> ModelSpec:
        if role not in ROLES:
            raise ValueError(f"unknown model role {role!r}")
        if isinstance(ref, ModelSpec):
            return ref if ref.role == role else replace(ref, role=role)
        if not isinstance(ref, str | os.PathLike):
            # Already resolved elsewhere (e.g. the registry's ModelInfo): take its facts.
            return coerce_info(ref, str(getattr(ref, "name", "") or ""), role)
        cache_key = (self._ref_key(ref), role)
        info = self._resolved.get(cache_key)
        if info is not None:
            return info
        if _is_url(ref):
            info = remote_info(str(ref), role)
        elif isinstance(ref, str) and ref.startswith(REMOTE_PREFIX):
            name = ref.removeprefix(REMOTE_PREFIX)
            url = self.remotes.get(name)
            if url is None:
                raise LibrarianError(
                    f"remote model {name!r} is not configured (LIBRARIAN_REMOTE_MODELS)"
                )
            info = remote_info(url, role)
        else:
            found = await asyncio.to_thread(self._resolver, os.fspath(ref), role=role)
            info = coerce_info(found, os.fspath(ref), role)
        self._resolved[cache_key] = info
        return info

    async def _get(self, model: ModelRef | None, role: str) -> _Slot:
        if self._closed:
            raise RuntimeError("inference service is closed")
        info = await self._resolve(self._default(model, role), role)
        ident = (role, info.path)
        slot = self._slots.get(ident)
        if slot is not None and not slot.worker.closed:
            slot.touch()
            return slot
        task = self._loading.get(ident)
        if task is None:
            task = asyncio.ensure_future(self._load(ident, info))
            self._loading[ident] = task
            task.add_done_callback(lambda _t, i=ident: self._loading.pop(i, None))
        # Shielded: a caller that gives up does not abort a load others wait for.
        slot = await asyncio.shield(task)
        slot.touch()
        return slot

    def _factory(self, info: ModelSpec) -> Callable[[], Any]:
        if info.backend == "remote" and pool.is_pool(info.path):
            cls = pool.ChatPool if info.role == CHAT else pool.EmbeddingPool
            return functools.partial(
                cls,
                info,
                timeout=self.remote_timeout,
                n_ctx=info.extra.get("n_ctx"),
                rest_s=self.pool_rest_s,
            )
        if info.backend == "remote":
            from bot.inference import remote

            cls = remote.RemoteChatModel if info.role == CHAT else remote.RemoteEmbeddingModel
            return functools.partial(
                cls, info, timeout=self.remote_timeout, n_ctx=info.extra.get("n_ctx")
            )
        if info.role == CHAT:
            return functools.partial(
                ChatModel, info, n_ctx=self.chat_context, n_threads=self.n_threads
            )
        return functools.partial(
            EmbeddingModel,
            info,
            n_threads=self.n_threads,
            batch_tokens=self.embed_batch_tokens,
        )

    async def _load(self, ident: tuple[str, str], info: ModelSpec) -> _Slot:
        threads = 1
        if info.backend == "remote" and pool.is_pool(info.path):
            # A pool runs several requests at once: one thread per answer it may serve.
            threads = self.pool_slots_per_server * len(pool.pool_urls(info.path))
        worker = ModelWorker(name=f"{info.role}:{info.name}", threads=threads)
        started = time.perf_counter()
        try:
            # Loaded on its own worker thread: the only thread that will ever use it.
            model = await worker.submit("__load__", self._factory(info)).result()
        except BaseException:
            await worker.aclose()
            raise
        log.info(
            "loaded %s model %s (%s) in %.2f s",
            info.role,
            info.name,
            info.quant or "?",
            time.perf_counter() - started,
        )
        slot = _Slot(ident=ident, info=getattr(model, "info", info), model=model, worker=worker)
        self._slots[ident] = slot
        self._evict(info.role, keep=ident)
        return slot

    def _evict(self, role: str, keep: tuple[str, str]) -> None:
        """Unload the least recently used models of ``role`` beyond the limit."""
        same = [s for s in self._slots.values() if s.info.role == role and s.ident != keep]
        same.sort(key=lambda s: s.last_used)
        excess = len(same) + 1 - self.max_loaded_per_role
        for slot in same[: max(excess, 0)]:
            # In the background: the caller that loaded the new model must not wait
            # for the old one's queue to drain.
            task = asyncio.ensure_future(self._retire(slot, drain=True))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _retire(self, slot: _Slot, *, drain: bool) -> None:
        if self._slots.get(slot.ident) is slot:
            del self._slots[slot.ident]
        for cache_key, info in list(self._resolved.items()):
            if (info.role, info.path) == slot.ident:
                del self._resolved[cache_key]
        model = slot.model
        slot.model = None
        # The model is closed on its own thread, after its last job.
        await slot.worker.aclose(drain=drain, finalizer=model.close, timeout=None)
        del model
        release_memory()
        log.info("unloaded %s model %s", slot.info.role, slot.info.name)


def remote_info(url: str, role: str) -> ModelSpec:
    """ModelSpec for an OpenAI-compatible server: ``http://host:port[/v1][#model-name]``.

    A pool (comma-separated servers of one model) is named after its first server.
    """
    base, _, name = url.split(",")[0].strip().partition("#")
    return ModelSpec(name=name or base, path=url, role=role, backend="remote")


def coerce_info(found: Any, ref: str, role: str) -> ModelSpec:
    """Turn whatever the resolver returned into a ModelSpec."""
    if isinstance(found, ModelSpec):
        return found if found.role == role else replace(found, role=role)
    if isinstance(found, str | os.PathLike):
        path = Path(found)
        looks_like_path = os.sep in ref or ref.endswith(".gguf")
        return ModelSpec.from_path(path, role=role, name="" if looks_like_path else ref)
    path_attr = getattr(found, "path", None)
    if path_attr is None:
        raise TypeError(f"resolver returned {type(found).__name__} for {ref!r}: no path")
    name = str(getattr(found, "name", "") or ref)
    base = ModelSpec.from_path(Path(path_attr), role=role, name=name)
    quant = getattr(found, "quant", None) or getattr(found, "quantization", None)
    size = getattr(found, "size_bytes", None)
    return replace(
        base,
        quant=str(quant).upper() if quant else base.quant,
        size_bytes=int(size) if size else base.size_bytes,
    )


def _languages(info: ModelSpec) -> tuple[str, ...]:
    """The languages a local GGUF model declares (``general.languages``); none for a
    remote one, or a file that cannot be read again (it was loaded: that is no error)."""
    if info.backend != "local":
        return ()
    try:
        return read_gguf_facts(Path(info.path)).languages
    except LibrarianError:
        return ()
