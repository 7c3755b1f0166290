"""The safetensors -> GGUF conversion of all-MiniLM-L6-v2, checked against the original model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.errors import LibrarianError
from bot.inference.convert import (
    CONVERTED_FILE_NAME,
    embedding_source_dir,
    ensure_embedding_model,
    phantom_space,
)
from bot.inference.gguf import read_gguf_header

pytestmark = pytest.mark.slow

#: Every fixture sentence must be this close to sentence-transformers' own vector.
MIN_COSINE = 0.999


def _cosines(ours: list[list[float]], reference: list[list[float]]) -> np.ndarray:
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_matches_sentence_transformers(minilm_f16: Path, minilm_reference: dict, embed_with_gguf):
    items = minilm_reference["items"]
    assert len(items) >= 20
    vectors = embed_with_gguf(minilm_f16, [item["text"] for item in items])
    assert all(len(v) == minilm_reference["dimensions"] == 384 for v in vectors)
    cosines = _cosines(vectors, [item["vector"] for item in items])
    worst = int(np.argmin(cosines))
    assert cosines.min() >= MIN_COSINE, f"cosine {cosines[worst]:.5f} for {items[worst]['text']!r}"


def test_tokenization_matches_hf(minilm_f16: Path, minilm_reference: dict) -> None:
    """Same token counts as the HF tokenizer (with [CLS]/[SEP]) for every fixture sentence."""
    from llama_cpp import Llama

    vocab = Llama(str(minilm_f16), vocab_only=True, verbose=False)
    try:
        for item in minilm_reference["items"]:
            ids = vocab.tokenize(item["text"].encode("utf-8"), add_bos=True)
            assert len(ids) == item["tokens"], item["text"]
            assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    finally:
        vocab.close()


def test_header_metadata(minilm_f16: Path) -> None:
    assert minilm_f16.name == CONVERTED_FILE_NAME
    header = read_gguf_header(minilm_f16)
    meta = header.metadata
    assert meta["general.architecture"] == "bert"
    assert meta["general.file_type"] == 1  # MOSTLY_F16
    assert meta["bert.context_length"] == 512
    assert meta["bert.embedding_length"] == 384
    assert meta["bert.block_count"] == 6
    assert meta["bert.attention.head_count"] == 12
    assert meta["bert.feed_forward_length"] == 1536
    assert meta["bert.attention.layer_norm_epsilon"] == pytest.approx(1e-12)
    assert meta["bert.attention.causal"] is False
    assert meta["bert.pooling_type"] == 1  # MEAN
    assert meta["tokenizer.ggml.model"] == "bert"
    assert header.array_lengths["tokenizer.ggml.tokens"] == 30522
    assert header.array_lengths["tokenizer.ggml.token_type"] == 30522
    assert meta["tokenizer.ggml.token_type_count"] == 2
    special = {
        key: meta[f"tokenizer.ggml.{key}_token_id"]
        for key in ("bos", "cls", "seperator", "unknown", "padding", "mask")
    }
    assert special == {
        "bos": 101,
        "cls": 101,
        "seperator": 102,
        "unknown": 100,
        "padding": 0,
        "mask": 103,
    }

    types = {t.name: t.type_name for t in header.tensors}
    assert len(types) == 101  # 5 embedding tensors + 6 layers x 16
    assert types["token_embd.weight"] == "F16"
    assert types["blk.0.attn_q.weight"] == "F16"
    assert types["blk.5.ffn_down.weight"] == "F16"
    # Kept in F32 as llama.cpp's converter does: 1-D tensors, norms, positions, token types.
    for name in (
        "position_embd.weight",
        "token_types.weight",
        "token_embd_norm.weight",
        "blk.0.attn_q.bias",
        "blk.3.layer_output_norm.weight",
    ):
        assert types[name] == "F32", name
    assert 40e6 < minilm_f16.stat().st_size < 50e6


def test_vocabulary_spelling() -> None:
    assert phantom_space("[CLS]", is_control=True) == "[CLS]"
    assert phantom_space("##ing", is_control=False) == "ing"
    assert phantom_space("hello", is_control=False) == "\u2581hello"
    assert phantom_space("[unused0]", is_control=False) == "\u2581[unused0]"  # as llama.cpp does

    from bot.inference.convert import _read_vocab

    tokens, types, special = _read_vocab(embedding_source_dir(), 30522)
    assert tokens[101] == "[CLS]" and types[101] == 3  # CONTROL
    assert tokens[100] == "[UNK]" and types[100] == 3
    assert tokens[1996] == "\u2581the" and types[1996] == 1  # NORMAL
    assert all(not t.startswith("##") for t in tokens)
    assert special == {
        "cls_token": 101,
        "sep_token": 102,
        "unk_token": 100,
        "pad_token": 0,
        "mask_token": 103,
    }


def test_second_call_reuses_the_file(models_settings, minilm_f16: Path) -> None:
    before = minilm_f16.stat().st_mtime_ns
    result = ensure_embedding_model(models_settings.models_dir)
    assert result.path == minilm_f16 and not result.created
    assert minilm_f16.stat().st_mtime_ns == before


def test_concurrent_conversions_produce_one_good_file(tmp_path: Path) -> None:
    """Two processes converting at once: one converts, the other waits and reuses it."""
    models = tmp_path / "models"
    code = (
        "import sys; from pathlib import Path;"
        "from bot.inference.convert import ensure_embedding_model as e;"
        "print(e(Path(sys.argv[1])).created)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(models)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(outputs) == ["False", "True"]
    visible = sorted(p.name for p in models.iterdir() if not p.name.startswith("."))
    assert visible == [CONVERTED_FILE_NAME]
    assert not [p for p in models.iterdir() if p.name.endswith(".tmp")]  # no temp files left
    assert read_gguf_header(models / CONVERTED_FILE_NAME).metadata["general.file_type"] == 1


def test_non_bert_folder_is_refused(tmp_path: Path) -> None:
    from bot.inference.convert import convert_bert_model

    (tmp_path / "config.json").write_text('{"model_type": "llama", "architectures": ["X"]}')
    with pytest.raises(LibrarianError, match="not a BERT model"):
        convert_bert_model(tmp_path, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_cli_convert_reports_existing(models_settings, minilm_f16: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli.models import app

    result = CliRunner().invoke(app, ["convert"])
    assert result.exit_code == 0, result.output
    assert "already converted" in result.output and str(minilm_f16) in result.output
