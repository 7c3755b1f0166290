"""Replay the answer check on a grounding benchmark's posted drafts.

The check (``bot.knowledge.check.check_answer``) is deterministic given the draft, the
quotes shown under it and the question, so a change to it can be measured on a
benchmark's ``--dump`` without running the model again: each draft the model's answer
was posted for is checked anew against the quotes of its reply (and replaced when it
only recites them, ``bot.knowledge.draft.only_recites``), and the drafts that would now
be replaced are listed, with whether they stated a gold answer.

    librarian bench grounding --set realdocs --split calibrate --dump /tmp/cal.json
    python tools/replay_check.py /tmp/cal.json

(The words no document holds, which the bot also passes to the check, are not in the
dump: a rule on them is not replayed here.)
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

from bot.bench.grounding import answer_matches  # noqa: E402
from bot.knowledge.check import check_answer  # noqa: E402
from bot.knowledge.draft import only_recites  # noqa: E402
from bot.knowledge.quoting import reply_quotes  # noqa: E402
from bot.knowledge.texts import TEXTS  # noqa: E402

SETS = [REPO / "bot" / "bench" / "realdocs.jsonl", REPO / "bot" / "bench" / "realdocs_zh.jsonl"]


def quotes_of(reply: str) -> list[str]:
    """The evidence quoted under a posted answer, in any of the bot's languages."""
    for texts in TEXTS.values():
        head = f"\n\n{texts['evidence']}\n"
        if head in reply:
            block = reply.split(head, 1)[1].split(f"\n\n{texts['sources']}", 1)[0]
            return reply_quotes(block)
    return []


def replay(rows: list[dict[str, Any]], gold: dict[str, list[str]]) -> tuple[int, int, int]:
    """(posted, now replaced without a gold answer, now replaced with one), printing each
    draft that would now be replaced."""
    posted = without = with_gold = 0
    for row in rows:
        if not row.get("model_posted"):
            continue
        posted += 1
        draft = row["draft"] or ""
        quotes = quotes_of(row["reply"])
        result = check_answer(
            draft, "\n".join(quotes), row["question"], best=quotes[0] if quotes else None
        )
        if result.passed and not only_recites(draft, quotes):
            continue
        why = result.unsupported if not result.passed else ["recites the evidence"]
        stated = answer_matches(draft, gold.get(row["id"], []))
        with_gold += stated
        without += not stated
        print(f"{row['id']}: now replaced ({', '.join(why)}); gold stated: {stated}")
    return posted, without, with_gold


def main() -> None:
    """Replay each dump given and print what would change."""
    parser = argparse.ArgumentParser()
    parser.add_argument("dumps", nargs="+", type=Path)
    args = parser.parse_args()
    gold: dict[str, list[str]] = {}
    for path in SETS:
        for line in path.read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                gold[item["id"]] = item.get("answers") or []
    for dump in args.dumps:
        for name, rows in json.loads(dump.read_text()).items():
            posted, without, with_gold = replay(rows, gold)
            print(
                f"{dump.name} {name}: {posted} drafts posted; now replaced: {without} without "
                f"a gold answer, {with_gold} with one"
            )


if __name__ == "__main__":
    main()
