"""Local models and the inference facade, with the real SmolLM2 and MiniLM files.

Scenarios: counts agree with the model's own tokenizer and with what generation
evaluates; embeddings are unit vectors that rank meaning; the facade streams
answers, embeds through its worker, switches models at run time and gives the
memory back when it unloads them.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from bot.inference.llm import ChatModel, EmbeddingModel, ModelSpec
from bot.inference.service import Inference, release_memory
from bot.inference.worker import ModelWorker

pytestmark = pytest.mark.slow

TEXTS = [
    "Hello world, this is a test.",
    "Unicode too: naïve café, 東京, emoji 🎉 and tabs\tand\nnewlines.",
    "<|im_start|> looks special but is plain user text here",
    "",
]


@pytest.fixture(scope="module")
def chat(runtime_chat_path: Path) -> Iterator[ChatModel]:
    """SmolLM2 used from the test thread only (no worker: these tests are sequential)."""
    model = ChatModel(runtime_chat_path, n_ctx=1024)
    yield model
    model.close()


@pytest.fixture(scope="module")
def embedder(runtime_embedding_path: Path) -> Iterator[EmbeddingModel]:
    model = EmbeddingModel(runtime_embedding_path)
    yield model
    model.close()


def run(generator) -> tuple[str, object]:
    """Drain a generate() generator: (text, its return value)."""
    pieces = []
    while True:
        try:
            pieces.append(next(generator))
        except StopIteration as stop:
            return "".join(pieces), stop.value


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * 4096 / 2**20


# -- chat model -------------------------------------------------------------------------------


def test_token_counts_match_the_models_own_tokenizer(chat: ChatModel, runtime_chat_path) -> None:
    reference = llama_cpp.Llama(str(runtime_chat_path), vocab_only=True, verbose=False)
    for text in TEXTS:
        expected = reference.tokenize(text.encode(), add_bos=False, special=False)
        assert chat.tokenize(text) == expected
        assert chat.count_tokens(text) == len(expected)
        assert chat.detokenize(expected) == text
    reference.close()


def test_the_chat_template_comes_from_the_gguf(chat: ChatModel) -> None:
    assert chat.chat_template and "<|im_start|>" in chat.chat_template
    assert chat.info.quant == "Q4_1"
    assert chat.info.size_bytes > 50_000_000
    assert chat.n_ctx == 1024


def test_prompt_count_is_what_generation_evaluates(chat: ChatModel) -> None:
    messages = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What colour is the sky on a clear day?"},
    ]
    counted = chat.format_prompt_tokens(messages)
    # The template wraps each message: more than the bare contents.
    assert counted > sum(chat.count_tokens(m["content"]) for m in messages)

    chat.reset()
    text, stats = run(chat.generate(messages, max_tokens=6, temperature=0.0))
    assert text
    assert stats.prompt_tokens == counted
    assert stats.finish_reason == "length"
    assert stats.completion_tokens == 6
    # llama.cpp evaluated exactly the counted prompt plus all answer tokens but the last.
    assert chat._llama.n_tokens == counted + 5
    assert stats.first_token_ms is not None and stats.tokens_per_s > 0


def test_tokenizing_while_generating_on_another_thread_is_safe(chat: ChatModel) -> None:
    worker = ModelWorker("concurrent")
    try:
        request = worker.submit(
            "x", lambda: chat.generate([{"role": "user", "content": "Count to fifty."}], 80)
        )
        expected = [chat.tokenize(t) for t in TEXTS]
        rounds = 0
        while not request.done():
            assert [chat.tokenize(t) for t in TEXTS] == expected
            rounds += 1
        assert request.result_sync(30).completion_tokens > 0
        assert rounds > 10
    finally:
        worker.close()


# -- embedding model --------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_that_rank_meaning(embedder: EmbeddingModel) -> None:
    vectors = embedder.embed(
        [
            "The cat sits on the mat.",
            "A kitten is resting on a rug.",
            "Quarterly revenue grew by eight percent.",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    assert embedder.dims == 384
    assert embedder.n_ctx == 512
    assert embedder.max_text_tokens == 510  # [CLS] ... [SEP]


def test_embeddings_match_the_original_sentence_transformers_model(
    embedder: EmbeddingModel, minilm_reference: dict
) -> None:
    items = minilm_reference["items"]
    vectors = embedder.embed([item["text"] for item in items])
    reference = np.asarray([item["vector"] for item in items], dtype=np.float32)
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.999
    # The reference counts include [CLS] and [SEP]; count_tokens is the plain text.
    for item in items:
        assert embedder.count_tokens(item["text"]) + embedder.special_tokens == item["tokens"]


def test_packing_texts_into_one_call_gives_the_same_vectors(embedder: EmbeddingModel) -> None:
    texts = [f"Sentence number {i} is about topic {i % 3}." for i in range(10)]
    assert embedder.batch_tokens == 256  # the default packs short texts
    packed = embedder.embed(texts)
    embedder.batch_tokens = 0
    try:
        one_by_one = embedder.embed(texts)
    finally:
        embedder.batch_tokens = 256
    assert np.allclose(one_by_one, packed, atol=1e-3)


def test_chunking_helpers_round_trip(embedder: EmbeddingModel) -> None:
    text = "Retention deletes expired history every night. " * 30
    ids = embedder.tokenize(text)
    assert len(ids) == embedder.count_tokens(text) > 200
    chunk = embedder.detokenize(ids[:100])
    assert embedder.count_tokens(chunk) == 100
    assert text.lower().startswith(chunk.strip().lower()[:40])


# -- the facade -------------------------------------------------------------------------------


def resolver_for(**models: Path):
    """A stand-in for the registry: short names to files."""

    def resolve(ref: str, role: str = "chat") -> ModelSpec:
        return ModelSpec.from_path(models[ref], role=role, name=ref)

    return resolve


async def test_the_facade_streams_answers_and_embeds_off_the_loop(
    runtime_chat_path: Path, runtime_embedding_path: Path
) -> None:
    inference = Inference(
        resolver_for(smol=runtime_chat_path, minilm=runtime_embedding_path),
        chat_model="smol",
        embedding_model="minilm",
        chat_context=1024,
    )
    async with inference:
        messages = [{"role": "user", "content": "Name three colours."}]
        stream = await inference.chat_stream(None, messages, key="room-1", max_tokens=12)
        text = await stream.text()
        assert text and stream.stats is not None
        assert stream.stats.completion_tokens > 0
        assert stream.stats.prompt_tokens == await inference.count_prompt_tokens(None, messages)
        assert stream.stats.first_token_ms >= stream.stats.queue_ms

        vectors = await inference.embed(["first text", "second text"] * 20, key="ws-1")
        assert vectors.shape == (40, 384)
        assert np.allclose(vectors[0], vectors[2], atol=1e-5)

        assert await inference.count_tokens("smol", "Hello world") == 2
        ids = await inference.tokenize(None, "Hello world")
        assert await inference.detokenize(None, ids) == "hello world"
        facts = await inference.describe(role="embedding")
        assert (facts["dims"], facts["n_ctx"]) == (384, 512)

        rows = {row["role"]: row for row in inference.loaded()}
        assert rows["chat"]["name"] == "smol" and rows["chat"]["quant"] == "Q4_1"
        assert rows["embedding"]["size_bytes"] > 0
        assert rows["chat"]["queue_depth"] == 0 and rows["chat"]["last_used"] > 0


async def test_a_query_embedding_does_not_wait_for_a_whole_document(
    runtime_embedding_path: Path,
) -> None:
    inference = Inference(
        resolver_for(minilm=runtime_embedding_path), embedding_model="minilm", embed_job_texts=4
    )
    async with inference:
        await inference.load(None, role="embedding")
        document = asyncio.create_task(
            inference.embed([f"paragraph {i} " * 25 for i in range(24)], key="ingest")
        )
        await asyncio.sleep(0.05)
        query = asyncio.create_task(inference.embed(["where is the policy?"], key="query"))
        await query
        assert not document.done()  # the query overtook most of the document's jobs
        assert (await document).shape == (24, 384)


async def test_switching_models_at_run_time_and_unloading_returns_memory(
    runtime_chat_path: Path, tmp_path: Path
) -> None:
    # A second chat model: a copy under another name is another file to load.
    other = tmp_path / "other-chat.Q4_1.gguf"
    shutil.copyfile(runtime_chat_path, other)
    inference = Inference(resolver_for(smol=runtime_chat_path, other=other), chat_context=4096)
    messages = [{"role": "user", "content": "Say hi."}]
    release_memory()
    baseline = rss_mb()

    async with inference:
        await (await inference.chat_stream("smol", messages, "c", max_tokens=8)).text()
        one_model = rss_mb() - baseline
        assert one_model > 60  # weights paged in plus the KV cache

        # Another model is asked for: it loads without a restart, the first one goes.
        stream = await inference.chat_stream("other", messages, "c", max_tokens=8)
        assert stream.model.name == "other"
        await stream.text()
        await asyncio.gather(*inference._background)
        assert [row["name"] for row in inference.loaded()] == ["other"]
        after_switch = rss_mb() - baseline
        assert after_switch < one_model * 1.5, (one_model, after_switch)

        assert await inference.unload_idle(0) == ["other"]
        assert inference.loaded() == []
        gc.collect()
        unloaded = rss_mb() - baseline
        assert unloaded < one_model * 0.35, (one_model, unloaded)


async def test_waiting_answers_report_their_place_and_can_be_cancelled(
    runtime_chat_path: Path,
) -> None:
    inference = Inference(resolver_for(smol=runtime_chat_path), chat_context=1024)
    async with inference:
        long_question = [{"role": "user", "content": "Write a long poem about the sea."}]
        first = await inference.chat_stream("smol", long_question, "busy", max_tokens=200)
        second = await inference.chat_stream("smol", long_question, "busy", max_tokens=200)
        third = await inference.chat_stream("smol", long_question, "quiet", max_tokens=4)
        await asyncio.sleep(0.05)
        assert (first.position(), second.position(), third.position()) == (0, 2, 1)
        assert second.cancel()
        assert third.position() == 1
        first.cancel()
        assert await third.text()
        assert third.stats is not None and third.state == "done"
        assert second.state == "cancelled" and first.state == "cancelled"


def test_chat_model_can_be_closed_while_another_thread_counts(chat: ChatModel) -> None:
    """close() and tokenization share a lock: a count never reads a freed vocabulary."""
    model = ChatModel(chat.info, n_ctx=512)
    errors: list[BaseException] = []

    def count() -> None:
        for _ in range(2000):
            try:
                model.count_tokens("some words to count")
            except RuntimeError:
                return  # ModelClosed: expected once closed
            except BaseException as exc:  # pragma: no cover - would be a bug
                errors.append(exc)
                return

    thread = threading.Thread(target=count)
    thread.start()
    model.close()
    thread.join()
    assert not errors


async def test_the_facade_resolves_default_models_through_the_registry(
    runtime_embedding_path: Path,
) -> None:
    from bot.config import Settings
    from bot.inference.registry import ModelRegistry

    # The home where the session fixture converted MiniLM: no second conversion.
    settings = Settings(home=runtime_embedding_path.parent.parent, chat_context=1024)
    inference = Inference.from_settings(settings, ModelRegistry(settings).resolve)
    async with inference:
        stream = await inference.chat_stream(
            None, [{"role": "user", "content": "Hi!"}], "dm", max_tokens=4
        )
        assert await stream.text()
        assert (await inference.embed(["a question"], key="query")).shape == (1, 384)
        names = {row["role"]: (row["name"], row["quant"]) for row in inference.loaded()}
        assert names == {"chat": ("smollm2", "Q4_1"), "embedding": ("all-minilm-l6-v2", "F16")}
