"""Make other quantization levels of a GGUF model with llama.cpp's quantizer.

``quantize(src, "q8_0")`` calls ``llama_cpp.llama_model_quantize`` and writes
``<models_dir>/<stem>-q8_0.gguf`` (the stem without the source's own
quantization tag, so ``all-minilm-l6-v2-f16.gguf`` gives
``all-minilm-l6-v2-q8_0.gguf``, the name ``ModelRegistry.resolve_level`` looks
for).

llama.cpp silently *falls back* to another type for tensors whose rows do not
fit the requested type's block: k-quants (Q4_K, Q5_K, Q6_K...) need rows that
are a multiple of 256 values, so MiniLM's 384-wide matrices become Q5_0, Q5_1
or Q8_0 instead.  We read the output's per-tensor types back with GGUFReader
and report every such fallback, so a "q4_K_M" file that is mostly Q5_0 does not
pass unnoticed.

A level may also *keep* some tensors at higher precision on purpose, as
llama.cpp's own k-quant mixes do.  q8_0 keeps the attention value projections
(``attn_v``) at F16: on MiniLM, plain Q8_0 put 11 of 100 random punctuation
strings and 2 of 50 number strings below cosine 0.999 of F16 (worst 0.9984),
while questions and paragraphs stayed above 0.9993; with attn_v at F16, all 550
of those held-out texts were >= 0.9991, for 3% more bytes (25.3 -> 26.1 MB).
No single other tensor group did as much (measured one group at a time).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import LibrarianError
from bot.inference.gguf import read_gguf_facts, read_gguf_header
from bot.inference.levels import LEVELS, Level, base_stem, level_file_name, normalize_level
from bot.inference.registry import record_source

# Types llama.cpp falls back to when a row does not fit the requested block size.
_FALLBACK_TARGETS = frozenset({"Q4_0", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "F16"})
_K_BLOCK = 256  # values per block of the k-quants and i-quants
_LEGACY_BLOCK = 32  # values per block of q4_0 ... q8_0
# enum ggml_type values (ggml.h) for the types a level may keep tensors at.
_GGML_TYPES = {"F32": 0, "F16": 1, "Q8_0": 8, "BF16": 30}


@dataclass(frozen=True)
class TensorFallback:
    """One tensor that did not get the level's type."""

    name: str
    shape: tuple[int, ...]  # ggml order: row length first
    intended: str
    actual: str


@dataclass(frozen=True)
class QuantizeResult:
    """What a quantization produced and how faithfully it followed the level."""

    source: Path
    path: Path
    level: str
    quant: str  # general.file_type of the output, as the registry names it
    size_bytes: int
    source_size_bytes: int
    seconds: float
    quantized_tensors: int  # tensors llama.cpp may quantize (2-D weights)
    tensor_types: dict[str, int]  # their types in the output
    fallbacks: tuple[TensorFallback, ...] = ()
    # Tensors the level keeps at another type on purpose, by that type.
    kept: dict[str, int] = field(default_factory=dict)
    # llama.cpp's own count from its log.  It can be lower than len(fallbacks):
    # llama.cpp gives a tied token_embd (BERT has no output tensor) Q8_0 by a
    # shape rule of its own without counting it, while we count every tensor
    # that did not get the level's type because of its row length.
    llama_reported_fallbacks: int | None = None

    @property
    def fallback_summary(self) -> dict[str, int]:
        """How many tensors fell back, by the type they got instead."""
        return dict(Counter(f.actual for f in self.fallbacks))

    def describe(self) -> list[str]:
        """Human-readable lines for the CLI."""
        ratio = self.size_bytes / self.source_size_bytes if self.source_size_bytes else 0.0
        types = ", ".join(f"{n} {t}" for t, n in sorted(self.tensor_types.items()))
        source_size = _mib(self.source_size_bytes)
        lines = [
            f"wrote {self.path} ({_mib(self.size_bytes)}, {ratio:.0%} of {source_size}, "
            f"{self.seconds:.1f} s)",
            f"level {self.level}: {self.quantized_tensors} weight tensors -> {types}",
        ]
        if self.kept:
            kept = ", ".join(f"{n} at {t}" for t, n in sorted(self.kept.items()))
            lines.append(f"kept on purpose: {kept} ({LEVELS[self.level].keep_reason})")
        if self.fallbacks:
            intended = LEVELS[self.level].main_type
            summary = ", ".join(f"{n} to {t}" for t, n in sorted(self.fallback_summary.items()))
            lines.append(
                f"fallback: {len(self.fallbacks)} of {self.quantized_tensors} tensors could not "
                f"use {intended} (rows not a multiple of the block size) and fell back: {summary}"
            )
            if self.llama_reported_fallbacks not in (None, len(self.fallbacks)):
                lines.append(
                    f"  (llama.cpp's log counted {self.llama_reported_fallbacks}; it does not "
                    "count the token embeddings it puts in Q8_0 for the same reason)"
                )
        else:
            lines.append("fallback: none")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "source": str(self.source),
            "path": str(self.path),
            "level": self.level,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "source_size_bytes": self.source_size_bytes,
            "seconds": round(self.seconds, 3),
            "quantized_tensors": self.quantized_tensors,
            "tensor_types": self.tensor_types,
            "kept": self.kept,
            "fallback_count": len(self.fallbacks),
            "fallback_summary": self.fallback_summary,
            "fallbacks": [
                {"name": f.name, "shape": list(f.shape), "intended": f.intended, "actual": f.actual}
                for f in self.fallbacks
            ],
            "llama_reported_fallbacks": self.llama_reported_fallbacks,
        }


def default_output(src: Path, level: str, models_dir: Path) -> Path:
    """Where ``quantize`` writes by default: ``models_dir/<base stem>-<level>.gguf``."""
    return models_dir / level_file_name(base_stem(src), level)


def quantize(
    src: Path,
    level: str,
    out: Path | None = None,
    *,
    models_dir: Path | None = None,
    n_threads: int = 0,
    allow_requantize: bool = False,
    overwrite: bool = True,
) -> QuantizeResult:
    """Quantize the GGUF file ``src`` to ``level`` with llama.cpp.

    ``out`` defaults to ``models_dir/<stem>-<level>.gguf`` (``models_dir``
    defaults to the configured one).  Re-quantizing an already quantized model
    loses quality, so it needs ``allow_requantize``.  The output appears only
    when complete.  Raises LibrarianError with llama.cpp's reason on failure.
    """
    canonical = normalize_level(level)
    spec = LEVELS[canonical]
    src = Path(src).expanduser()
    facts = read_gguf_facts(src)  # also rejects missing and non-GGUF files
    if facts.quant.upper() not in {"F32", "F16", "BF16"} and not allow_requantize:
        raise LibrarianError(
            f"{src.name} is already quantized ({facts.quant}); quantizing it again loses "
            "quality. Quantize from an F16/F32 file, or pass --allow-requantize"
        )
    if out is not None:
        target = Path(out).expanduser()
    else:
        if models_dir is None:
            from bot.config import load_settings

            models_dir = load_settings().models_dir
        target = default_output(src, canonical, models_dir)
    if target.resolve() == src.resolve():
        raise LibrarianError(f"output {target} is the source file; choose another -o")
    if target.exists() and not overwrite:
        raise LibrarianError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = spec.ftype
    params.nthread = n_threads if n_threads > 0 else (os.cpu_count() or 1)
    params.allow_requantize = allow_requantize
    # The array must outlive the call: llama.cpp reads it through the pointer.
    overrides = _tensor_overrides(llama_cpp, spec)
    if overrides is not None:
        params.tt_overrides = overrides

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    started = time.monotonic()
    try:
        with _captured_llama_log() as log_lines:
            status = llama_cpp.llama_model_quantize(
                str(src).encode(), str(tmp).encode(), ctypes.byref(params)
            )
        if status != 0:
            reason = _failure_reason(log_lines) or f"llama_model_quantize returned {status}"
            raise LibrarianError(f"quantizing {src.name} to {canonical} failed: {reason}")
        seconds = time.monotonic() - started
        fallbacks, eligible, types, kept = inspect_fallbacks(tmp, canonical)
        out_facts = read_gguf_facts(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; models are not secrets
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

    if models_dir is not None:
        record_source(models_dir, target, "quantized", origin=f"{src} {canonical}")
    return QuantizeResult(
        source=src,
        path=target,
        level=canonical,
        quant=out_facts.quant,
        size_bytes=target.stat().st_size,
        source_size_bytes=src.stat().st_size,
        seconds=seconds,
        quantized_tensors=eligible,
        tensor_types=types,
        fallbacks=tuple(fallbacks),
        kept=kept,
        llama_reported_fallbacks=_reported_fallbacks(log_lines),
    )


def inspect_fallbacks(
    path: Path, level: str
) -> tuple[list[TensorFallback], int, dict[str, int], dict[str, int]]:
    """Compare a quantized file's tensor types with what ``level`` asks for.

    Returns (fallbacks, number of quantizable tensors, their type counts, and the
    tensors the level keeps at another type on purpose, by type).  A
    quantizable tensor (what llama.cpp's quantizer would touch: 2-D+ weights
    other than norms, position and token-type embeddings) fell back when it
    holds one of llama.cpp's fallback types instead of the level's type and its
    rows do not divide into the blocks of the level (or of the Q6_K that
    llama.cpp mixes into several levels).
    """
    spec = LEVELS[normalize_level(level)]
    fallbacks: list[TensorFallback] = []
    types: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    eligible = 0
    for tensor in read_gguf_header(path).tensors:
        shape = tensor.shape
        if not _quantizable(tensor.name, shape):
            continue
        eligible += 1
        actual = tensor.type_name
        types[actual] += 1
        if any(re.search(p, tensor.name) and actual == t for p, t in spec.keep):
            kept[actual] += 1  # kept on purpose, not a fallback
            continue
        if actual == spec.main_type or actual not in _FALLBACK_TARGETS:
            continue
        if spec.main_type in {"F16", "BF16", "F32"}:
            continue  # nothing to fall back from
        row = shape[0]
        # Block-256 types (and the Q6_K mixed into legacy levels) fall back when
        # the row is not a multiple of 256; block-32 types only to F16.
        if row % _K_BLOCK != 0 and (actual != "F16" or row % _LEGACY_BLOCK != 0):
            fallbacks.append(
                TensorFallback(
                    name=tensor.name, shape=shape, intended=spec.main_type, actual=actual
                )
            )
    return fallbacks, eligible, dict(types), dict(kept)


# -- helpers -------------------------------------------------------------------


def _tensor_overrides(llama_cpp: Any, spec: Level) -> Any:
    """llama.cpp's NULL-terminated array of tensor type overrides for ``spec.keep``."""
    if not spec.keep:
        return None
    array = (llama_cpp.llama_model_tensor_override * (len(spec.keep) + 1))()
    for i, (pattern, type_name) in enumerate(spec.keep):
        array[i].pattern = pattern.encode()
        array[i].type = _GGML_TYPES[type_name]
    array[len(spec.keep)].pattern = None
    return array


# Tensor names llama.cpp's quantizer never quantizes (see llama-quant.cpp).
_NOT_QUANTIZED = re.compile(
    r"(_norm\.weight$|^position_embd\.weight$|^token_types\.weight$|ffn_gate_inp\.weight$"
    r"|ssm_conv1d|shortconv\.conv\.weight$|time_mix_|attn_rel_b\.weight$|\.position_embd)"
)


def _quantizable(name: str, shape: tuple[int, ...]) -> bool:
    return name.endswith("weight") and len(shape) >= 2 and not _NOT_QUANTIZED.search(name)


@contextlib.contextmanager
def _captured_llama_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines while quantizing instead of printing them.

    llama-cpp-python installs one process-wide log callback; we swap in ours
    and put its own back afterwards.
    """
    import llama_cpp

    lines: list[str] = []
    partial: list[str] = []

    def collect(level: int, text: bytes, user_data: Any) -> None:
        partial.append(text.decode("utf-8", errors="replace"))
        if partial[-1].endswith("\n"):
            lines.append("".join(partial).rstrip("\n"))
            partial.clear()

    callback = llama_cpp.llama_log_callback(collect)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        if partial:
            lines.append("".join(partial))
        previous = None
        with contextlib.suppress(ImportError, AttributeError):
            from llama_cpp import _logger

            previous = _logger.llama_log_callback
        llama_cpp.llama_log_set(previous, ctypes.c_void_p(0))
        del callback  # only after llama.cpp no longer points at it


def _failure_reason(lines: list[str]) -> str | None:
    for line in reversed(lines):
        if "failed to quantize:" in line:
            return line.split("failed to quantize:", 1)[1].strip()
    return None


_REPORTED = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")


def _reported_fallbacks(lines: list[str]) -> int | None:
    for line in lines:
        match = _REPORTED.search(line)
        if match:
            return int(match.group(1))
    # llama.cpp only prints the summary when something fell back.
    return 0 if any("llama_model_quantize_impl" in line for line in lines) else None


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
