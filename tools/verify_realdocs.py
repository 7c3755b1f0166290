"""Check ``bot/bench/realdocs.jsonl``, the grounding set written on the shared real PDFs,
or (``--chinese``) ``bot/bench/realdocs_zh.jsonl``, the Chinese set written on the three
Chinese files of ``shared/corpus/office`` (a web page, a Word draft standard, a CSV).

Every PDF in the folder is read again with the project's own extractor
(:func:`bot.ingest.extract.extract`), so page numbers and text are exactly what the bot
indexes and cites from the PDFs' text layers (pages without one, which the bot reads
by OCR, are left out: the set was written before OCR, see REALDOCS.md).  Checked:

* ids are unique, ``kind`` and ``split`` are known values, the fields are there;
* an answerable item's document exists and is readable, its page has text, and every
  gold string occurs on that page (whitespace collapsed, case kept) and not, as a whole
  word, in the question itself; documents named in its optional ``also_in`` (files that
  hold the same text, e.g. a rotated copy) hold every gold string too;
* an unanswerable item's document, if named, exists; each of its ``absent_terms`` is in
  the question and occurs in no readable PDF of the folder (case-insensitive,
  whitespace collapsed);
* the counts: at least :data:`MIN_ANSWERABLE` answerable and :data:`MIN_UNANSWERABLE`
  unanswerable items, answerable items on at least :data:`MIN_DOCUMENTS` documents,
  and each split holding at least :data:`MIN_SPLIT_SHARE` of each kind (the Chinese
  set's minimums are its :class:`SetSpec`'s);
* an item's optional ``location`` is where the bot cites its page ("row 9", "section
  ..."), as the extractor names it.

Run from the repository root::

    python tools/verify_realdocs.py [--pdf-dir DIR] [--set FILE]
    python tools/verify_realdocs.py --chinese

It prints a summary and exits 1 with the list of problems if there are any.  Tests
call :func:`verify` instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: import this checkout's bot, not another
    sys.path.insert(0, str(REPO))

from bot.ingest.extract import ExtractionRefused, extract  # noqa: E402
from bot.ingest.ocr import OcrOptions  # noqa: E402
from bot.knowledge.sentences import CJK  # noqa: E402

TEXT_LAYER_ONLY = OcrOptions(max_pages=0)

DEFAULT_SET = REPO / "bot" / "bench" / "realdocs.jsonl"
KINDS = ("answerable", "unanswerable")
SPLITS = ("calibrate", "report")
MIN_ANSWERABLE = 90
MIN_UNANSWERABLE = 60
MIN_DOCUMENTS = 20
MIN_SPLIT_SHARE = 0.4


@dataclass(frozen=True)
class SetSpec:
    """A set, the documents it is written on and the counts it must reach."""

    path: Path
    folder: str  # under shared/corpus
    pattern: str  # the folder's files the set is checked against
    min_answerable: int
    min_unanswerable: int
    min_documents: int


ENGLISH = SetSpec(DEFAULT_SET, "pdfs", "*.pdf", MIN_ANSWERABLE, MIN_UNANSWERABLE, MIN_DOCUMENTS)
# Every Chinese file of the office folder: an absent term must be in none of them.
CHINESE = SetSpec(REPO / "bot" / "bench" / "realdocs_zh.jsonl", "office", "*_zh.*", 24, 24, 3)


def default_pdf_dir(spec: SetSpec = ENGLISH) -> Path:
    """``shared/corpus/<folder>`` beside the checkout, else the development machine's copy."""
    beside = REPO.parent / "shared" / "corpus" / spec.folder
    return beside if beside.is_dir() else Path("/work/shared/corpus") / spec.folder


def collapse(text: str) -> str:
    """Runs of whitespace (newlines included) as one space, ends trimmed."""
    return " ".join(text.split())


@dataclass
class Corpus:
    """The folder's documents as the bot reads them: page number to collapsed page text."""

    pages: dict[str, dict[int, str]] = field(default_factory=dict)
    # page number to where the bot cites it ("row 9"; None for a PDF's pages)
    locations: dict[str, dict[int, str | None]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def full_text_lower(self) -> dict[str, str]:
        """Each readable document's whole text, collapsed and lower-cased."""
        return {
            name: " ".join(pages[n] for n in sorted(pages)).lower()
            for name, pages in self.pages.items()
        }


def read_corpus(pdf_dir: Path, pattern: str = "*.pdf") -> Corpus:
    """Extract every file of ``pdf_dir`` matching ``pattern`` with the project's extractor."""
    corpus = Corpus()
    for path in sorted(pdf_dir.glob(pattern)):
        try:
            # The set was written on the PDFs' text layers, before OCR: its absent
            # terms are absent from those.  OCR of scanned pages (no text layer) finds
            # three of them ('file format', 'weather', 'minutes') in unrelated scanned
            # documents, which leaves those questions unanswerable all the same; so
            # the set is checked against the text layers (REALDOCS.md says so).
            result = extract(path.read_bytes(), path.name, None, ocr_options=TEXT_LAYER_ONLY)
        except ExtractionRefused as exc:
            corpus.refused[path.name] = str(exc)
            continue
        corpus.pages[path.name] = {page.number: collapse(page.text) for page in result.pages}
        corpus.locations[path.name] = {page.number: page.location for page in result.pages}
    return corpus


def read_set(set_path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The items of the JSON-lines file, and a problem per line that is not an object."""
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(set_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        items.append(item)
    return items, problems


def _check_answerable(item: dict[str, Any], corpus: Corpus) -> list[str]:
    where = item.get("id", "?")
    problems: list[str] = []
    document, page, answers = item.get("document"), item.get("page"), item.get("answers")
    if not isinstance(document, str) or not document:
        return [f"{where}: answerable item without a document"]
    if document in corpus.refused:
        return [f"{where}: {document} cannot be read: {corpus.refused[document]}"]
    if document not in corpus.pages:
        return [f"{where}: {document} is not in the PDF folder"]
    if not isinstance(page, int) or isinstance(page, bool):
        return [f"{where}: page must be an integer, not {page!r}"]
    text = corpus.pages[document].get(page)
    if text is None:
        return [f"{where}: {document} has no text on page {page}"]
    if not isinstance(answers, list) or not answers:
        return [f"{where}: answers must be a non-empty list"]
    location = corpus.locations.get(document, {}).get(page)
    if "location" in item and item["location"] != location:
        problems.append(f"{where}: page {page} of {document} is cited as {location!r}")
    question = collapse(str(item.get("question", "")))
    also_in = item.get("also_in", [])
    if not isinstance(also_in, list):
        return [f"{where}: also_in must be a list of document names"]
    for answer in answers:
        if not isinstance(answer, str) or not collapse(answer):
            problems.append(f"{where}: empty or non-string gold answer {answer!r}")
            continue
        gold = collapse(answer)
        if gold not in text:
            problems.append(f"{where}: gold {answer!r} is not on page {page} of {document}")
        # As a whole word: "73" inside "737" gives nothing away.  Chinese has no word
        # boundaries: there, anywhere in the question.
        word = re.escape(gold) if CJK.search(gold) else rf"(?<!\w){re.escape(gold)}(?!\w)"
        if re.search(word, question, re.IGNORECASE):
            problems.append(f"{where}: gold {answer!r} is given away by the question")
        for twin in also_in:
            if twin not in corpus.pages:
                problems.append(f"{where}: also_in {twin!r} is not a readable PDF of the folder")
            elif not any(gold in page_text for page_text in corpus.pages[twin].values()):
                problems.append(f"{where}: gold {answer!r} is not in also_in {twin}")
    return problems


def _check_unanswerable(
    item: dict[str, Any], corpus: Corpus, full_texts: dict[str, str]
) -> list[str]:
    where = item.get("id", "?")
    problems: list[str] = []
    document = item.get("document")
    if document is not None and document not in corpus.pages:
        problems.append(f"{where}: {document!r} is not a readable PDF of the folder")
    terms = item.get("absent_terms")
    if not isinstance(terms, list) or not 1 <= len(terms) <= 3:
        return [*problems, f"{where}: absent_terms must be a list of 1 to 3 terms"]
    question = collapse(str(item.get("question", ""))).lower()
    for term in terms:
        if not isinstance(term, str) or not collapse(term):
            problems.append(f"{where}: empty or non-string absent term {term!r}")
            continue
        needle = collapse(term).lower()
        if needle not in question:
            problems.append(f"{where}: absent term {term!r} is not in the question")
        holders = [name for name, text in full_texts.items() if needle in text]
        if holders:
            problems.append(f"{where}: absent term {term!r} occurs in {', '.join(holders)}")
    return problems


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per kind and split, and the documents the answerable items are on."""
    per = Counter((str(i.get("kind")), str(i.get("split"))) for i in items)
    documents = sorted({str(i.get("document")) for i in items if i.get("kind") == "answerable"})
    return {
        "total": len(items),
        "by_kind_split": {f"{k}/{s}": per[(k, s)] for k in KINDS for s in SPLITS},
        "answerable_documents": documents,
        "unanswerable_with_document": sum(
            1 for i in items if i.get("kind") == "unanswerable" and i.get("document")
        ),
    }


def _check_counts(items: list[dict[str, Any]], spec: SetSpec) -> list[str]:
    problems: list[str] = []
    kinds = Counter(str(i.get("kind")) for i in items)
    minimums = (("answerable", spec.min_answerable), ("unanswerable", spec.min_unanswerable))
    for kind, minimum in minimums:
        if kinds[kind] < minimum:
            problems.append(f"only {kinds[kind]} {kind} items (at least {minimum} wanted)")
        for split in SPLITS:
            count = sum(1 for i in items if i.get("kind") == kind and i.get("split") == split)
            if kinds[kind] and count < MIN_SPLIT_SHARE * kinds[kind]:
                problems.append(
                    f"split {split!r} has {count} of {kinds[kind]} {kind} items "
                    f"(at least {MIN_SPLIT_SHARE:.0%} wanted)"
                )
    documents = summarize(items)["answerable_documents"]
    if len(documents) < spec.min_documents:
        problems.append(
            f"answerable items cover {len(documents)} documents (at least {spec.min_documents})"
        )
    return problems


def verify(
    pdf_dir: Path,
    set_path: Path,
    *,
    corpus: Corpus | None = None,
    spec: SetSpec = ENGLISH,
) -> list[str]:
    """Every problem with the set at ``set_path`` against the documents in ``pdf_dir``.

    An empty list means the set is sound.  ``corpus`` may be passed to reuse one
    extraction (see :func:`read_corpus`); ``spec`` gives the files the set is checked
    against and the counts it must reach.
    """
    if not pdf_dir.is_dir():
        return [f"PDF folder not found: {pdf_dir}"]
    if not set_path.is_file():
        return [f"set not found: {set_path}"]
    corpus = corpus or read_corpus(pdf_dir, spec.pattern)
    items, problems = read_set(set_path)
    full_texts = corpus.full_text_lower()

    ids = Counter(str(i.get("id")) for i in items)
    problems += [f"id {i!r} is used {n} times" for i, n in ids.items() if n > 1]
    for item in items:
        where = item.get("id", "?")
        kind, split = item.get("kind"), item.get("split")
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"item without an id: {item!r:.80}")
        if split not in SPLITS:
            problems.append(f"{where}: split must be one of {SPLITS}, not {split!r}")
        if not isinstance(item.get("question"), str) or not item["question"].strip():
            problems.append(f"{where}: no question")
            continue
        if kind == "answerable":
            problems += _check_answerable(item, corpus)
        elif kind == "unanswerable":
            problems += _check_unanswerable(item, corpus, full_texts)
        else:
            problems.append(f"{where}: kind must be one of {KINDS}, not {kind!r}")
    problems += _check_counts(items, spec)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: print the summary, then the problems; 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf-dir", type=Path, default=None, help="the shared documents")
    parser.add_argument("--set", type=Path, default=None, help="the JSON-lines set")
    parser.add_argument(
        "--chinese", action="store_true", help="the Chinese set, on shared/corpus/office"
    )
    args = parser.parse_args(argv)
    spec = CHINESE if args.chinese else ENGLISH
    pdf_dir = args.pdf_dir or default_pdf_dir(spec)
    args.set = args.set or spec.path
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings are not our business

    corpus = read_corpus(pdf_dir, spec.pattern) if pdf_dir.is_dir() else None
    problems = verify(pdf_dir, args.set, corpus=corpus, spec=spec)
    if corpus is not None and args.set.is_file():
        items, _ = read_set(args.set)
        summary = summarize(items)
        print(f"set: {args.set}")
        print(
            f"documents: {pdf_dir}/{spec.pattern} ({len(corpus.pages)} readable, "
            f"{len(corpus.refused)} refused)"
        )
        print(f"items: {summary['total']}")
        for key, count in summary["by_kind_split"].items():
            print(f"  {key}: {count}")
        print(f"answerable items cover {len(summary['answerable_documents'])} documents")
        print(f"unanswerable items naming a document: {summary['unanswerable_with_document']}")
    if problems:
        print(f"{len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("OK: every gold string is on its page; every absent term is in no document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
