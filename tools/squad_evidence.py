"""The evidence step alone (no chat model) on SQuAD v2.0: how often it says "not found".

Asks a seeded sample of answerable and unanswerable SQuAD v2.0 dev questions (the seed
and sampling of ``librarian bench grounding``) of a workspace holding every dev
paragraph (indexed on first use, in the home's database), and prints the share said
not found of each kind and the share of answerable ones whose quotes hold a gold
answer.  SQuAD is never tuned on; this is for comparing rules side by side, fast.

    LIBRARIAN_HOME=/tmp/rd-home python tools/squad_evidence.py --per-kind 100
    LIBRARIAN_HOME=/tmp/rd-home python tools/squad_evidence.py --per-kind 100 \\
        --missing-full-chunks 1 --focus-floor 1 --at 0.425,0.225     # session 6's rule
"""

from __future__ import annotations

import argparse
import asyncio

import evidence_rule  # tools/evidence_rule.py (the script's folder is on sys.path)

from bot.app import App
from bot.bench.common import (
    bench_binding,
    eval_set,
    ingest_documents,
    passage_document,
    read_jsonl,
)
from bot.bench.grounding import answer_matches, squad_sample
from bot.cli.common import with_app
from bot.knowledge.evidence import is_answered


async def measure(app: App, per_kind: int, coverage: float, similarity: float) -> dict[str, float]:
    """Said not found per kind, and gold quoted, at the given thresholds."""
    folder = eval_set(None, "squad-v2.0-dev")
    passages = read_jsonl(folder / "corpus.jsonl")
    questions = read_jsonl(folder / "questions.jsonl")
    picked = squad_sample(questions, per_kind)
    binding = await asyncio.to_thread(bench_binding, app, "squad-evidence")
    if not app.store.list_documents(binding.workspace.id):
        await ingest_documents(
            app, binding, [(f"{p['id']}.txt", passage_document(p)) for p in passages]
        )
    not_found = {False: 0, True: 0}
    quoted = 0
    for q in picked:
        answer = await app.answerer.answer(
            binding,
            f"squad-{q['id']}",
            q["question"],
            author="squad",
            conversation_key="c",
            remember=False,
            evidence_only=True,
        )
        t = answer.timings
        found = is_answered(t["coverage"], t["similarity"], t["lexical"], coverage, similarity)
        impossible = q["kind"] == "unanswerable"
        not_found[impossible] += not found
        if found and not impossible:
            quoted += answer_matches(" ".join(e.text for e in answer.evidence), q["answers"])
    return {
        "answerable_not_found": round(not_found[False] / per_kind, 3),
        "unanswerable_not_found": round(not_found[True] / per_kind, 3),
        "gold_quoted": round(quoted / per_kind, 3),
    }


def main() -> None:
    """Print the figures for the given rule (the shipped one by default)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=100)
    evidence_rule.add_options(parser)
    args = parser.parse_args()
    coverage, similarity = evidence_rule.thresholds(args)

    async def run(app: App) -> dict[str, float]:
        evidence_rule.apply(app.answerer.finder, args)
        return await measure(app, args.per_kind, coverage, similarity)

    figures = with_app(run)
    print(f"coverage {coverage}, similarity {similarity}, {args.per_kind} + {args.per_kind}:")
    for key, value in figures.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
