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

``--chinese`` runs the Chinese set (``bot/bench/realdocs_zh.jsonl``, on the three Chinese
files of ``../shared/corpus/office``) instead.  Its library is a channel holding those
three files beside English ones: the English library above with them added (1,271
chunks: a missing word weighs in full, ``MISSING_FULL_CHUNKS``), or a small one with two
English PDFs as distractors (399 chunks):

    cp -a /tmp/rd-home /tmp/rd-home-zh
    LIBRARIAN_HOME=/tmp/rd-home-zh librarian ingest ../shared/corpus/office/*_zh.* \
        --channel console:rd
    LIBRARIAN_HOME=/tmp/rd-home-zh python tools/calibrate_evidence.py --chinese
    LIBRARIAN_HOME=/tmp/rd-home-zh librarian ingest ../shared/corpus/office/*_zh.* \
        ../shared/corpus/pdfs/acl_2020.acl-main.207.pdf \
        ../shared/corpus/pdfs/pdfplumber_federal-register-2020-17221.pdf --channel console:zh
    LIBRARIAN_HOME=/tmp/rd-home-zh python tools/calibrate_evidence.py --chinese \
        --channel console:zh
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: import this checkout's bot, not another
    sys.path.insert(0, str(REPO))

import evidence_rule  # noqa: E402  (tools/evidence_rule.py: the script's folder is on sys.path)

from bot.app import App  # noqa: E402
from bot.bench.common import bench_binding, default_eval_dir, ingest_documents  # noqa: E402
from bot.bench.grounding import answer_matches  # noqa: E402
from bot.cli.common import parse_channel, with_app  # noqa: E402
from bot.knowledge.evidence import is_answered  # noqa: E402
from bot.knowledge.sentences import is_cjk  # noqa: E402

SET = REPO / "bot" / "bench" / "realdocs.jsonl"
SET_ZH = SET.with_name("realdocs_zh.jsonl")


async def _own_workspace(app: App, document: str, pdf_dir: Path) -> Any:
    """The binding of a workspace holding ``document`` alone (indexed on first use)."""
    binding = bench_binding(app, f"calibrate-one/{document}")
    if not app.store.list_documents(binding.workspace.id):
        await ingest_documents(app, binding, [(document, (pdf_dir / document).read_bytes())])
    return binding


async def features(
    app: App, channel: str, split: str, pdf_dir: Path, set_path: Path = SET
) -> list[dict[str, Any]]:
    """Coverage, similarity and gold-in-evidence of each question of the split, asked in
    the library and (when it names a document) in its document's own workspace (the
    document read from ``pdf_dir``)."""
    library = await app.dispatcher.binding(parse_channel(channel))
    rows = [json.loads(line) for line in set_path.read_text().splitlines() if line.strip()]
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
                    "found": answer.found,
                    # A Chinese question has no similarity floor (bot.knowledge.evidence).
                    "words_only": is_cjk(q["question"]),
                    "where": where,
                    "coverage": answer.timings.get("coverage", 0.0),
                    "best_coverage": answer.timings.get("best_coverage", 0.0),
                    "similarity": answer.timings.get("similarity", 0.0),
                    "lexical": answer.timings.get("lexical", True),
                    "gold_in_evidence": bool(gold)
                    and answer_matches(" ".join(e.text for e in answer.evidence), gold),
                    # What was quoted: a rule on the quotes can be replayed on a dump.
                    "question": q["question"],
                    "quotes": [e.text for e in answer.evidence],
                }
            )
    return out


def kept_by(r: dict[str, Any], c: float, s: float) -> bool:
    """Whether the finder's rule at thresholds (c, s) answers the question of row r."""
    return is_answered(
        r["coverage"], r["similarity"], r["lexical"], c, 0.0 if r.get("words_only") else s
    )


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
    corpus = default_eval_dir().parent / "corpus"
    parser.add_argument("--pdfs", type=Path, help="the set's documents (default: its folder)")
    parser.add_argument(
        "--chinese", action="store_true", help="the Chinese set (realdocs_zh.jsonl)"
    )
    parser.add_argument("--dump", type=Path)
    evidence_rule.add_options(parser)
    args = parser.parse_args()
    set_path = SET_ZH if args.chinese else SET
    documents = args.pdfs or corpus / ("office" if args.chinese else "pdfs")

    async def run(app: App) -> list[dict[str, Any]]:
        evidence_rule.apply(app.answerer.finder, args)
        return await features(app, args.channel, args.split, documents, set_path)

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
