"""How well each signal tells answerable questions from unanswerable ones (ROC AUC).

Runs retrieval and the evidence step for every question of one split of
``bot/bench/realdocs.jsonl``, in the library workspace (as ``calibrate_evidence.py``),
and prints the AUC of:

* ``coverage`` and ``similarity``: what the answerability rule uses today;
* ``quote_similarity``: the best cosine of the question to a quoted sentence's own
  embedding (not its chunk's), the signal ``embed_sentences`` would add;
* ``coverage+quote_similarity``: the two summed;
* with ``--judge``: the chat model asked "does the passage state the answer? Yes or
  No" over the quotes (1 for a reply starting with yes).  Slow: one model call per
  question.

An AUC of 0.5 is a coin; 1.0 separates every pair.

    LIBRARIAN_HOME=/tmp/rd-home python tools/answerability_signals.py --split calibrate --judge
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from calibrate_evidence import SET  # tools/ is on sys.path when run as a script

from bot.app import App
from bot.cli.common import parse_channel, with_app

JUDGE = (
    "Passage:\n{passage}\n\nQuestion: {question}\n\n"
    "Does the passage state the answer to the question? Reply Yes or No."
)


def auc(positive: list[float], negative: list[float]) -> float:
    """The chance a random answerable question scores above a random unanswerable one."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


async def signals(app: App, channel: str, split: str, judge: bool) -> list[dict[str, Any]]:
    """Each question's signals."""
    finder = app.answerer.finder
    seen: dict[str, Any] = {}
    find = finder.find

    async def keep(question: str, vector: Any, hits: Any, **kw: Any) -> Any:
        evidence = await find(question, vector, hits, **kw)
        seen["vector"], seen["evidence"] = vector, evidence
        return evidence

    finder.find = keep  # the evidence step as the answerer runs it, its inputs kept
    binding = await app.dispatcher.binding(parse_channel(channel))
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    out = []
    for q in rows:
        if q["split"] != split:
            continue
        seen.clear()
        await app.answerer.answer(
            binding,
            f"signals-{q['id']}",
            q["question"],
            author="signals",
            conversation_key="s",
            remember=False,
            evidence_only=True,
        )
        evidence = seen.get("evidence")
        if evidence is None or not evidence.quotes or seen.get("vector") is None:
            continue
        quotes = [qt.text for qt in evidence.quotes]
        vectors = np.asarray(await finder.embed(quotes))
        question_vector = np.asarray(seen["vector"], dtype=np.float32).reshape(-1)
        row = {
            "id": q["id"],
            "answerable": q["kind"] == "answerable",
            "coverage": evidence.coverage if evidence.lexical else 0.5,
            "similarity": evidence.similarity,
            "quote_similarity": float((vectors @ question_vector).max()),
        }
        row["coverage+quote_similarity"] = row["coverage"] + row["quote_similarity"]
        if judge:
            prompt = JUDGE.format(passage="\n".join(quotes), question=q["question"])
            stream = await app.inference.chat_stream(
                None,
                [{"role": "user", "content": prompt}],
                "signals",
                max_tokens=3,
                temperature=0.0,
            )
            reply = "".join([piece async for piece in stream if isinstance(piece, str)])
            row["judge"] = 1.0 if reply.strip().lower().startswith("yes") else 0.0
        out.append(row)
    return out


def main() -> None:
    """Print each signal's AUC on the split."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channel", default="console:rd", help="the library's channel")
    parser.add_argument("--split", default="calibrate")
    parser.add_argument("--judge", action="store_true", help="ask the chat model too")
    args = parser.parse_args()

    async def run(app: App) -> list[dict[str, Any]]:
        return await signals(app, args.channel, args.split, args.judge)

    rows = with_app(run)
    names = [k for k in rows[0] if k not in ("id", "answerable")] if rows else []
    answerable = sum(r["answerable"] for r in rows)
    print(f"{args.split}: {answerable} answerable, {len(rows) - answerable} unanswerable")
    for name in names:
        pos = [r[name] for r in rows if r["answerable"]]
        neg = [r[name] for r in rows if not r["answerable"]]
        extra = ""
        if name == "judge":
            extra = f"  (yes: answerable {np.mean(pos):.2f}, unanswerable {np.mean(neg):.2f})"
        print(f"  {name:28s} AUC {auc(pos, neg):.3f}{extra}")


if __name__ == "__main__":
    main()
