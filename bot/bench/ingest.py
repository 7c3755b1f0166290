"""``librarian bench ingest``: end-to-end indexing speed against the embedder alone.

Multi-page PDFs are made from SQuAD v1.1 paragraphs (three per page, wrapped like a
report; reportlab, a dev dependency, draws them), submitted through
``IngestService.submit`` and indexed by one worker (``process_next`` until the queue
is empty): sandboxed extraction, token-exact chunking, embedding, and the
transaction that writes the chunks.  Then the very chunks that were written are
embedded again through the same inference facade, alone.  ``ratio`` is end-to-end
pages/s over the pages/s the embedder alone would allow, i.e. the share of the
indexing time spent embedding: 1.0 means everything else costs nothing.

The sandbox worker and both models are warmed up first: a running bot keeps them
loaded, and start-up is not throughput.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

from bot.app import App
from bot.bench.common import (
    Log,
    bench_binding,
    eval_set,
    quiet_log,
    read_jsonl,
    run_on_scratch,
)
from bot.config import Settings
from bot.errors import LibrarianError

PARAGRAPHS_PER_PAGE = 3


def make_pdf(title: str, pages: list[list[str]]) -> bytes:
    """A PDF with a real text layer: one page per list of paragraphs, lines wrapped."""
    try:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.utils import simpleSplit
        from reportlab.pdfgen import canvas
    except ImportError as exc:  # a dev dependency
        raise LibrarianError("the ingest benchmark needs reportlab: pip install reportlab") from exc
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(title)
    for paragraphs in pages:
        y = 800
        for paragraph in paragraphs:
            for line in simpleSplit(paragraph, "Helvetica", 10, 460):
                if y < 50:
                    break
                pdf.setFont("Helvetica", 10)
                pdf.drawString(60, y, line)
                y -= 12
            y -= 10
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _documents(folder: Path, n_docs: int, pages_per_doc: int) -> list[tuple[str, bytes, int]]:
    paragraphs = read_jsonl(folder / "corpus.jsonl")
    per_doc = pages_per_doc * PARAGRAPHS_PER_PAGE
    docs = []
    for d in range(n_docs):
        part = paragraphs[d * per_doc : (d + 1) * per_doc]
        if len(part) < per_doc:
            break
        pages = [
            [p["text"] for p in part[i : i + PARAGRAPHS_PER_PAGE]]
            for i in range(0, per_doc, PARAGRAPHS_PER_PAGE)
        ]
        title = part[0]["title"].replace("_", " ")
        docs.append((f"report-{d:03d}.pdf", make_pdf(title, pages), len(pages)))
    return docs


async def run(
    app: App, *, eval_dir: Path | None = None, quick: bool = False, log: Log = quiet_log
) -> dict[str, Any]:
    """Index the PDFs, then embed their chunks alone; compare."""
    started = time.perf_counter()
    n_docs, pages_per_doc = (3, 4) if quick else (24, 12)
    folder = eval_set(eval_dir, "squad-v1.1-dev")
    docs = await asyncio.to_thread(_documents, folder, n_docs, pages_per_doc)
    binding = await asyncio.to_thread(bench_binding, app, "ingest")
    # Warm-up: the sandbox's worker process and both sides of the embedding model.
    await asyncio.to_thread(app.sandbox.warm)
    await app.ingest.embedding_model()
    await app.inference.embed(["warm-up sentence"] * 4, key="bench")
    await app.inference.count_tokens(None, "warm-up", role="embedding")

    log(f"indexing {len(docs)} PDFs of {pages_per_doc} pages...")
    t0 = time.perf_counter()
    ids = []
    for name, data, _pages in docs:
        sub = await app.ingest.submit(
            binding.workspace, data, name, media_type="application/pdf", uploader="bench"
        )
        ids.append(sub.document.id)
    while await app.ingest.process_next():
        pass
    ingest_s = time.perf_counter() - t0
    documents = [await asyncio.to_thread(app.store.get_document, i) for i in ids]
    failed = [d.file_name for d in documents if d is None or d.status != "ready"]
    if failed:
        raise LibrarianError(f"ingest benchmark: not indexed: {', '.join(failed)}")
    pages = sum(d.page_count or 0 for d in documents)
    texts = await asyncio.to_thread(app.store.chunk_texts, ids)

    log(f"embedding the same {len(texts)} chunks alone...")
    t0 = time.perf_counter()
    await app.inference.embed(texts, key="bench")
    embed_s = time.perf_counter() - t0
    return {
        "documents": len(documents),
        "pages": pages,
        "chunks": len(texts),
        "pages_per_s": round(pages / ingest_s, 2),
        "chunks_per_s": round(len(texts) / ingest_s, 2),
        "embedder": {
            "chunks_per_s": round(len(texts) / embed_s, 2),
            "pages_per_s": round(pages / embed_s, 2),
        },
        "ratio": round(embed_s / ingest_s, 3),
        "ingest_s": round(ingest_s, 1),
        "embed_s": round(embed_s, 1),
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_bench(
    settings: Settings, *, eval_dir: Path | None = None, quick: bool = False, log: Log = quiet_log
) -> dict[str, Any]:
    """The benchmark on a scratch database; the results as a nested dict."""
    return run_on_scratch(settings, run, eval_dir=eval_dir, quick=quick, log=log)
