"""Measure OCR accuracy and speed on the corpus: every image of ../shared/corpus/office and
every page without a text layer in ../shared/corpus/pdfs.

    python tools/bench_ocr.py [--json] [--engine rapidocr|rapidocr-onnxruntime]

Accuracy is measured against tools/ocr_reference.json: excerpts of each page typed by
hand from the image.  Per page:

- ``char_accuracy``: 1 - the character error rate of each excerpt against the part of
  the OCR text that matches it best (edit distance with free ends; whitespace removed,
  NFKC, case folded), so the rest of the page (excerpts are partial) does not count;
- ``word_recall`` (pages in Latin script): the share of the excerpts' words that appear
  as words in the OCR text, which is what keyword search needs (a missing space
  between two words loses both).

Speed is the engine alone on the page images that extraction gives it (decoded or
rendered by bot/ingest/ocr.py, at most 2000 px), after the engine is loaded; the
load time is reported apart.  ``--engine rapidocr`` is the engine the bot uses (through
bot.ingest.ocr); ``rapidocr-onnxruntime`` is the alternative that was measured against
it, run in an environment where that package is installed instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.bench.report import format_table  # noqa: E402
from bot.ingest import ocr  # noqa: E402

REFERENCE = Path(__file__).with_name("ocr_reference.json")
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_WORD_RE = re.compile(r"[^\W_]+")
_CJK_RE = re.compile(r"[\u3400-\u9fff]")


def _normalise(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _edit_distance_in(wanted: str, target: str) -> int:
    """Fewest edits turning ``wanted`` into some substring of ``target`` (free ends)."""
    previous = [0] * (len(target) + 1)  # starting anywhere in target costs nothing
    for i, char in enumerate(wanted, start=1):
        current = [i] + [0] * len(target)
        for j, other in enumerate(target, start=1):
            current[j] = min(
                previous[j] + 1,  # a character of the excerpt missing
                current[j - 1] + 1,  # an extra character in the OCR text
                previous[j - 1] + (char != other),
            )
        previous = current
    return min(previous)  # ending anywhere costs nothing


def char_accuracy(excerpts: list[str], text: str) -> float:
    """1 - character error rate of each excerpt against its best match in ``text``.

    Whitespace is removed and case folded first, so this counts wrong, missing and
    extra characters, not layout; summed over the excerpts of the page.
    """
    errors = total = 0
    target = _normalise(text)
    for excerpt in excerpts:
        wanted = _normalise(excerpt)
        errors += min(_edit_distance_in(wanted, target), len(wanted))
        total += len(wanted)
    return 1 - errors / total if total else 0.0


def word_recall(excerpts: list[str], text: str) -> float:
    """Share of the excerpts' words that the OCR text has as words."""
    have = set(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))
    words = [
        w for e in excerpts for w in _WORD_RE.findall(unicodedata.normalize("NFKC", e).casefold())
    ]
    return sum(w in have for w in words) / len(words) if words else 0.0


def textless_pdf_pages(pdfs: Path) -> dict[str, list[int]]:
    """Pages without a text layer in each corpus PDF, as the extractor sees them."""
    from pypdf import PdfReader

    from bot.ingest.extract import _HAS_WORD_RE, clean_pdf_text

    found: dict[str, list[int]] = {}
    for path in sorted(pdfs.glob("*.pdf")):
        try:
            reader = PdfReader(path, strict=False)
            if reader.is_encrypted:
                continue
            pages = [
                n
                for n, page in enumerate(reader.pages, start=1)
                if not _HAS_WORD_RE.search(clean_pdf_text(page.extract_text() or ""))
            ]
        except Exception:  # a broken file is the extractor's business, not OCR's
            continue
        if pages:
            found[path.name] = pages
    return found


def page_images(corpus: Path) -> list[tuple[str, Any]]:
    """(key, image) for every corpus image frame and every textless PDF page."""
    items: list[tuple[str, Any]] = []
    for path in sorted((corpus / "office").iterdir()):
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            for number, frame in enumerate(ocr.image_frames(path.read_bytes(), path.name), 1):
                items.append((f"office/{path.name}#{number}", frame))
    for name, numbers in textless_pdf_pages(corpus / "pdfs").items():
        data = (corpus / "pdfs" / name).read_bytes()
        for number, image in ocr.render_pdf_pages(data, numbers):
            if image is not None:  # blank pages are not OCR'd (bot/ingest/ocr.py)
                items.append((f"pdfs/{name}#{number}", image))
    return items


def _engine(name: str):
    """A function image -> text, and its load time in seconds."""
    start = time.perf_counter()
    if name == "rapidocr":
        from PIL import Image

        ocr.recognise(Image.new("RGB", (64, 32), "white"))  # loads the models
        return ocr.recognise, time.perf_counter() - start
    if name == "rapidocr-onnxruntime":
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR(intra_op_num_threads=ocr.OCR_THREADS, use_cls=ocr.USE_ANGLE_CLASSIFIER)

        def recognise(image: Any) -> str:
            import numpy as np

            result, _ = engine(np.asarray(image.convert("RGB"))[:, :, ::-1].copy())
            if not result:
                return ""
            boxes = [r[0] for r in result]
            return ocr._reading_order(boxes, [r[1] for r in result], image.width)

        return recognise, time.perf_counter() - start
    raise SystemExit(f"unknown engine {name!r}")


def run(corpus: Path, engine_name: str) -> dict[str, Any]:
    reference: dict[str, list[str]] = {
        k: v for k, v in json.loads(REFERENCE.read_text()).items() if not k.startswith("_")
    }
    items = page_images(corpus)
    missing = sorted(set(reference) - {key for key, _ in items})
    recognise, load_s = _engine(engine_name)
    pages: dict[str, dict[str, Any]] = {}
    for key, image in items:
        start, cpu_start = time.perf_counter(), time.process_time()
        text = recognise(image)
        seconds = time.perf_counter() - start
        row: dict[str, Any] = {
            "seconds": round(seconds, 2),
            "cpu_s": round(time.process_time() - cpu_start, 2),
            "pixels": "x".join(map(str, image.size)),
            "text": text,
        }
        if key in reference:
            row["char_accuracy"] = round(char_accuracy(reference[key], text), 3)
            if not _CJK_RE.search("".join(reference[key])):
                row["word_recall"] = round(word_recall(reference[key], text), 3)
        pages[key] = row
    rated = [r for r in pages.values() if "char_accuracy" in r]
    latin = [r for r in rated if "word_recall" in r]
    cjk = [r for r in rated if "word_recall" not in r]
    total_s = sum(r["seconds"] for r in pages.values())
    cpu_s = sum(r["cpu_s"] for r in pages.values())
    return {
        "engine": engine_name,
        "angle_classifier": ocr.USE_ANGLE_CLASSIFIER,
        "summary": {
            "pages": len(pages),
            "pages_with_reference": len(rated),
            "unreferenced": [k for k in pages if k not in reference],
            "reference_without_page": missing,
            "engine_load_s": round(load_s, 2),
            "total_s": round(total_s, 1),
            "pages_per_s": round(len(pages) / total_s, 3) if total_s else 0.0,
            "median_s_per_page": round(statistics.median(r["seconds"] for r in pages.values()), 2),
            "cpu_s_total": round(cpu_s, 1),
            "pages_per_cpu_s": round(len(pages) / cpu_s, 3) if cpu_s else 0.0,
            "median_cpu_s_per_page": round(
                statistics.median(r["cpu_s"] for r in pages.values()), 2
            ),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "char_accuracy_mean": round(statistics.mean(r["char_accuracy"] for r in rated), 3),
            "word_recall_mean_latin": round(statistics.mean(r["word_recall"] for r in latin), 3),
            "char_accuracy_mean_chinese": (
                round(statistics.mean(r["char_accuracy"] for r in cjk), 3) if cjk else None
            ),
        },
        "pages": pages,
    }


def _table(results: dict[str, Any]) -> str:
    title = f"OCR benchmark ({results['engine']}, angle classifier {results['angle_classifier']})"
    summary = format_table(title, results["summary"])
    width = max(len(k) for k in results["pages"])
    lines = [
        "",
        f"{'page':<{width}}  {'pixels':>9}  {'s':>6}  {'cpu s':>6}  {'chars':>6}  {'words':>6}",
    ]
    for key, row in results["pages"].items():
        chars = str(row.get("char_accuracy", "-"))
        words = str(row.get("word_recall", "-"))
        timing = f"{row['pixels']:>9}  {row['seconds']:>6.2f}  {row['cpu_s']:>6.2f}"
        lines.append(f"{key:<{width}}  {timing}  {chars:>6}  {words:>6}")
    return summary + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--engine", default="rapidocr", choices=("rapidocr", "rapidocr-onnxruntime")
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--angle-classifier",
        action="store_true",
        help="turn on the text-direction classifier (off in the bot; see bot/ingest/ocr.py)",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # pypdf's notes on odd fonts are not results
    ocr.USE_ANGLE_CLASSIFIER = args.angle_classifier
    results = run(args.corpus, args.engine)
    print(json.dumps(results, indent=2, ensure_ascii=False) if args.json else _table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
