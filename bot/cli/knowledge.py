"""`librarian ingest` and `librarian ask`: the knowledge pipeline from scripts."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.app import App
from bot.cli.common import parse_channel, with_app
from bot.errors import LibrarianError
from bot.ingest.filetypes import ExtractionRefused, count_label
from bot.knowledge.reply import Answer


def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="Documents to index (PDF, Office, web pages, tables, text: README)."
    ),
    channel: str = typer.Option(
        "console:general", help="PLATFORM:CHANNEL whose workspace gets them."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    uploader: str = typer.Option("cli", help="Recorded as the uploader."),
) -> None:
    """Index files into a channel's workspace, with a progress bar for many files."""
    conversation = parse_channel(channel)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LibrarianError(f"no such file: {', '.join(missing)}")

    async def work(app: App) -> list[dict]:
        binding = await app.dispatcher.binding(conversation)
        results: list[dict] = []
        queued: list[tuple[Path, int]] = []
        for path in paths:
            data = await asyncio.to_thread(path.read_bytes)
            try:
                sub = await app.ingest.submit(
                    binding.workspace,
                    data,
                    path.name,
                    media_type=mimetypes.guess_type(path.name)[0],
                    uploader=uploader,
                    source={"platform": conversation.platform, "channel": conversation.label},
                )
            except ExtractionRefused as refused:
                results.append(
                    {
                        "file": str(path),
                        "status": "refused",
                        "reason": refused.reason_code.value,
                        "error": refused.message,
                    }
                )
                continue
            queued.append((path, sub.document.id))
        stop = asyncio.Event()
        worker = asyncio.create_task(app.ingest.run(stop))
        show = not json_out and sys.stderr.isatty() and len(queued) > 1
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not show,
            transient=True,
        ) as progress:
            task = progress.add_task("Indexing", total=len(queued))
            for path, doc_id in queued:
                doc = await app.ingest.wait(doc_id)
                progress.advance(task)
                results.append(
                    {
                        "file": str(path),
                        "document_id": doc.id,
                        "status": doc.status,
                        "pages": doc.page_count,
                        "counted": count_label(doc.media_type, doc.page_count or 0),
                        "chunks": doc.chunk_count,
                        "error": doc.error,
                    }
                )
        stop.set()
        await worker
        return results

    results = with_app(work)
    if json_out:
        typer.echo(json.dumps({"channel": channel, "results": results}, indent=2))
    else:
        for r in results:
            if r["status"] == "ready":
                note = f" Note: {r['error']}" if r.get("error") else ""
                typer.echo(f"indexed  {r['file']}: {r['counted']}, {r['chunks']} chunks.{note}")
            else:
                typer.echo(f"refused  {r['file']}: {r['error']}")
    if any(r["status"] != "ready" for r in results):
        raise typer.Exit(1)


def ask(
    question: str = typer.Argument(..., help="The question."),
    channel: str = typer.Option(
        "console:general", help="PLATFORM:CHANNEL whose workspace to search."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Ask a question of a channel's workspace, as if mentioned there."""
    conversation = parse_channel(channel)

    async def work(app: App) -> Answer:
        binding = await app.dispatcher.binding(conversation)
        # The reply is printed whole once checked (a streamed draft could state what the
        # check then removes); the wait is shown on standard error.
        if not json_out and sys.stderr.isatty():
            sys.stderr.write("(searching the documents and writing an answer...)\n")
        answer = await app.answerer.answer(
            binding,
            None,
            question,
            author="cli",
            conversation_key=f"cli/{channel}",
            remember=False,
        )
        if not json_out:
            sys.stdout.write(answer.text + "\n")
        return answer

    answer = with_app(work)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    # The whole reply exactly as posted (quotes and sources included).
                    "answer": answer.text,
                    "found": answer.found,
                    "checked": answer.checked,
                    # Why the model's answer was replaced, and what it was (never
                    # posted): to see what the check refused.
                    "unsupported": answer.unsupported,
                    "draft": answer.draft,
                    # The evidence alone, headed as the closest the documents come.
                    "hedged": answer.hedged,
                    "evidence": [q.as_dict() for q in answer.evidence],
                    "sources": [
                        {"document": s.document, "pages": s.pages, "score": s.score}
                        for s in answer.sources
                    ],
                    "timings": {
                        "retrieval_ms": answer.timings.get("retrieval_ms"),
                        "prompt_tokens": answer.timings.get("prompt_tokens"),
                        "first_token_ms": answer.timings.get("first_token_ms"),
                        "tokens_per_s": answer.timings.get("tokens_per_s"),
                        "evidence_ms": answer.timings.get("evidence_ms"),
                    },
                    "coverage": answer.timings.get("coverage"),
                    "similarity": answer.timings.get("similarity"),
                },
                indent=2,
            )
        )
