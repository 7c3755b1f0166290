"""Quantization with llama.cpp: quality of q8_0, and honest reporting of k-quant fallbacks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from bot.errors import LibrarianError
from bot.inference.levels import LEVELS, normalize_level
from bot.inference.quantize import quantize
from bot.inference.registry import ModelRegistry

pytestmark = pytest.mark.slow


def _cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def test_q8_0_stays_within_cosine_0999_of_f16(
    models_settings, minilm_f16: Path, minilm_reference: dict, embed_with_gguf
) -> None:
    result = quantize(minilm_f16, "q8_0", models_dir=models_settings.models_dir)
    assert result.path == models_settings.models_dir / "all-minilm-l6-v2-q8_0.gguf"
    assert result.quant == "Q8_0"
    assert result.fallbacks == ()  # 384-wide rows are a multiple of q8_0's 32-value blocks
    # Every weight matrix is Q8_0 except the six attention value projections, kept
    # at F16 on purpose (see bot.inference.quantize), and the report says so.
    assert result.tensor_types == {"Q8_0": result.quantized_tensors - 6, "F16": 6}
    assert result.kept == {"F16": 6}
    assert any(line.startswith("kept on purpose: 6 at F16") for line in result.describe())
    assert result.size_bytes < 0.6 * result.source_size_bytes

    # The fixture's 20 sentences, and texts it does not hold: degenerate strings of
    # punctuation and numbers, where 8-bit rounding hurts most.
    rng = random.Random(20261126)
    noise = [
        "".join(rng.choice("!?.,-*#@$%^&()[]{};:'\"/|~ ") for _ in range(rng.randint(3, 30)))
        for _ in range(30)
    ] + [" ".join(str(rng.randint(0, 10**6)) for _ in range(rng.randint(1, 10))) for _ in range(10)]
    texts = [item["text"] for item in minilm_reference["items"]] + noise
    f16 = embed_with_gguf(minilm_f16, texts)
    q8 = embed_with_gguf(result.path, texts)
    cosines = _cosines(q8, f16)
    assert cosines.min() >= 0.999, sorted(zip(cosines.round(5), texts, strict=True))[:3]

    # The registry finds it by name, knows where it came from, and as the q8_0 level.
    registry = ModelRegistry(models_settings)
    info = registry.resolve("all-minilm-l6-v2-q8_0", role="embedding")
    assert (info.source, info.quant) == ("quantized", "Q8_0")
    base = registry.resolve("all-minilm-l6-v2", role="embedding")
    assert registry.resolve_level(base, "q8_0") == info
    assert registry.resolve_level(info, "f16") == base  # and back


def test_k_quant_on_minilm_reports_fallbacks(minilm_f16: Path, tmp_path: Path) -> None:
    out = tmp_path / "mini-q4_K_M.gguf"
    result = quantize(minilm_f16, "q4_K_M", out)
    assert result.path == out and out.is_file()
    assert result.quant == "Q4_K_M"
    # 384-wide rows do not fit Q4_K's 256-value blocks; only the 1536-wide
    # ffn_down rows (6 layers) get the k-quants.
    assert result.fallbacks, "MiniLM's 384-wide tensors must fall back from Q4_K"
    assert all(f.shape[0] % 256 != 0 for f in result.fallbacks)
    assert all(f.intended == "Q4_K" for f in result.fallbacks)
    assert set(result.fallback_summary) <= {"Q5_0", "Q5_1", "Q8_0"}
    assert "blk.0.attn_q.weight" in {f.name for f in result.fallbacks}
    assert "blk.0.ffn_down.weight" not in {f.name for f in result.fallbacks}
    assert result.tensor_types.get("Q4_K", 0) + result.tensor_types.get("Q6_K", 0) == 6
    # llama.cpp's own log count is read too (it leaves out token_embd, see QuantizeResult).
    assert result.llama_reported_fallbacks is not None
    assert 0 < result.llama_reported_fallbacks <= len(result.fallbacks)
    report = "\n".join(result.describe())
    assert f"fallback: {len(result.fallbacks)} of {result.quantized_tensors}" in report
    assert "Q5_0" in report


def test_cli_quantize_json(models_settings, minilm_f16: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli.models import app

    out = tmp_path / "cli-q6.gguf"
    result = CliRunner().invoke(
        app, ["quantize", "all-minilm-l6-v2", "Q6_K", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["level"] == "q6_K" and data["path"] == str(out)
    assert data["fallback_count"] > 0
    assert data["fallback_summary"] == {"Q8_0": data["fallback_count"]}


def test_unknown_level_lists_levels(minilm_f16: Path, tmp_path: Path) -> None:
    with pytest.raises(LibrarianError) as err:
        quantize(minilm_f16, "q3_z", tmp_path / "x.gguf")
    message = str(err.value)
    for level in ("q4_0", "q4_1", "q4_K_M", "q5_0", "q5_K_M", "q6_K", "q8_0", "f16"):
        assert level in message


def test_requantizing_needs_consent(packaged_chat_gguf: Path, tmp_path: Path) -> None:
    with pytest.raises(LibrarianError, match="already quantized.*--allow-requantize"):
        quantize(packaged_chat_gguf, "q4_0", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_llama_failure_is_a_clear_error(minilm_f16: Path, tmp_path: Path) -> None:
    """A file whose header is fine but whose tensor data is cut off: llama.cpp refuses."""
    broken = tmp_path / "truncated.gguf"
    with minilm_f16.open("rb") as src, broken.open("wb") as dst:
        dst.write(src.read(5 << 20))  # the header and 5 of the 44 MB of tensors
    out = tmp_path / "out.gguf"
    with pytest.raises(LibrarianError, match=r"quantizing truncated.gguf to q8_0 failed: \S"):
        quantize(broken, "q8_0", out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("Q4_K_M", "q4_K_M"), ("q8_0", "q8_0"), ("F16", "f16"), ("q6-k", "q6_K")],
)
def test_normalize_level(given: str, canonical: str) -> None:
    assert normalize_level(given) == canonical


def test_level_table_matches_llama_cpp() -> None:
    import llama_cpp

    for level in LEVELS.values():
        constant = (
            "LLAMA_FTYPE_ALL_F32"
            if level.name == "f32"
            else f"LLAMA_FTYPE_MOSTLY_{level.name.upper()}"
        )
        assert getattr(llama_cpp, constant) == level.ftype, level.name
