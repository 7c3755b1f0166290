"""Calibrate the check's support floor on the default model's drafts (calibrate split).

Asks every question of one split of ``bot/bench/realdocs.jsonl`` in the library
workspace, through the whole path with the workspace's chat model, and keeps each
draft the model wrote (posted or not) with the text it was checked against: the
evidence quoted under it (since session 9; before, every candidate chunk).  It prints
the support (``bot.knowledge.check.support``) of the drafts long enough to have one,
those that state a gold answer and the others, and the floor the rule picks: the
highest multiple of 0.05 that keeps every draft stating the gold.  The report split is
never read here.

    LIBRARIAN_HOME=/tmp/rd-home python tools/calibrate_support.py --split calibrate
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from calibrate_evidence import SET  # tools/ is on sys.path when run as a script

from bot.app import App
from bot.bench.grounding import answer_matches
from bot.cli.common import parse_channel, with_app
from bot.knowledge.check import support


async def drafts(app: App, channel: str, split: str) -> list[dict[str, Any]]:
    """Each draft with its support and whether it states a gold answer."""
    binding = await app.dispatcher.binding(parse_channel(channel))
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    out = []
    for q in rows:
        if q["split"] != split:
            continue
        answer = await app.answerer.answer(
            binding,
            f"support-{q['id']}",
            q["question"],
            author="support",
            conversation_key=f"support-{q['id']}",
            remember=False,
        )
        sources = "\n".join(q.text for q in answer.evidence)  # what the check compares with
        share = support(answer.draft or "", sources)
        if share is None:
            continue  # no draft, or too short for a share: names and numbers decide
        gold = q.get("answers") or []
        out.append(
            {
                "id": q["id"],
                "kind": q["kind"],
                "draft": answer.draft,
                "checked": answer.checked,
                "support": round(share, 3),
                "states_gold": bool(gold) and answer_matches(answer.draft, gold),
            }
        )
    return out


def main() -> None:
    """Print the supports and the floor the rule picks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channel", default="console:rd", help="the library's channel")
    parser.add_argument("--split", default="calibrate")
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args()

    async def run(app: App) -> list[dict[str, Any]]:
        return await drafts(app, args.channel, args.split)

    rows = with_app(run)
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    gold = sorted(r["support"] for r in rows if r["states_gold"])
    other = sorted(r["support"] for r in rows if not r["states_gold"])
    print(f"{len(rows)} drafts ({args.split}), {len(gold)} state a gold answer")
    print("  support of those stating the gold:", gold)
    print("  support of the others:            ", other)
    if gold:
        floor = int(gold[0] * 20) / 20  # down to a multiple of 0.05
        refused = sum(1 for s in other if s < floor)
        print(f"floor {floor:.2f}: keeps all {len(gold)}; refuses {refused} of {len(other)} others")


if __name__ == "__main__":
    main()
