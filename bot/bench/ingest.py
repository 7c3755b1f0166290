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

Then ``formats``: pages per second end to end for every format, the same SQuAD pages
written as plain text and Markdown (pages split by form feeds) next to the PDFs above,
and ``corpus``: the real files of ``shared/corpus/office`` grouped by extension, each
group indexed on its own and timed.  A group whose files are refused says why; when a
format's extractor is added (slides and sheets count as pages), its row fills in with
no change here.
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
from bot.ingest.filetypes import ExtractionRefused

PARAGRAPHS_PER_PAGE = 3
# Office-corpus extensions read by OCR (text in images), summed into ``ocr``.
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp")
# The file --quick indexes for these extensions instead of the first by name, which
# takes up to 13 s more (a 173-row CSV, a 30-sheet workbook, a 3312x2550 scan read by
# OCR); this TIFF has two frames, so the multi-page path still runs.
QUICK_OFFICE = frozenset(
    {
        "docling_csv-comma.csv",
        "unstructured_handbook-1p.docx",
        "markitdown_autogen-blog.html",
        "tika_testTIFF_multipage.tif",
        "unstructured_nestle-2023-half-year-segments.xlsx",
    }
)


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


def _reports(
    folder: Path, first: int, n_docs: int, pages_per_doc: int
) -> list[tuple[int, str, list[list[str]]]]:
    """Documents ``first`` .. ``first + n_docs - 1`` made of consecutive SQuAD paragraphs,
    PARAGRAPHS_PER_PAGE to a page: (number, title, pages), as many as the set holds."""
    paragraphs = read_jsonl(folder / "corpus.jsonl")
    per_doc = pages_per_doc * PARAGRAPHS_PER_PAGE
    out = []
    for d in range(first, first + n_docs):
        part = paragraphs[d * per_doc : (d + 1) * per_doc]
        if len(part) < per_doc:
            break
        pages = [
            [p["text"] for p in part[i : i + PARAGRAPHS_PER_PAGE]]
            for i in range(0, per_doc, PARAGRAPHS_PER_PAGE)
        ]
        out.append((d, part[0]["title"].replace("_", " "), pages))
    return out


def _documents(folder: Path, n_docs: int, pages_per_doc: int) -> list[tuple[str, bytes, int]]:
    return [
        (f"report-{d:03d}.pdf", make_pdf(title, pages), len(pages))
        for d, title, pages in _reports(folder, 0, n_docs, pages_per_doc)
    ]


def _as_text(pages: list[list[str]]) -> bytes:
    return "\f".join("\n\n".join(paragraphs) for paragraphs in pages).encode()


def _as_markdown(title: str, pages: list[list[str]]) -> bytes:
    return "\f".join(
        f"# {title}, part {n}\n\n" + "\n\n".join(paragraphs)
        for n, paragraphs in enumerate(pages, start=1)
    ).encode()


def _text_documents(
    folder: Path, first: int, n_docs: int, pages_per_doc: int
) -> dict[str, list[tuple[str, bytes]]]:
    """The same kind of pages as the PDFs, as plain text and as Markdown files."""
    out: dict[str, list[tuple[str, bytes]]] = {"text": [], "markdown": []}
    for d, title, pages in _reports(folder, first, n_docs, pages_per_doc):
        out["text"].append((f"notes-{d:03d}.txt", _as_text(pages)))
        out["markdown"].append((f"notes-{d:03d}.md", _as_markdown(title, pages)))
    return out


def _office_files(eval_dir: Path | None, quick: bool) -> dict[str, list[tuple[str, bytes]]]:
    """The real files of shared/corpus/office (beside the evaluation sets), by extension."""
    folder = eval_set(eval_dir, "squad-v1.1-dev").parents[1] / "corpus" / "office"
    groups: dict[str, list[tuple[str, bytes]]] = {}
    if not folder.is_dir():
        return groups
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lower().lstrip(".")
        if not path.is_file() or path.name == "SOURCES.txt" or not ext:
            continue
        groups.setdefault(ext, []).append((path.name, path.read_bytes()))
    if quick:  # one file per extension: the quick pick where there is one, else the first
        return {
            ext: [next((f for f in files if f[0] in QUICK_OFFICE), files[0])]
            for ext, files in groups.items()
        }
    return groups


async def _index_group(app: App, binding: Any, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Index one group of files on an empty queue; pages, chunks and pages/s."""
    t0 = time.perf_counter()
    ids, refused = [], {}
    for name, data in files:
        try:
            sub = await app.ingest.submit(binding.workspace, data, name, uploader="bench")
        except ExtractionRefused as exc:
            refused[name] = str(exc.reason_code)
            continue
        ids.append(sub.document.id)
    while await app.ingest.process_next():
        pass
    seconds = time.perf_counter() - t0
    docs = [await asyncio.to_thread(app.store.get_document, i) for i in ids]
    ready = [d for d in docs if d is not None and d.status == "ready"]
    for d in docs:
        if d is not None and d.status != "ready":
            refused[d.file_name] = (d.error or d.status)[:120]
    pages = sum(d.page_count or 0 for d in ready)
    row: dict[str, Any] = {
        "files": len(files),
        "indexed": len(ready),
        "pages": pages,
        "chunks": sum(d.chunk_count or 0 for d in ready),
        "pages_per_s": round(pages / seconds, 2) if ready else None,
        "seconds": round(seconds, 2),
    }
    if refused:
        row["refused"] = refused
    return row


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

    formats: dict[str, Any] = {
        "pdf": {
            "files": len(documents),
            "indexed": len(documents),
            "pages": pages,
            "chunks": n_chunks,
            "pages_per_s": round(pages / ingest_s, 2),
            "seconds": round(ingest_s, 2),
        }
    }
    n_text = 1 if quick else 6
    texts = await asyncio.to_thread(_text_documents, folder, n_docs, n_text, pages_per_doc)
    for kind, files in texts.items():
        log(f"indexing {len(files)} {kind} files of {pages_per_doc} pages...")
        formats[kind] = await _index_group(app, binding, files)
    corpus: dict[str, Any] = {}
    office = await asyncio.to_thread(_office_files, eval_dir, quick)
    for ext, files in office.items():
        log(f"indexing {len(files)} .{ext} files of the office corpus...")
        corpus[ext] = await _index_group(app, binding, files)
    images = [corpus[ext] for ext in IMAGE_EXTENSIONS if ext in corpus]
    ocr_pages = sum(row["pages"] for row in images)
    ocr_s = sum(row["seconds"] for row in images)
    ocr = {
        "files": sum(row["files"] for row in images),
        "indexed": sum(row["indexed"] for row in images),
        "pages": ocr_pages,
        "pages_per_s": round(ocr_pages / ocr_s, 2) if ocr_pages and ocr_s else None,
    }
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
        "formats": formats,
        "corpus": corpus,
        "ocr": ocr,
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


def formats_table(results: dict[str, Any]) -> str:
    """Pages per second per format, one row each: the synthetic formats, then the corpus."""
    rows = [("format", "files", "indexed", "pages", "chunks", "pages/s", "refused")]
    groups = [(k, v) for k, v in results.get("formats", {}).items()]
    groups += [(f"office .{k}", v) for k, v in results.get("corpus", {}).items()]
    for name, row in groups:
        reasons: dict[str, int] = {}
        for why in (row.get("refused") or {}).values():
            key = why if len(why) <= 20 else "failed"
            reasons[key] = reasons.get(key, 0) + 1
        rows.append(
            (
                name,
                str(row["files"]),
                str(row["indexed"]),
                str(row["pages"]),
                str(row["chunks"]),
                "-" if row["pages_per_s"] is None else f"{row['pages_per_s']:.2f}",
                ", ".join(f"{n} {why}" for why, n in reasons.items()) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["Pages per second by format", "-" * 26]
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
