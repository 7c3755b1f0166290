"""Quantization levels: which ones we offer, how they are spelt, how their files are named.

A quantization sibling of a model is ``<base stem>-<level>.gguf`` in the models
folder; ``base_stem`` strips a file's own quantization tag so that every level of
one model shares a stem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import LibrarianError


@dataclass(frozen=True)
class Level:
    """A quantization level the CLI offers."""

    name: str  # canonical spelling, also used in file names ("q4_K_M")
    ftype: int  # llama.cpp's enum llama_ftype value
    main_type: str  # the ggml tensor type most matrices get ("Q4_K")
    about: str
    # (tensor-name regex, ggml type) pairs kept at another type on purpose; passed
    # to llama.cpp as tensor type overrides (see bot/inference/quantize.py).
    keep: tuple[tuple[str, str], ...] = ()
    keep_reason: str = ""


# Values of enum llama_ftype in llama.h; they are part of the GGUF format
# (general.file_type) and do not change between llama.cpp versions.
LEVELS: dict[str, Level] = {
    level.name: level
    for level in (
        Level("q4_0", 2, "Q4_0", "4-bit, smallest of the classic types"),
        Level("q4_1", 3, "Q4_1", "4-bit with offsets, a little more accurate than q4_0"),
        Level("q5_0", 8, "Q5_0", "5-bit"),
        Level("q5_1", 9, "Q5_1", "5-bit with offsets"),
        Level(
            "q8_0",
            7,
            "Q8_0",
            "8-bit, nearly lossless",
            keep=((r"attn_v\.weight$", "F16"),),
            keep_reason="attention value projections: the tensors most hurt by 8 bits",
        ),
        Level("q2_K", 10, "Q2_K", "2-bit k-quant, low quality"),
        Level("q3_K_S", 11, "Q3_K", "3-bit k-quant, small"),
        Level("q3_K_M", 12, "Q3_K", "3-bit k-quant, medium"),
        Level("q3_K_L", 13, "Q3_K", "3-bit k-quant, large"),
        Level("q4_K_S", 14, "Q4_K", "4-bit k-quant, small"),
        Level("q4_K_M", 15, "Q4_K", "4-bit k-quant, medium (a common default)"),
        Level("q5_K_S", 16, "Q5_K", "5-bit k-quant, small"),
        Level("q5_K_M", 17, "Q5_K", "5-bit k-quant, medium"),
        Level("q6_K", 18, "Q6_K", "6-bit k-quant"),
        Level("f16", 1, "F16", "16-bit float, unquantized"),
        Level("bf16", 32, "BF16", "bfloat16, unquantized"),
        Level("f32", 0, "F32", "32-bit float, unquantized"),
    )
}


def normalize_level(level: str) -> str:
    """The canonical spelling of a level ("Q4_K_M" -> "q4_K_M"); LibrarianError if unknown."""
    wanted = level.strip().lower().replace("-", "_")
    for name in LEVELS:
        if name.lower() == wanted:
            return name
    raise LibrarianError(f"unknown quantization level {level!r}: use one of {', '.join(LEVELS)}")


def level_file_name(stem: str, level: str) -> str:
    """File name of a quantization sibling: ``<stem>-<level>.gguf``."""
    return f"{stem}-{normalize_level(level)}.gguf"


# Quantization tags that may end a file stem ("model-q8_0", "Model.Q4_1",
# "model-f16"): stripped to find the base name shared by quantization siblings.
_QUANT_TAG = re.compile(
    r"[-._](?:f32|f16|bf16|q[2-8]_(?:[01]|k(?:_[sml])?)|iq[1-4]_[a-z]+(?:_[a-z]+)?)$",
    re.IGNORECASE,
)


def base_stem(path: Path) -> str:
    """A model file's stem without its quantization tag.

    ``all-minilm-l6-v2-f16.gguf`` -> ``all-minilm-l6-v2``;
    ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``SmolLM2-135M-Instruct``.
    Ollama blobs have no meaningful name, so callers pass a friendlier stem.
    """
    stem = path.name.removesuffix(".gguf")
    return _QUANT_TAG.sub("", stem) or stem
