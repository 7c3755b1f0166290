"""Side by side, in one run: ``Retriever.search`` with and without the similarity of the
chunks only the keyword search found (``Retriever._keyword_only_similarities``),
alternating which goes first, over every question of ``bot/bench/realdocs.jsonl`` twice.

    LIBRARIAN_HOME=H python tools/keyword_similarity_latency.py [--channel console:rd]

H: a home where ``librarian ingest ../shared/corpus/pdfs/*.pdf --channel console:rd`` ran.
Prints p50 / p95 in ms for each and their ratios, as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bot.bench.common import percentile, read_jsonl
from bot.cli.common import parse_channel, with_app
from bot.knowledge.retrieval import Retriever
from bot.store.records import ChunkHit

SET = Path(__file__).resolve().parents[1] / "bot" / "bench" / "realdocs.jsonl"


class WithoutFill(Retriever):
    """The retriever as it was: keyword-only chunks keep no similarity."""

    async def _keyword_only_similarities(
        self,
        workspace_id: int,
        model_id: int,
        dims: int,
        vector: Any,
        fused: list[tuple[ChunkHit, float]],
    ) -> dict[int, float]:
        return {}


def main() -> None:
    """Time both retrievers on the same questions and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channel", default="console:rd")
    args = parser.parse_args()
    questions = [row["question"] for row in read_jsonl(SET)] * 2

    async def run(app: Any) -> dict[str, Any]:
        binding = await app.dispatcher.binding(parse_channel(args.channel))
        new = app.answerer.retriever
        old = WithoutFill(new.store, new.inference, new._embedding_model, margin=new.margin)
        ms: dict[str, list[float]] = {"without": [], "with": []}
        for i, question in enumerate(questions):
            pair = [("without", old), ("with", new)]
            for name, retriever in pair if i % 2 else reversed(pair):
                started = time.perf_counter()
                await retriever.search(binding.workspace, [question])
                ms[name].append((time.perf_counter() - started) * 1000)
        out: dict[str, Any] = {
            name: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)}
            for name, v in ms.items()
        }
        for q in ("p50", "p95"):
            out[f"ratio_{q}"] = round(out["with"][q] / out["without"][q], 3)
        return out

    out = with_app(run)
    print("search ms      p50     p95")
    for name in ("without", "with"):
        print(f"{name:<10} {out[name]['p50']:7.2f} {out[name]['p95']:7.2f}")
    print(f"ratio      {out['ratio_p50']:7.3f} {out['ratio_p95']:7.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
