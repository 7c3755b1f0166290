"""What the benchmarks share: a scratch App, the evaluation data, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.app import App
from bot.config import Settings
from bot.errors import LibrarianError
from bot.store.database import open_database
from bot.store.records import Binding
from bot.store.repo import WorkspaceDefaults
from bot.store.scratch import scratch_database

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """Progress lines go to stderr, so that --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def quiet_log(message: str) -> None:
    """No progress output."""


def default_eval_dir() -> Path:
    """``../shared/eval`` beside the repository (the checkout's sibling ``shared``)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def eval_set(eval_dir: Path | None, name: str) -> Path:
    """The folder of one evaluation set, checked."""
    folder = (eval_dir or default_eval_dir()) / name
    if not (folder / "corpus.jsonl").is_file() or not (folder / "questions.jsonl").is_file():
        raise LibrarianError(
            f"evaluation set not found: {folder} (expected corpus.jsonl and questions.jsonl; "
            "pass --eval-dir)"
        )
    return folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank: a value that was actually measured."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def passage_document(passage: dict[str, Any]) -> bytes:
    """A SQuAD paragraph as a small text document: its article's title, then the text."""
    title = str(passage.get("title", "")).replace("_", " ")
    return f"{title}\n\n{passage['text']}\n".encode()


@contextlib.asynccontextmanager
async def scratch_app(settings: Settings) -> AsyncIterator[App]:
    """An App on an empty scratch database and an empty file store, with the configured
    models; both are removed afterwards."""
    base = await asyncio.to_thread(open_database, settings)
    home = Path(tempfile.mkdtemp(prefix="librarian-bench-"))
    try:
        with scratch_database(base) as url:
            scratch = settings.model_copy(
                update={
                    "home": home,
                    "models_path": settings.models_dir,
                    "database_url": SecretStr(url),
                }
            )
            app = await asyncio.to_thread(App.build, scratch)
            try:
                yield app
            finally:
                await app.close()
    finally:
        base.close()
        shutil.rmtree(home, ignore_errors=True)


def bench_binding(app: App, name: str) -> Binding:
    """A console channel named ``name`` with a workspace of its own."""
    defaults = WorkspaceDefaults.from_settings(app.settings)
    return app.store.binding_for("bench", "", name, defaults, channel_name=name)


async def ingest_documents(
    app: App, binding: Binding, documents: Sequence[tuple[str, bytes]], log: Log = quiet_log
) -> dict[str, int]:
    """Index (file name, bytes) pairs through the real pipeline; file name -> document id."""
    ids: dict[str, int] = {}
    for name, data in documents:
        sub = await app.ingest.submit(binding.workspace, data, name, uploader="bench")
        ids[name] = sub.document.id
    done = 0
    while await app.ingest.process_next():
        done += 1
        if done % 250 == 0:
            log(f"  indexed {done}/{len(documents)} documents")
    return ids


def run_on_scratch(settings: Settings, run: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """Run one benchmark's ``run(app, **options)`` on a scratch database, synchronously."""

    async def main() -> dict[str, Any]:
        async with scratch_app(settings) as app:
            return await run(app, **options)

    return asyncio.run(main())
