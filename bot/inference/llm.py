"""Local GGUF models through llama-cpp-python: a chat model and an embedding model.

These classes are synchronous and *not* thread-safe for inference: each instance
is loaded, used and closed on its own :class:`~bot.inference.worker.ModelWorker`
thread.  Tokenization is the exception: llama.cpp tokenizes with the model's
vocabulary only (``llama_tokenize(vocab, ...)`` is a ``const`` walk that never
touches the ``llama_context`` that decoding mutates), so ``count_tokens``,
``tokenize`` and ``detokenize`` may be called from another thread while a
generation runs.  A small lock keeps them from racing :meth:`close`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import llama_chat_format

from bot.inference import quiet  # noqa: F401  (no stdout/stderr redirection by llama_cpp)

log = logging.getLogger(__name__)

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str}


class ModelClosed(RuntimeError):
    """The model was unloaded; load it again to use it."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, independent of whether it is loaded.

    ``path`` is the GGUF file for local models and the server's base URL for
    remote ones (``backend == "remote"``).
    """

    name: str
    path: str
    role: str = "chat"  # "chat" or "embedding"
    quant: str = ""
    size_bytes: int = 0
    backend: str = "local"  # "local" or "remote"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], role: str = "chat", name: str = ""
    ) -> ModelSpec:
        """Describe a local GGUF file; the quantization is guessed from its name."""
        p = Path(path)
        size = p.stat().st_size if p.exists() else 0
        return cls(
            name=name or p.stem,
            path=str(p),
            role=role,
            quant=_quant_from_name(p.name),
            size_bytes=size,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for status output and JSON."""
        return {
            "name": self.name,
            "path": self.path,
            "role": self.role,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "backend": self.backend,
        }


@dataclass(frozen=True)
class GenerationStats:
    """Figures of one generation, measured on the thread that ran it.

    ``completion_tokens`` counts the tokens the model produced for the answer
    (the end-of-generation token is not counted, as in OpenAI's ``usage``; when
    the caller passed ``stop`` strings and the model ended on its own, it may
    count one token too many, since llama-cpp-python reports both as "stop").
    ``tokens_per_s`` is the decode rate between the first and the last piece.
    """

    prompt_tokens: int
    completion_tokens: int
    first_token_ms: float | None
    total_ms: float
    tokens_per_s: float
    finish_reason: str | None


_QUANT_RE = re.compile(
    r"(?:^|[.\-_])(I?Q\d_[A-Z0-9_]+|Q\d_\d|Q\d_K(?:_[SML])?|Q\d|BF16|F16|F32)(?:[.\-_]|$)",
    re.IGNORECASE,
)


def _quant_from_name(filename: str) -> str:
    match = _QUANT_RE.search(Path(filename).stem + ".")
    return match.group(1).upper() if match else ""


def _ftype_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for attr in dir(llama_cpp):
        if attr.startswith("LLAMA_FTYPE_") and attr != "LLAMA_FTYPE_GUESSED":
            value = getattr(llama_cpp, attr)
            if isinstance(value, int):
                name = attr.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
                names.setdefault(value, name.removeprefix("ALL_"))
    return names


_FTYPES = _ftype_names()


def resolve_threads(n_threads: int) -> int:
    """Settings say 0 for "every core"."""
    return n_threads if n_threads > 0 else max(os.cpu_count() or 1, 1)


def _quiet_load(path: str, **kwargs: Any) -> llama_cpp.Llama:
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return llama_cpp.Llama(model_path=path, verbose=False, **kwargs)


def _info_with_metadata(info: ModelSpec, llama: llama_cpp.Llama) -> ModelSpec:
    """Fill the quantization from GGUF metadata when the name did not tell."""
    if info.quant:
        return info
    try:
        ftype = int(llama.metadata.get("general.file_type", "-1"))
    except ValueError:
        ftype = -1
    quant = _FTYPES.get(ftype, "")
    return replace(info, quant=quant) if quant else info


class _TokenizerMixin:
    """Tokenization with the model's own vocabulary, safe from any thread."""

    _llama: llama_cpp.Llama | None
    _lock: threading.Lock
    # WordPiece (BERT) pieces carry a leading "phantom" space: drop it at the start.
    _strip_phantom_space = False

    def _live(self) -> llama_cpp.Llama:
        llama = self._llama
        if llama is None:
            raise ModelClosed("model is unloaded")
        return llama

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` as plain text: no BOS/CLS, special-token syntax not parsed."""
        with self._lock:
            return self._live().tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` (invalid UTF-8 at a cut is replaced, never raised).

        Lossy for some vocabularies: an uncased WordPiece model (MiniLM) gives
        back lower-case text with its own spacing around punctuation.
        """
        with self._lock:
            data = self._live().detokenize(list(tokens))
        if self._strip_phantom_space and data.startswith(b" "):
            data = data[1:]
        return data.decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, by the model's own tokenizer."""
        return len(self.tokenize(text))


class ChatModel(_TokenizerMixin):
    """A chat model: the GGUF's own chat template, streamed generation."""

    #: Tokenization runs in-process and takes microseconds: callers need no thread hop.
    cheap_tokenize = True

    def __init__(
        self,
        info: ModelSpec | str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int = 0,
        seed: int | None = None,
    ) -> None:
        """Load the model (blocking: call it on the thread that will use it).

        ``n_ctx`` is capped at the model's training context; ``n_threads`` 0
        means every core.
        """
        if not isinstance(info, ModelSpec):
            info = ModelSpec.from_path(info, role="chat")
        threads = resolve_threads(n_threads)
        kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_threads": threads,
            "n_threads_batch": threads,
        }
        if seed is not None:
            kwargs["seed"] = seed
        self._lock = threading.Lock()
        llama = _quiet_load(info.path, **kwargs)
        train_ctx = llama._model.n_ctx_train()
        if 0 < train_ctx < n_ctx:
            # Beyond its training context a model degrades: load again at its own size.
            llama.close()
            kwargs["n_ctx"] = train_ctx
            llama = _quiet_load(info.path, **kwargs)
        self._llama: llama_cpp.Llama | None = llama
        self.info = _info_with_metadata(info, llama)
        self.n_threads = threads
        self.chat_template: str | None = llama.metadata.get("tokenizer.chat_template")
        self._formatter = self._make_formatter(llama)
        # create_chat_completion uses chat_handler first: make it the very formatter
        # that format_prompt_tokens uses, so counts and generation always agree.
        llama.chat_handler = llama_chat_format.chat_formatter_to_chat_completion_handler(
            self._formatter
        )
        self.last_stats: GenerationStats | None = None

    def _make_formatter(self, llama: llama_cpp.Llama) -> llama_chat_format.ChatFormatter:
        model = llama._model
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        if self.chat_template:
            # The same construction llama-cpp-python uses for a GGUF template
            # ("chat_template.default"), applied even when it would have matched one of
            # its hand-written formats: the model's own template is the reference.
            return llama_chat_format.Jinja2ChatFormatter(
                template=self.chat_template,
                eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )
        log.warning("%s has no chat template in its metadata: using ChatML", self.info.name)
        return llama_chat_format.format_chatml

    @property
    def n_ctx(self) -> int:
        """The context window the model was loaded with (prompt + answer)."""
        return self._live().n_ctx()

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The token ids create_chat_completion feeds the model for ``messages``."""
        result = self._formatter(messages=list(messages))
        with self._lock:
            return self._live().tokenize(
                result.prompt.encode("utf-8"),
                add_bos=not result.added_special,
                special=True,
            )

    def format_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Token count of ``messages`` rendered by the chat template, generation prompt included."""
        return len(self.prompt_tokens(messages))

    def reset(self) -> None:
        """Forget the cached prompt prefix (the next prompt is evaluated in full)."""
        self._live().reset()

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.7,
        stop: Sequence[str] | None = None,
        *,
        top_p: float = 0.95,
        repeat_penalty: float = 1.1,
        seed: int | None = None,
    ) -> Generator[str, None, GenerationStats]:
        """Stream the answer to ``messages`` as text pieces (about one per token).

        The generator's return value (``StopIteration.value``) is a
        :class:`GenerationStats`, also kept as ``last_stats``.  Closing the
        generator stops the generation before the next token.
        """
        llama = self._live()
        messages = list(messages)
        n_prompt = self.format_prompt_tokens(messages)
        started = time.perf_counter()
        first: float | None = None
        last = started
        finish: str | None = None
        chunks = llama.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            repeat_penalty=repeat_penalty,
            stop=list(stop or []),
            seed=seed,
        )
        try:
            for chunk in chunks:  # type: ignore[union-attr]
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")  # type: ignore[union-attr]
                if text:
                    last = time.perf_counter()
                    if first is None:
                        first = last
                    yield text
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        finally:
            chunks.close()  # type: ignore[union-attr]  # stops llama's generator at once
        done = time.perf_counter()
        # Every answer token but the last one sampled is evaluated into the KV cache:
        # n_tokens - prompt is the evaluated part; a "length" or stop-string ending also
        # sampled one more (kept) token, an end-of-generation token is not counted.
        evaluated = max(llama.n_tokens - n_prompt, 0)
        completion = evaluated + (1 if finish == "length" or (finish == "stop" and stop) else 0)
        rate = (completion - 1) / (last - first) if first is not None and last > first else 0.0
        stats = GenerationStats(
            prompt_tokens=n_prompt,
            completion_tokens=completion,
            first_token_ms=None if first is None else (first - started) * 1000.0,
            total_ms=(done - started) * 1000.0,
            tokens_per_s=rate,
            finish_reason=finish,
        )
        self.last_stats = stats
        return stats

    def close(self) -> None:
        """Free the model and its context (call it on the model's own thread)."""
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None:
            llama.chat_handler = None
            llama.close()

    def __repr__(self) -> str:
        return f"<ChatModel {self.info.name} {self.info.quant}>"


class EmbeddingModel(_TokenizerMixin):
    """A sentence-embedding model: normalized float32 vectors, one row per text."""

    cheap_tokenize = True

    def __init__(
        self,
        info: ModelSpec | str | os.PathLike[str],
        *,
        n_threads: int = 0,
        batch_tokens: int = 256,
    ) -> None:
        """Load the model at its training context, with ``n_batch == n_ubatch``.

        ``batch_tokens`` > 0 packs consecutive texts into one llama.cpp call up to
        that many tokens; 0 embeds one text per call.  Measured on 2 cores with
        MiniLM: packing short sentences up to 256 tokens was 1.2-1.5x faster than
        one per call, while packing two ~200-token chunks into one call (512) was
        about 25% slower than one chunk per call; 256 gets both right.
        """
        if not isinstance(info, ModelSpec):
            info = ModelSpec.from_path(info, role="embedding")
        threads = resolve_threads(n_threads)
        self._lock = threading.Lock()
        # n_ctx=0 takes the training context; a large n_batch/n_ubatch is then capped to
        # it, so one call can hold a whole context-sized text and batch == ubatch (an
        # embedding must fit in one physical batch: non-causal attention).
        llama = _quiet_load(
            info.path,
            embedding=True,
            n_ctx=0,
            n_batch=1 << 16,
            n_ubatch=1 << 16,
            n_threads=threads,
            n_threads_batch=threads,
            # Same vectors (cosine 1.000000 on 120 SQuAD paragraphs), fused attention:
            # a ~170-token paragraph 62 -> 53 ms, a question 9.5 -> 9.2 ms p50 on 2 cores.
            flash_attn=True,
        )
        self._llama: llama_cpp.Llama | None = llama
        self.info = _info_with_metadata(info, llama)
        self.n_threads = threads
        self.dims: int = llama.n_embd()
        self._strip_phantom_space = llama._model.vocab_type() == llama_cpp.LLAMA_VOCAB_TYPE_WPM
        self._n_ctx: int = llama.n_ctx()
        self.batch_tokens = min(batch_tokens, self._n_ctx) if batch_tokens > 0 else 0
        # Tokens the model adds around a text ([CLS] ... [SEP] for BERT).
        self.special_tokens: int = len(llama.tokenize(b"", add_bos=True, special=False))

    @property
    def n_ctx(self) -> int:
        """The model's training context: the most tokens one text can have (specials included)."""
        return self._n_ctx

    @property
    def max_text_tokens(self) -> int:
        """The most plain-text tokens one embedded text can have."""
        return self._n_ctx - self.special_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(len(texts), dims)`` float32 array of unit vectors.

        Texts longer than :attr:`max_text_tokens` are truncated by llama.cpp:
        chunk by tokens first.
        """
        llama = self._live()
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        groups = self._groups(texts) if self.batch_tokens else [[i] for i in range(len(texts))]
        for group in groups:
            if len(group) == 1:
                # A str input returns one vector (or one token matrix).
                vectors = [llama.embed(texts[group[0]], normalize=False, truncate=True)]
            else:
                vectors = llama.embed([texts[i] for i in group], normalize=False, truncate=True)
            for i, vector in zip(group, vectors, strict=True):
                row = np.asarray(vector, dtype=np.float32)
                if row.ndim == 2:  # a model without pooling returns one vector per token
                    row = row.mean(axis=0)
                out[i] = row
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _groups(self, texts: Sequence[str]) -> list[list[int]]:
        groups: list[list[int]] = []
        current: list[int] = []
        used = 0
        for i, text in enumerate(texts):
            n = min(self.count_tokens(text) + self.special_tokens, self._n_ctx)
            if current and used + n > self.batch_tokens:
                groups.append(current)
                current, used = [], 0
            current.append(i)
            used += n
        if current:
            groups.append(current)
        return groups

    def close(self) -> None:
        """Free the model and its context (call it on the model's own thread)."""
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    def __repr__(self) -> str:
        return f"<EmbeddingModel {self.info.name} {self.info.quant} dims={self.dims}>"
