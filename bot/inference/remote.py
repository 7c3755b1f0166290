"""A second backend: any OpenAI-compatible server (llama.cpp server, llama_cpp.server, Ollama).

:class:`RemoteChatModel` and :class:`RemoteEmbeddingModel` offer the same
methods as the local :class:`~bot.inference.llm.ChatModel` and
:class:`~bot.inference.llm.EmbeddingModel`, so the facade runs them on a
:class:`~bot.inference.worker.ModelWorker` exactly like local models (the fair
queue applies to remote servers too, and blocking HTTP never runs on the loop).

A model is named by its base URL, optionally with ``/v1`` and a ``#model``
fragment: ``http://127.0.0.1:8080``, ``http://ollama:11434/v1#llama3.2``.
Without a fragment the first model the server lists is used.

Token counts come from the server when it can tokenize:

* llama.cpp's own server: ``POST /tokenize`` (``add_special: false``) and
  ``/detokenize``, and ``/apply-template`` for exact chat-prompt counts;
* llama-cpp-python's ``llama_cpp.server``: ``POST /extras/tokenize`` and
  ``/extras/detokenize`` (it adds BOS/CLS: the constant overhead, measured by
  tokenizing an empty string, is subtracted).

Otherwise (Ollama, OpenAI-like services) counts are an **estimate**: one token
per 4 characters, rounded up, and ``token_counts_estimated`` is True;
``tokenize``/``detokenize`` then raise :class:`TokenizerUnavailable`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import httpx
import numpy as np

from bot.inference.llm import GenerationStats, Message, ModelSpec

log = logging.getLogger(__name__)

#: Characters per token assumed when the server cannot tokenize (a rough English average).
CHARS_PER_TOKEN_ESTIMATE = 4
#: Per-message template overhead assumed when the server cannot render the chat template.
MESSAGE_OVERHEAD_ESTIMATE = 4
#: Context size assumed when the server does not report one.
DEFAULT_REMOTE_CTX = 4096


class RemoteError(RuntimeError):
    """The server answered with an error or could not be reached.

    ``status`` is the HTTP status when the server answered (None: it could not be
    reached or the connection broke), so a pool can tell a dead or busy server (5xx,
    None) from a request no server would take (4xx).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenizerUnavailable(RuntimeError):
    """The server has no tokenize endpoint: only estimated counts are available."""


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port/v1#name`` -> (``http://host:port``, ``name``)."""
    base, _, name = url.partition("#")
    base = base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base, name


class _RemoteBase:
    """HTTP plumbing, model discovery and tokenization shared by both remote models."""

    #: Tokenizing means a network round trip: callers move it off the event loop.
    cheap_tokenize = False

    def __init__(
        self,
        info: ModelSpec | str,
        *,
        role: str,
        timeout: float = 120.0,
        api_key: str | None = None,
        n_ctx: int | None = None,
    ) -> None:
        if not isinstance(info, ModelSpec):
            info = ModelSpec(name=info, path=info, role=role, backend="remote")
        self.base_url, name = split_url(info.path)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Timeout(timeout, connect=10.0)
        # One client for the worker thread (generation, embeddings)...
        self._client = httpx.Client(base_url=self.base_url, timeout=limits, headers=headers)
        # ...and one, behind a lock, for token counts asked from other threads meanwhile.
        self._side = httpx.Client(base_url=self.base_url, timeout=limits, headers=headers)
        self._side_lock = threading.Lock()
        self.model_name = name or self._first_model()
        self._tokenizer: str | None = None  # "llama.cpp", "llama-cpp-python" or "estimate"
        self._overhead = 0
        self._can_template: bool | None = None
        self._n_ctx = n_ctx or self._server_ctx() or DEFAULT_REMOTE_CTX
        self.info = ModelSpec(
            name=self.model_name or info.name,
            path=info.path,
            role=role,
            quant=info.quant,
            size_bytes=info.size_bytes,
            backend="remote",
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], *, side: bool = True) -> httpx.Response:
        try:
            if side:
                with self._side_lock:
                    return self._side.post(path, json=body)
            return self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.base_url}{path}: {exc}") from exc

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise RemoteError(
                f"{response.request.url}: HTTP {response.status_code}: {response.text[:200]}",
                response.status_code,
            )
        return response.json()

    def _first_model(self) -> str:
        try:
            response = self._client.get("/v1/models")
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.base_url}: cannot reach the server ({exc})") from exc
        data = self._check(response).get("data") or []
        return str(data[0].get("id", "")) if data else ""

    def _server_ctx(self) -> int | None:
        try:
            response = self._client.get("/props")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        props = response.json()
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") or props.get("n_ctx")
        return int(n_ctx) if n_ctx else None

    @property
    def n_ctx(self) -> int:
        """The server's context size (or DEFAULT_REMOTE_CTX when it does not say)."""
        return self._n_ctx

    # -- tokens -----------------------------------------------------------------------------

    def _probe_tokenizer(self) -> str:
        if self._tokenizer is not None:
            return self._tokenizer
        response = self._post("/tokenize", {"content": "", "add_special": False})
        if response.status_code == 200 and "tokens" in response.json():
            self._tokenizer = "llama.cpp"
            return self._tokenizer
        response = self._post("/extras/tokenize", {"input": "", "model": self.model_name})
        if response.status_code == 200 and "tokens" in response.json():
            # This server always adds the model's BOS/CLS (+SEP): measure and subtract it.
            self._overhead = len(response.json()["tokens"])
            self._tokenizer = "llama-cpp-python"
            return self._tokenizer
        log.warning("%s cannot tokenize: token counts are estimates", self.base_url)
        self._tokenizer = "estimate"
        return self._tokenizer

    @property
    def token_counts_estimated(self) -> bool:
        """True when counts are the 4-characters-per-token estimate, not the server's tokenizer."""
        return self._probe_tokenizer() == "estimate"

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` from the server's tokenizer (no BOS/CLS)."""
        kind = self._probe_tokenizer()
        if kind == "llama.cpp":
            body = self._check(self._post("/tokenize", {"content": text, "add_special": False}))
            return [t if isinstance(t, int) else int(t["id"]) for t in body["tokens"]]
        if kind == "llama-cpp-python":
            body = self._check(
                self._post("/extras/tokenize", {"input": text, "model": self.model_name})
            )
            tokens = [int(t) for t in body["tokens"]]
            # Overhead tokens are a leading BOS/CLS and, for BERT, a trailing SEP.
            lead = min(self._overhead, 1)
            trail = self._overhead - lead
            return tokens[lead : len(tokens) - trail if trail else None]
        raise TokenizerUnavailable(f"{self.base_url} has no tokenize endpoint")

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` from the server."""
        kind = self._probe_tokenizer()
        if kind == "llama.cpp":
            body = self._check(self._post("/detokenize", {"tokens": list(tokens)}))
            return str(body.get("content", ""))
        if kind == "llama-cpp-python":
            body = self._check(
                self._post("/extras/detokenize", {"tokens": list(tokens), "model": self.model_name})
            )
            return str(body.get("text", ""))
        raise TokenizerUnavailable(f"{self.base_url} has no detokenize endpoint")

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``: exact when the server tokenizes, else the documented estimate."""
        if self._probe_tokenizer() == "estimate":
            return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)
        return len(self.tokenize(text))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
        self._side.close()


class RemoteChatModel(_RemoteBase):
    """Chat through ``/v1/chat/completions`` with ``stream: true`` (server-sent events)."""

    def __init__(
        self,
        info: ModelSpec | str,
        *,
        timeout: float = 120.0,
        api_key: str | None = None,
        n_ctx: int | None = None,
    ) -> None:
        """Connect (blocking: the server is asked for its models and context size)."""
        super().__init__(info, role="chat", timeout=timeout, api_key=api_key, n_ctx=n_ctx)
        self.chat_template: str | None = None
        self.last_stats: GenerationStats | None = None

    def format_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the templated chat: exact on llama.cpp's server, else an estimate."""
        if self._can_template is not False and self._probe_tokenizer() == "llama.cpp":
            response = self._post("/apply-template", {"messages": list(messages)})
            if response.status_code == 200 and "prompt" in response.json():
                self._can_template = True
                prompt = response.json()["prompt"]
                body = self._check(
                    self._post(
                        "/tokenize", {"content": prompt, "add_special": True, "parse_special": True}
                    )
                )
                return len(body["tokens"])
            self._can_template = False
        # Estimate: content tokens plus a fixed overhead per message and for the reply header.
        content = sum(self.count_tokens(str(m.get("content") or "")) for m in messages)
        return content + MESSAGE_OVERHEAD_ESTIMATE * len(messages) + 3

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.7,
        stop: Sequence[str] | None = None,
        *,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> Generator[str, None, GenerationStats]:
        """Stream the answer as text pieces; returns GenerationStats like the local model.

        Closing the generator closes the HTTP stream, which makes llama.cpp-based
        servers stop generating.
        """
        body: dict[str, Any] = {
            "model": self.model_name or None,
            "messages": list(messages),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stream_options": {"include_usage": True},
        }
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        started = time.perf_counter()
        first: float | None = None
        last = started
        pieces = 0
        finish: str | None = None
        usage: dict[str, Any] = {}
        ended = False
        try:
            with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(
                        f"{self.base_url}/v1/chat/completions: HTTP {response.status_code}: "
                        f"{response.text[:200]}",
                        response.status_code,
                    )
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # SSE comments, keep-alive pings, event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        ended = True
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            last = time.perf_counter()
                            if first is None:
                                first = last
                            pieces += 1
                            yield text
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.base_url}/v1/chat/completions: {exc}") from exc
        if not ended and finish is None:
            # Every OpenAI-style stream ends with [DONE] or a finish reason: without either
            # the server went away mid-answer (a connection closed without chunked framing).
            raise RemoteError(f"{self.base_url}/v1/chat/completions: the stream broke off")
        done = time.perf_counter()
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens") or pieces  # a piece is about a token
        stats = GenerationStats(
            prompt_tokens=int(prompt) if prompt else self.format_prompt_tokens(messages),
            completion_tokens=int(completion),
            first_token_ms=None if first is None else (first - started) * 1000.0,
            total_ms=(done - started) * 1000.0,
            tokens_per_s=(completion - 1) / (last - first)
            if first is not None and last > first
            else 0.0,
            finish_reason=finish,
        )
        self.last_stats = stats
        return stats

    def __repr__(self) -> str:
        return f"<RemoteChatModel {self.model_name} at {self.base_url}>"


class RemoteEmbeddingModel(_RemoteBase):
    """Embeddings through ``/v1/embeddings``, normalized like the local model's."""

    def __init__(
        self,
        info: ModelSpec | str,
        *,
        timeout: float = 120.0,
        api_key: str | None = None,
        n_ctx: int | None = None,
    ) -> None:
        """Connect and embed one probe text to learn the vector size."""
        super().__init__(info, role="embedding", timeout=timeout, api_key=api_key, n_ctx=n_ctx)
        self.dims: int = int(self._request(["dimension probe"]).shape[1])

    @property
    def max_text_tokens(self) -> int:
        """The most plain-text tokens one text can have (server context minus BOS/CLS/SEP)."""
        self._probe_tokenizer()
        return self._n_ctx - self._overhead

    def _request(self, texts: Sequence[str]) -> np.ndarray:
        body = {"model": self.model_name or None, "input": list(texts)}
        data = self._check(self._post("/v1/embeddings", body, side=False))["data"]
        data = sorted(data, key=lambda item: item.get("index", 0))
        return np.asarray([item["embedding"] for item in data], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        out = self._request(texts)
        if out.ndim == 3:  # a server without pooling returns token vectors: mean-pool them
            out = out.mean(axis=1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __repr__(self) -> str:
        return f"<RemoteEmbeddingModel {self.model_name} at {self.base_url}>"
