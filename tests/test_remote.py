"""The remote backend against a real OpenAI-compatible server: llama-cpp-python's own.

The test starts ``python -m llama_cpp.server`` on loopback with the packaged
SmolLM2 (chat) and, in a second server, the converted MiniLM (embeddings), and
talks to them through the same facade calls the bot uses for local models.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import start_llama_server

from bot.inference.llm import ChatModel, EmbeddingModel
from bot.inference.remote import RemoteChatModel, split_url
from bot.inference.service import Inference
from bot.inference.worker import RequestCancelled

pytestmark = pytest.mark.slow

TEXTS = ["Hello world, this is a test.", "Unicode: naïve café, 東京.", "one"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start llama_cpp.server processes on loopback; all are stopped after the module."""
    processes: list[subprocess.Popen[bytes]] = []
    logs = tmp_path_factory.mktemp("llama-server")

    def start(model: Path, *extra: str) -> str:
        port = free_port()
        processes.append(start_llama_server(model, port, logs / f"{port}.log", *extra))
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def chat_url(start_server, runtime_chat_path: Path) -> str:
    return start_server(runtime_chat_path, "--n_ctx", "1024")


@pytest.fixture(scope="module")
def embedding_url(start_server, runtime_embedding_path: Path) -> str:
    return start_server(runtime_embedding_path, "--embedding", "true", "--n_ctx", "512")


def no_registry(ref: str, role: str = "chat"):
    raise AssertionError(f"URLs never reach the registry ({ref!r})")


async def test_a_remote_chat_streams_through_the_facade(
    chat_url: str, runtime_chat_path: Path
) -> None:
    async with Inference(no_registry, chat_model=chat_url) as inference:
        messages = [{"role": "user", "content": "Name three fruits."}]
        stream = await inference.chat_stream(None, messages, key="room", max_tokens=16)
        pieces = [piece async for piece in stream]
        assert len(pieces) > 1 and "".join(pieces).strip()
        assert stream.stats is not None and 0 < stream.stats.completion_tokens <= 16
        assert stream.stats.prompt_tokens > 0

        # Token counts come from the server's tokenizer: the same as the local model's.
        local = ChatModel(runtime_chat_path, n_ctx=512)
        try:
            for text in TEXTS:
                assert await inference.count_tokens(None, text) == local.count_tokens(text)
        finally:
            local.close()

        [row] = inference.loaded()
        assert row["backend"] == "remote" and row["role"] == "chat"


async def test_cancelling_a_remote_answer_frees_the_queue(chat_url: str) -> None:
    async with Inference(no_registry, chat_model=chat_url) as inference:
        story = [{"role": "user", "content": "Tell a very long story about a river."}]
        long_answer = await inference.chat_stream(None, story, key="a", max_tokens=300)
        short_answer = await inference.chat_stream(None, story, key="b", max_tokens=3)
        assert short_answer.position() == 1
        received = 0
        with pytest.raises(RequestCancelled):
            async for _piece in long_answer:
                received += 1
                if received == 3:
                    long_answer.cancel()
        assert received <= 4
        started = time.monotonic()
        assert await asyncio.wait_for(short_answer.text(), 30)
        assert time.monotonic() - started < 20


async def test_remote_embeddings_match_the_local_model(
    embedding_url: str, runtime_embedding_path: Path
) -> None:
    texts = ["The cat sits on the mat.", "Quarterly revenue grew.", "東京 is a city."]
    async with Inference(no_registry, embedding_model=embedding_url) as inference:
        remote = await inference.embed(texts)
        facts = await inference.describe(role="embedding")
        remote_ids = await inference.tokenize(None, texts[0])
        remote_count = await inference.count_tokens(None, texts[0], role="embedding")
    local = EmbeddingModel(runtime_embedding_path)
    try:
        expected = local.embed(texts)
        assert remote_ids == local.tokenize(texts[0])  # [CLS]/[SEP] the server adds are removed
        assert remote_count == local.count_tokens(texts[0])
    finally:
        local.close()
    assert remote.shape == (3, 384) and facts["dims"] == 384
    assert np.allclose(np.linalg.norm(remote, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(remote * expected, axis=1)) > 0.999


def test_without_a_tokenizer_counts_are_a_documented_estimate(chat_url: str) -> None:
    model = RemoteChatModel(chat_url)
    try:
        assert not model.token_counts_estimated
        model._tokenizer = "estimate"  # what a server without /tokenize leads to
        assert model.token_counts_estimated
        assert model.count_tokens("x" * 41) == 11  # 4 characters per token, rounded up
    finally:
        model.close()


def test_urls_name_the_server_and_optionally_the_model() -> None:
    assert split_url("http://h:8080/v1#llama3.2") == ("http://h:8080", "llama3.2")
    assert split_url("http://h:11434/") == ("http://h:11434", "")
