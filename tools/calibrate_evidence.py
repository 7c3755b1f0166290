"""Calibrate the answerability thresholds on the calibrate split of the real-document set.

Runs retrieval and the evidence step (no chat model) for every question of
``bot/bench/realdocs.jsonl`` whose split is "calibrate", in two kinds of workspace:

* the library: a channel that holds every PDF of ``../shared/corpus/pdfs``;
* the question's own document alone (a workspace per document, indexed by this tool on
  first use), which is what a team that has shared one or two files sees.

It prints, for a grid of (coverage, similarity) thresholds, the share of answerable
questions kept and of unanswerable ones refused over both kinds together, and each
kind apart.  The report split is never read here.

    LIBRARIAN_HOME=/tmp/rd-home librarian ingest ../shared/corpus/pdfs/*.pdf --channel console:rd
    LIBRARIAN_HOME=/tmp/rd-home python tools/calibrate_evidence.py --channel console:rd

``--missing-weight``, ``--missing-full-chunks`` and ``--focus-floor`` try other values
of the evidence step's constants (``bot.knowledge.evidence``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import evidence_rule  # tools/evidence_rule.py (the script's folder is on sys.path)

from bot.app import App
from bot.bench.common import bench_binding, default_eval_dir, ingest_documents
from bot.bench.grounding import answer_matches
from bot.cli.common import parse_channel, with_app
from bot.knowledge.evidence import is_answered

SET = Path(__file__).resolve().parents[1] / "bot" / "bench" / "realdocs.jsonl"


async def _own_workspace(app: App, document: str, pdf_dir: Path) -> Any:
    """The binding of a workspace holding ``document`` alone (indexed on first use)."""
    binding = bench_binding(app, f"calibrate-one/{document}")
    if not app.store.list_documents(binding.workspace.id):
        await ingest_documents(app, binding, [(document, (pdf_dir / document).read_bytes())])
    return binding


async def features(app: App, channel: str, split: str, pdf_dir: Path) -> list[dict[str, Any]]:
    """Coverage, similarity and gold-in-evidence of each question of the split, asked in
    the library and (when it names a document) in its document's own workspace."""
    library = await app.dispatcher.binding(parse_channel(channel))
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    out = []
    for q in rows:
        if q["split"] != split:
            continue
        places = [("library", library)]
        if q.get("document"):
            places.append(("own", await _own_workspace(app, q["document"], pdf_dir)))
        for where, binding in places:
            # A thread of its own per question: the channel's stored history (someone
            # asked there by hand) must not make a question a follow-up.
            answer = await app.answerer.answer(
                binding,
                f"calibrate-{q['id']}",
                q["question"],
                author="calibrate",
                conversation_key="c",
                remember=False,
                evidence_only=True,
            )
            gold = q.get("answers") or []
            out.append(
                {
                    "id": q["id"],
                    "kind": q["kind"],
                    "where": where,
                    "coverage": answer.timings.get("coverage", 0.0),
                    "best_coverage": answer.timings.get("best_coverage", 0.0),
                    "similarity": answer.timings.get("similarity", 0.0),
                    "lexical": answer.timings.get("lexical", True),
                    "gold_in_evidence": bool(gold)
                    and answer_matches(" ".join(e.text for e in answer.evidence), gold),
                }
            )
    return out


def kept_by(r: dict[str, Any], c: float, s: float) -> bool:
    """Whether the finder's rule at thresholds (c, s) answers the question of row r."""
    return is_answered(r["coverage"], r["similarity"], r["lexical"], c, s)


def figures(rows: list[dict[str, Any]], c: float, s: float) -> tuple[float, float, float]:
    """(answerable kept, unanswerable refused, gold in the evidence of kept answerable)."""
    ans = [r for r in rows if r["kind"] == "answerable"]
    una = [r for r in rows if r["kind"] == "unanswerable"]
    kept = sum(kept_by(r, c, s) for r in ans) / max(1, len(ans))
    refused = sum(not kept_by(r, c, s) for r in una) / max(1, len(una))
    fact = sum(kept_by(r, c, s) and r["gold_in_evidence"] for r in ans) / max(1, len(ans))
    return kept, refused, fact


def main() -> None:
    """Print the best thresholds of the grid, with each kind of workspace apart."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--channel", default="console:rd", help="the library's channel")
    parser.add_argument("--split", default="calibrate")
    parser.add_argument("--pdfs", type=Path, default=default_eval_dir().parent / "corpus" / "pdfs")
    parser.add_argument("--dump", type=Path)
    evidence_rule.add_options(parser)
    args = parser.parse_args()

    async def run(app: App) -> list[dict[str, Any]]:
        evidence_rule.apply(app.answerer.finder, args)
        return await features(app, args.channel, args.split, args.pdfs)

    rows = with_app(run)
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))
    at_c, at_s = evidence_rule.thresholds(args)
    for where in ("library", "own", None):
        part = [r for r in rows if where is None or r["where"] == where]
        kept, refused, fact = figures(part, at_c, at_s)
        print(
            f"at coverage {at_c} similarity {at_s}, {where or 'both'}: answerable said not "
            f"found {1 - kept:.3f}, unanswerable said not found {refused:.3f}, gold quoted "
            f"{fact:.3f}"
        )
    for where in ("library", "own"):
        part = [r for r in rows if r["where"] == where]
        ans = sum(r["kind"] == "answerable" for r in part)
        print(f"{where}: {ans} answerable, {len(part) - ans} unanswerable ({args.split})")
    # Best: the most unanswerable refused while at least 85% of answerable are kept (the
    # rule, fixed before looking: "answerable said not found" at most 0.15), over both
    # kinds of workspace together.
    table = [(c / 80, s / 40, *figures(rows, c / 80, s / 40)) for c in range(80) for s in range(30)]
    ok = [t for t in table if t[2] >= 0.85]
    # Among equals, the more gold kept, then the highest similarity floor (more cautious).
    for c, s, kept, refused, fact in sorted(ok, key=lambda t: (-t[3], -t[4], -t[1]))[:10]:
        apart = "; ".join(
            "{}: kept {:.3f} refused {:.3f}".format(
                where, *figures([r for r in rows if r["where"] == where], c, s)[:2]
            )
            for where in ("library", "own")
        )
        print(
            f"coverage >= {c:.4f}  similarity >= {s:.3f}: answerable kept {kept:.3f}, "
            f"unanswerable refused {refused:.3f}, gold quoted {fact:.3f} ({apart})"
        )


if __name__ == "__main__":
    main()
