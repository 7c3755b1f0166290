"""Side by side, in one run: ``Retriever.search`` with and without the similarity of the
chunks only the keyword search found (``Retriever._with_similarity``), alternating which
goes first, over every question of ``bot/bench/realdocs.jsonl`` twice.

    LIBRARIAN_HOME=H python tools/keyword_similarity_latency.py [--channel console:rd]

H: a home where ``librarian ingest ../shared/corpus/pdfs/*.pdf --channel console:rd`` ran.
Prints p50 / p95 in ms for each and their ratios (JSON).
"""

import json
import pathlib
import sys
import time

from bot.cli.common import parse_channel, with_app
from bot.knowledge.retrieval import Retriever

SET = pathlib.Path(__file__).resolve().parents[1] / "bot" / "bench" / "realdocs.jsonl"
rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
CHANNEL = sys.argv[sys.argv.index("--channel") + 1] if "--channel" in sys.argv else "console:rd"


class Old(Retriever):
    async def _with_similarity(self, w, m, d, v, fused):
        return fused, set()


async def main(app):
    b = await app.dispatcher.binding(parse_channel(CHANNEL))
    new = app.answerer.retriever
    old = Old(new.store, new.inference, new._embedding_model, margin=new.margin)
    t = {"old": [], "new": []}
    qs = [r["question"] for r in rows] * 2
    for i, q in enumerate(qs):
        for name, r in (("old", old), ("new", new)) if i % 2 else (("new", new), ("old", old)):
            t0 = time.perf_counter()
            await r.search(b.workspace, [q])
            t[name].append((time.perf_counter() - t0) * 1000)

    def pct(x, p):
        x = sorted(x)
        return x[min(len(x) - 1, int(p / 100 * len(x)))]

    out = {
        k: {"p50": round(pct(v, 50), 2), "p95": round(pct(v, 95), 2), "n": len(v)}
        for k, v in t.items()
    }
    out["ratio_p50"] = round(out["new"]["p50"] / out["old"]["p50"], 3)
    out["ratio_p95"] = round(out["new"]["p95"] / out["old"]["p95"], 3)
    print(json.dumps(out))


with_app(main)
