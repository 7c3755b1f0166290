"""``librarian bench grounding``: does the bot answer from the right passage, and say so
when the documents do not hold the answer?

The paragraphs of SQuAD v2.0 dev are indexed as small text documents (title, then
paragraph) into one workspace; for a seeded sample of answerable and of unanswerable
questions (the latter written to look answerable), the real ``Answerer`` answers with
the default chat model (``remember=False``: no history between questions).  Counted:

* ``cited_gold``: the gold paragraph's document is among the answer's sources;
* ``answer_match``: the answer contains a gold answer string (both normalised the
  SQuAD way: lower case, no punctuation, no articles, single spaces);
* ``not_found``: the bot said the documents do not hold the answer
  (``Answer.found`` is False).

Reported, not targets: a 135M-parameter model is no reader of Wikipedia.
"""

from __future__ import annotations

import asyncio
import random
import re
import string
import time
from pathlib import Path
from typing import Any

from bot.app import App
from bot.bench.common import (
    Log,
    bench_binding,
    eval_set,
    ingest_documents,
    passage_document,
    percentile,
    quiet_log,
    read_jsonl,
    run_on_scratch,
)
from bot.config import Settings

SEED = 20_261_126


def normalize(text: str) -> str:
    """SQuAD's answer normalisation."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_matches(body: str, answers: list[str]) -> bool:
    """Whether the answer contains one of the gold answer strings (normalised)."""
    said = f" {normalize(body)} "
    return any(f" {normalize(a)} " in said for a in answers if normalize(a))


async def run(
    app: App,
    *,
    eval_dir: Path | None = None,
    quick: bool = False,
    sample: int | None = None,
    log: Log = quiet_log,
) -> dict[str, Any]:
    """Index the paragraphs, ask the sampled questions, count."""
    started = time.perf_counter()
    per_kind = sample or (5 if quick else 100)
    folder = eval_set(eval_dir, "squad-v2.0-dev")
    passages = read_jsonl(folder / "corpus.jsonl")
    questions = read_jsonl(folder / "questions.jsonl")
    if quick:  # one article: its paragraphs and its questions
        title = passages[0]["title"]
        passages = [p for p in passages if p["title"] == title]
        questions = [q for q in questions if q["title"] == title]
    rng = random.Random(SEED)
    answerable = [q for q in questions if not q.get("is_impossible")]
    unanswerable = [q for q in questions if q.get("is_impossible")]
    picked = {
        "answerable": rng.sample(answerable, min(per_kind, len(answerable))),
        "unanswerable": rng.sample(unanswerable, min(per_kind, len(unanswerable))),
    }

    binding = await asyncio.to_thread(bench_binding, app, "grounding")
    log(f"indexing {len(passages)} SQuAD v2.0 paragraphs...")
    ids = await ingest_documents(
        app, binding, [(f"{p['id']}.txt", passage_document(p)) for p in passages], log
    )
    doc_of = {name.removesuffix(".txt"): doc_id for name, doc_id in ids.items()}

    results: dict[str, Any] = {}
    for kind, sampled in picked.items():
        log(f"asking {len(sampled)} {kind} questions...")
        counts = {"cited_gold": 0, "answer_match": 0, "not_found": 0}
        total_ms: list[float] = []
        for i, q in enumerate(sampled):
            t0 = time.perf_counter()
            answer = await app.answerer.answer(
                binding,
                None,
                q["question"],
                author="bench",
                conversation_key=f"bench/{kind}/{i}",
                remember=False,
            )
            total_ms.append((time.perf_counter() - t0) * 1000)
            gold = doc_of.get(q["gold_passage_id"])
            counts["cited_gold"] += any(s.document_id == gold for s in answer.sources)
            counts["answer_match"] += bool(answer.found) and answer_matches(
                answer.body, q["answers"]
            )
            counts["not_found"] += not answer.found
        n = max(1, len(sampled))
        results[kind] = {key: round(value / n, 3) for key, value in counts.items()}
        results[kind]["questions"] = len(sampled)
        results[kind]["answer_ms_p50"] = round(percentile(total_ms, 50))
    chat = await app.inference.describe(None)
    results.update(
        {
            "paragraphs": len(passages),
            "chat_model": f"{chat.get('name')}:{chat.get('quant', '')}".rstrip(":"),
            "quick": quick,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    return results


def run_bench(
    settings: Settings,
    *,
    eval_dir: Path | None = None,
    quick: bool = False,
    sample: int | None = None,
    log: Log = quiet_log,
) -> dict[str, Any]:
    """The benchmark on a scratch database; the results as a nested dict."""
    return run_on_scratch(settings, run, eval_dir=eval_dir, quick=quick, sample=sample, log=log)
