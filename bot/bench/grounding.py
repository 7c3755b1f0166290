"""``librarian bench grounding``: does the reply state the right fact, rest on the right
passage, and say "not found" when the documents do not hold the answer?

Two sets, each indexed into its own workspace of a scratch database and asked through
the real ``Answerer`` with the default models (``remember=False``):

* **SQuAD v2.0 dev**: paragraphs as small text documents; a seeded sample of
  answerable questions and of unanswerable ones written to look answerable (never
  tuned to);
* **real documents**: the PDFs of ``../shared/corpus/pdfs`` and the hand-written
  questions of ``bot/bench/realdocs.jsonl`` (split "report" by default: the
  thresholds were calibrated on the "calibrate" split, see REALDOCS.md);
* **Chinese** (only when asked for, ``--set chinese``): the Chinese questions of
  ``bot/bench/realdocs_zh.jsonl`` on the three Chinese files of
  ``../shared/corpus/office``, indexed beside every PDF above (English distractors).
  These files have sections and rows, not pages: ``page_cited`` is the document cited.

Counted per set and kind:

* ``fact_in_reply``: the whole reply as posted (answer, quotes, sources) contains a gold
  answer string (both normalised the SQuAD way, dashes folded);
* ``gold_in_evidence``: a quoted evidence sentence contains one;
* ``page_cited``: the gold document (and page, for PDFs) is among the cited sources;
* ``not_found``: the bot said the documents do not hold the answer;
* ``replaced``: the model's answer failed the check and the evidence was posted alone;
* ``hedged``: of those, the replies whose quotes hold too little of the question to
  answer it clearly, headed as the closest the documents come (``reply.is_clear``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import App
from bot.bench.common import (
    Log,
    bench_binding,
    default_eval_dir,
    eval_set,
    ingest_documents,
    passage_document,
    percentile,
    quiet_log,
    read_jsonl,
    run_on_scratch,
)
from bot.bench.sizes import (
    GROUNDING_DEFAULT_SETS,
    QUICK_PER_KIND,
    QUICK_REALDOCS,
    SQUAD_PER_KIND,
)
from bot.config import Settings
from bot.knowledge.sentences import CJK

SEED = 20_261_126
REALDOCS = Path(__file__).with_name("realdocs.jsonl")
REALDOCS_ZH = REALDOCS.with_name("realdocs_zh.jsonl")
# The real PDF whose questions the --quick run asks.
QUICK_PDF = "pdfplumber_federal-register-2020-17221.pdf"


def _punctuation(ch: str) -> bool:
    # SQuAD's script drops ASCII punctuation only, so a reply that quotes
    # “Inductive_Logic_Programming” in typographic quotes kept them glued to the word and
    # missed the gold string it states; every Unicode punctuation mark goes.
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """SQuAD's answer normalisation, with all Unicode punctuation dropped (not only
    ASCII's) and en/em dashes folded to hyphens first."""
    text = text.lower().replace("\u2013", "-").replace("\u2014", "-")
    text = "".join(ch for ch in text if not _punctuation(ch))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_matches(body: str, answers: list[str]) -> bool:
    """Whether the answer contains one of the gold answer strings (normalised): as whole
    words, or, for a Chinese (Japanese, Korean) one, anywhere (no spaces part its words).
    A Chinese character ends a word: "按照GB/T 1.1—2020给出" states "GB/T 1.1—2020"."""
    flat = normalize(body)
    said = f" {CJK.sub(lambda m: f' {m.group(0)} ', flat)} "
    for gold in answers:
        wanted = normalize(gold)
        if wanted and (f" {wanted} " in said or (CJK.search(wanted) and wanted in flat)):
            return True
    return False


def _page_in(pages: str, page: int | None) -> bool:
    """Whether a citation's page label ('p. 2', 'pp. 2-4', 'pp. 1, 5') holds the page."""
    if page is None:
        return True
    for part in re.findall(r"\d+(?:-\d+)?", pages):
        low, _, high = part.partition("-")
        if int(low) <= page <= int(high or low):
            return True
    return False


@dataclass(frozen=True)
class Asking:
    """How a run asks its questions: ``conversation``, each kind's questions one after
    the other in one thread that remembers them, as a team asks in a channel (the model
    then reads the earlier exchanges), else each a conversation of its own; ``log``,
    where progress goes."""

    log: Log = quiet_log
    conversation: bool = False


async def ask_all(
    app: App,
    binding: Any,
    questions: list[dict[str, Any]],
    doc_of: dict[str, int],
    asking: Asking,
    dump: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Ask each question as ``asking`` says; the figures per kind ("answerable",
    "unanswerable").  The prompt's size is reported (``prompt_tokens_p50``).

    ``model_posted``: the share of replies that post the model's own answer (it passed
    the check); ``posted_without_fact``: of all answerable questions, those whose posted
    model answer does not state the gold (the quotes under it may).  ``dump`` receives
    one record per question (question, reply, verdicts) when given."""
    results: dict[str, Any] = {}
    for kind in ("answerable", "unanswerable"):
        sampled = [q for q in questions if q["kind"] == kind]
        asking.log(f"asking {len(sampled)} {kind} questions...")
        counts = dict.fromkeys(
            (
                "fact_in_reply",
                "gold_in_evidence",
                "page_cited",
                "not_found",
                "replaced",
                "hedged",
                "model_posted",
                "posted_without_fact",
            ),
            0,
        )
        total_ms: list[float] = []
        evidence_ms: list[float] = []
        prompt_tokens: list[float] = []
        for i, q in enumerate(sampled):
            t0 = time.perf_counter()
            answer = await app.answerer.answer(
                binding,
                f"bench-{kind}" if asking.conversation else None,
                q["question"],
                author="bench",
                conversation_key=f"bench/{kind}" if asking.conversation else f"bench/{kind}/{i}",
                remember=asking.conversation,
            )
            total_ms.append((time.perf_counter() - t0) * 1000)
            if "evidence_ms" in answer.timings:
                evidence_ms.append(answer.timings["evidence_ms"])
            if answer.timings.get("prompt_tokens") is not None:
                prompt_tokens.append(answer.timings["prompt_tokens"])
            golds = q.get("answers") or []
            docs = {doc_of.get(d) for d in [q.get("document"), *q.get("also_in", [])]}
            verdict = {
                "fact_in_reply": answer.found and answer_matches(answer.text, golds),
                "gold_in_evidence": answer.found
                and answer_matches(" ".join(e.text for e in answer.evidence), golds),
                "page_cited": any(
                    s.document_id in docs and _page_in(s.pages, q.get("page"))
                    for s in answer.sources
                ),
                "not_found": not answer.found,
                "replaced": answer.checked == "replaced_by_evidence",
                "hedged": answer.hedged,
                "model_posted": answer.checked == "passed",
                "posted_without_fact": answer.checked == "passed"
                and bool(golds)
                and not answer_matches(answer.draft or "", golds),
            }
            for key, value in verdict.items():
                counts[key] += value
            if dump is not None:
                dump.append(
                    {"id": q.get("id"), "kind": kind, "question": q["question"], **verdict}
                    | {"reply": answer.text, "draft": answer.draft}
                )
        n = max(1, len(sampled))
        results[kind] = {key: round(value / n, 3) for key, value in counts.items()}
        results[kind]["questions"] = len(sampled)
        results[kind]["answer_ms_p50"] = round(percentile(total_ms, 50))
        results[kind]["evidence_ms_p95"] = round(percentile(evidence_ms or [0.0], 95), 1)
        results[kind]["prompt_tokens_p50"] = round(percentile(prompt_tokens or [0.0], 50))
    return results


def realdocs_questions(split: str, path: Path = REALDOCS) -> list[dict[str, Any]]:
    """The hand-written questions on the shared PDFs (one split, or "all")."""
    rows = read_jsonl(path)
    return [q for q in rows if split == "all" or q["split"] == split]


async def run(
    app: App,
    *,
    eval_dir: Path | None = None,
    quick: bool = False,
    sample: int | None = None,
    split: str = "report",
    sets: tuple[str, ...] = GROUNDING_DEFAULT_SETS,
    log: Log = quiet_log,
    dump: Path | None = None,
    conversation: bool = False,
) -> dict[str, Any]:
    """Index each set, ask its questions, count.  ``dump``: a JSON file to write every
    question's reply and verdicts to; ``conversation``: see ``Asking``."""
    started = time.perf_counter()
    asking = Asking(log, conversation)
    results: dict[str, Any] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    if "squad" in sets:
        records["squad_v2"] = []
        results["squad_v2"] = await _squad(
            app, eval_dir, quick, sample, asking, records["squad_v2"]
        )
    corpus = (eval_dir or default_eval_dir()).parent / "corpus"
    for key, select in (("realdocs", _realdocs), ("chinese", _chinese)):
        if key in sets:
            records[key] = []
            files, questions = select(corpus, quick, split)
            results[key] = await _ask_of_files(
                app, f"grounding-{key}", files, questions, split, asking, records[key]
            )
    if dump is not None:
        dump.write_text(json.dumps(records, indent=1, ensure_ascii=False))
    chat = await app.inference.describe(None)
    results.update(
        {
            "chat_model": f"{chat.get('name')}:{chat.get('quant', '')}".rstrip(":"),
            "quick": quick,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    return results


async def _ask_of_files(
    app: App,
    name: str,
    files: list[Path],
    questions: list[dict[str, Any]],
    split: str,
    asking: Asking,
    dump: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Index ``files`` into a bench workspace of their own, then ask ``questions`` there."""
    binding = await asyncio.to_thread(bench_binding, app, name)
    asking.log(f"indexing {len(files)} files...")
    ids = await ingest_documents(
        app, binding, [(f.name, f.read_bytes()) for f in files], asking.log
    )
    out = await ask_all(app, binding, questions, ids, asking, dump)
    out["documents"] = len(ids)
    out["split"] = split
    return out


Selected = tuple[list[Path], list[dict[str, Any]]]


def _realdocs(corpus: Path, quick: bool, split: str) -> Selected:
    """The real-PDF set's files and questions (``corpus``: ../shared/corpus)."""
    pdf_dir = corpus / "pdfs"
    questions = realdocs_questions(split)
    if quick:
        questions = [q for q in questions if q.get("document") == QUICK_PDF][:QUICK_REALDOCS]
    names = sorted({q["document"] for q in questions if q.get("document")})
    if not quick:  # every readable PDF: unanswerable questions must search them all
        names = sorted(p.name for p in pdf_dir.glob("*.pdf"))
    return [pdf_dir / n for n in names], questions


def _chinese(corpus: Path, quick: bool, split: str) -> Selected:
    """The Chinese set's files (beside the English PDFs) and questions."""
    questions = realdocs_questions(split, REALDOCS_ZH)
    files = sorted({corpus / "office" / q["document"] for q in questions if q.get("document")})
    if quick:  # the Chinese files alone, and a couple of questions of each kind
        questions = [q for q in questions if q["kind"] == "answerable"][:QUICK_PER_KIND] + [
            q for q in questions if q["kind"] == "unanswerable"
        ][:QUICK_PER_KIND]
    else:
        files += sorted((corpus / "pdfs").glob("*.pdf"))
    # Sections and rows, not pages: the document cited is what is counted.
    return files, [{**q, "page": None} for q in questions]


def squad_sample(questions: list[dict[str, Any]], per_kind: int) -> list[dict[str, Any]]:
    """The seeded sample of SQuAD v2.0 questions the bench asks: ``per_kind`` answerable
    ones, then as many unanswerable, each given its kind and its paragraph's file name."""
    rng = random.Random(SEED)
    answerable = [q for q in questions if not q.get("is_impossible")]
    unanswerable = [q for q in questions if q.get("is_impossible")]
    picked = rng.sample(answerable, min(per_kind, len(answerable))) + rng.sample(
        unanswerable, min(per_kind, len(unanswerable))
    )
    for q in picked:
        q["kind"] = "unanswerable" if q.get("is_impossible") else "answerable"
        q["document"] = f"{q['gold_passage_id']}.txt"
    return picked


async def _squad(
    app: App,
    eval_dir: Path | None,
    quick: bool,
    sample: int | None,
    asking: Asking,
    dump: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    per_kind = sample or (QUICK_PER_KIND if quick else SQUAD_PER_KIND)
    folder = eval_set(eval_dir, "squad-v2.0-dev")
    passages = read_jsonl(folder / "corpus.jsonl")
    questions = read_jsonl(folder / "questions.jsonl")
    if quick:  # one article: its paragraphs and its questions
        title = passages[0]["title"]
        passages = [p for p in passages if p["title"] == title]
        questions = [q for q in questions if q["title"] == title]
    picked = squad_sample(questions, per_kind)
    binding = await asyncio.to_thread(bench_binding, app, "grounding")
    asking.log(f"indexing {len(passages)} SQuAD v2.0 paragraphs...")
    ids = await ingest_documents(
        app, binding, [(f"{p['id']}.txt", passage_document(p)) for p in passages], asking.log
    )
    out = await ask_all(app, binding, picked, ids, asking, dump)
    out["paragraphs"] = len(passages)
    return out


def run_bench(
    settings: Settings,
    *,
    eval_dir: Path | None = None,
    quick: bool = False,
    sample: int | None = None,
    split: str = "report",
    sets: tuple[str, ...] = GROUNDING_DEFAULT_SETS,
    log: Log = quiet_log,
    dump: Path | None = None,
    conversation: bool = False,
) -> dict[str, Any]:
    """The benchmark on a scratch database; the results as a nested dict."""
    return run_on_scratch(
        settings,
        run,
        eval_dir=eval_dir,
        quick=quick,
        sample=sample,
        split=split,
        sets=sets,
        log=log,
        dump=dump,
        conversation=conversation,
    )
