"""``librarian bench ingest``: end-to-end indexing speed against the embedder alone.

Multi-page PDFs are made from SQuAD v1.1 paragraphs (three per page, wrapped like a
report; reportlab, a dev dependency, draws them), submitted through
``IngestService.submit`` and indexed by one worker (``process_next`` until the queue
is empty): sandboxed extraction, token-exact chunking, embedding, and the
transaction that writes the chunks.  Then the very chunks that were written are
embedded again through the same inference facade, alone.  ``ratio`` is end-to-end
pages/s over the pages/s the embedder alone would allow, i.e. the share of the
indexing time spent embedding: 1.0 means everything else costs nothing.

The documents are indexed in rounds, each followed by the embedding of its own
chunks alone: this machine's speed drifts by ~10% over a minute (the same embedding
work measured 16.1 to 19.0 s in consecutive runs), and two halves of a run measured
a minute apart would compare two machines.  ``ratio`` is the sum over rounds; each
round's ratio is reported too.  Every round starts with an empty queue, so its first
document is read without overlap: the figure is, if anything, conservative.

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
    n_docs, pages_per_doc, rounds = (3, 4, 1) if quick else (24, 12, 4)
    folder = eval_set(eval_dir, "squad-v1.1-dev")
    docs = await asyncio.to_thread(_documents, folder, n_docs, pages_per_doc)
    binding = await asyncio.to_thread(bench_binding, app, "ingest")
    # Warm-up: the sandbox's worker process and both sides of the embedding model.
    await asyncio.to_thread(app.sandbox.warm)
    await app.ingest.embedding_model()
    await app.inference.embed(["warm-up sentence"] * 4, key="bench")
    await app.inference.count_tokens(None, "warm-up", role="embedding")

    log(f"indexing {len(docs)} PDFs of {pages_per_doc} pages in {rounds} rounds...")
    ids: list[int] = []
    n_chunks = 0
    ingest_s = embed_s = 0.0
    round_ratios = []
    per_round = -(-len(docs) // rounds)
    for r in range(0, len(docs), per_round):
        round_ids = []
        t0 = time.perf_counter()
        for name, data, _pages in docs[r : r + per_round]:
            sub = await app.ingest.submit(
                binding.workspace, data, name, media_type="application/pdf", uploader="bench"
            )
            round_ids.append(sub.document.id)
        while await app.ingest.process_next():
            pass
        round_ingest = time.perf_counter() - t0
        texts = await asyncio.to_thread(app.store.chunk_texts, round_ids)
        t0 = time.perf_counter()
        await app.inference.embed(texts, key="bench")
        round_embed = time.perf_counter() - t0
        ids += round_ids
        n_chunks += len(texts)
        ingest_s += round_ingest
        embed_s += round_embed
        round_ratios.append(round(round_embed / round_ingest, 3))
        log(f"  round {len(round_ratios)}: ratio {round_ratios[-1]}")
    documents = [await asyncio.to_thread(app.store.get_document, i) for i in ids]
    failed = [d.file_name for d in documents if d is None or d.status != "ready"]
    if failed:
        raise LibrarianError(f"ingest benchmark: not indexed: {', '.join(failed)}")
    pages = sum(d.page_count or 0 for d in documents)
    return {
        "documents": len(documents),
        "pages": pages,
        "chunks": n_chunks,
        "pages_per_s": round(pages / ingest_s, 2),
        "chunks_per_s": round(n_chunks / ingest_s, 2),
        "embedder": {
            "chunks_per_s": round(n_chunks / embed_s, 2),
            "pages_per_s": round(pages / embed_s, 2),
        },
        "ratio": round(embed_s / ingest_s, 3),
        "round_ratios": round_ratios,
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
