"""``librarian models bench``: the runtime's speed and memory next to bare llama-cpp-python.

Registered by ``bot.cli.models`` as a command of the ``models`` group.
"""

from __future__ import annotations

import json

import typer


def bench(
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(
        False, "--quick", help="Fewer and shorter runs (about 20 s instead of about a minute)."
    ),
) -> None:
    """Benchmark the default chat and embedding models through the bot's runtime.

    Chat prompt and generation tokens/s through the bot's worker and queue are
    measured side by side with a bare llama-cpp-python call (interleaved runs);
    embeddings per second for sentences and ~200-token chunks; peak RSS of a
    process holding both models.
    """
    # Imported here: `librarian --help` must not load llama.cpp.
    from bot.bench.report import format_table
    from bot.config import load_settings
    from bot.inference.bench import run_bench
    from bot.inference.registry import ModelRegistry

    settings = load_settings()
    registry = ModelRegistry(settings)
    chat = registry.resolve(settings.chat_model, role="chat")
    embedding = registry.resolve(settings.embedding_model, role="embedding")
    if not json_out:
        typer.echo(
            f"benchmarking {chat.name} ({chat.quant}) and {embedding.name} ({embedding.quant})...",
            err=True,
        )
    results = run_bench(
        chat,
        embedding,
        n_threads=settings.n_threads,
        chat_context=settings.chat_context,
        quick=quick,
    )
    if json_out:
        typer.echo(json.dumps(results, indent=2))
    else:
        typer.echo(format_table("Models", results))
