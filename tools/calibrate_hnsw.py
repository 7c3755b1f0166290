"""How wide an HNSW search of one large workspace must be: recall and latency by ef_search.

The retrieval benchmark's largest workspace at 1M chunks holds 500,000 rows, and with
one ``ef_search`` for every size (160) its recall@10 against the exact scan fell to
0.973-0.984, with single queries finding none of their 10 neighbours.  This tool
builds one workspace like it from the benchmark's own filler generator
(``bot.bench.retrieval._filler``: real SQuAD paragraph embeddings mixed and noised),
**drawn from a seed other than the benchmark's** so that constants are not tuned on
the data they are reported on, and measures, for each build (m, ef_construction) and
each search breadth (ef_search), against an exact top 10 computed with numpy:

- mean recall@10, the worst query, and how many queries found fewer than 5 of 10;
- p50/p95 of the search statement alone (client side; the machine may be shared);
- with ``--rerank N``: the same when the index's first N rows (by halfvec distance)
  are re-ordered by full-precision distance before the top 10 are kept.

``--column halfvec`` stores the vectors themselves as halfvec (today the column is
``vector`` and only the index holds halfvec) and reports, beside the index's recall,
the table's size and an exact scan of ``--exact-rows`` rows (the largest workspace
searched exactly): its p50/p95 and its recall against the float32 top 10.

    python tools/calibrate_hnsw.py [--rows 500000] [--seed 7] [--queries 300]
        [--builds 16:128] [--ef 160,240,320] [--rerank 0,20] [--kind halfvec]
        [--column vector|halfvec] [--exact-rows 3000] [--out FILE]

The index is built on a one-workspace table as the store builds a workspace's own
index (same expression, operator class and maintenance_work_mem rule).  Needs the
embedded server (or ``DATABASE_URL``) with pgvector >= 0.7 for halfvec, and the
bundled embedding model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bot.bench.common import eval_set, passage_document, read_jsonl, scratch_app
from bot.bench.retrieval import _filler
from bot.config import load_settings

K = 10


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else 0.0


def _truths(vectors: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    """The exact top K ids (1-based, as bigserial gives them) of every query, by cosine."""
    out: list[set[int]] = []
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64]
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        sims = q @ vectors.T  # the filler is unit length
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        out += [{int(i) + 1 for i in row} for row in top]
    return out


def _order(kind: str, dims: int) -> str:
    return f"e::{kind}({dims}) <=> %(q)s::{kind}({dims})"


def _search(conn: psycopg.Connection, sql: str, q: np.ndarray) -> list[int]:
    return [r[0] for r in conn.execute(sql, {"q": q}).fetchall()]


def _exact_scan(
    conn: psycopg.Connection, vectors: np.ndarray, queries: np.ndarray, n: int, column: str
) -> dict[str, Any]:
    """An exact scan of the first ``n`` rows, as the store runs one: time and recall."""
    dims = vectors.shape[1]
    truths = _truths(vectors[:n], queries)
    sql = (
        f"SELECT id FROM (SELECT id, e FROM t WHERE id <= {int(n)} OFFSET 0) s "
        f"ORDER BY e <=> %(q)s::{column}({dims}) LIMIT {K}"
    )
    for q in queries[:3]:
        _search(conn, sql, q)  # warm
    lat, rec = [], []
    for q, truth in zip(queries, truths, strict=True):
        t0 = time.perf_counter()
        got = _search(conn, sql, q)
        lat.append((time.perf_counter() - t0) * 1000)
        rec.append(len(truth.intersection(got)) / K)
    return {
        "rows": n,
        "p50_ms": round(_percentile(lat, 50), 2),
        "p95_ms": round(_percentile(lat, 95), 2),
        "recall": round(float(np.mean(rec)), 4),
    }


def _measure(
    url: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    builds: list[tuple[int, int]],
    efs: list[int],
    reranks: list[int],
    kind: str,
    column: str = "vector",
    exact_rows: int = 3000,
) -> dict[str, Any]:
    rows, dims = vectors.shape
    truths = _truths(vectors, queries)
    results: dict[str, Any] = {
        "rows": rows,
        "queries": len(queries),
        "kind": kind,
        "column": column,
        "runs": [],
    }
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        results["pgvector"] = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]
        conn.execute(f"CREATE TABLE t (id bigserial PRIMARY KEY, e vector({dims}) NOT NULL)")
        started = time.perf_counter()
        with conn.cursor().copy("COPY t (e) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["vector"])
            for v in vectors:
                copy.write_row((v,))
        if column != "vector":
            conn.execute(f"ALTER TABLE t ALTER COLUMN e TYPE {column}({dims})")
        conn.execute("VACUUM ANALYZE t")
        results["load_s"] = round(time.perf_counter() - started, 1)
        results["table_mb"] = round(
            conn.execute("SELECT pg_table_size('t')").fetchone()[0] / 2**20, 1
        )
        results["exact_scan"] = _exact_scan(conn, vectors, queries, exact_rows, column)
        print(json.dumps({"table_mb": results["table_mb"], **results["exact_scan"]}), flush=True)
        # The store's rule (bot/store/search.py, ensure_workspace_index).
        need_mb = min(2048, max(64, rows * (4 * dims + 600) // 1_000_000 + 32))
        conn.execute(f"SET maintenance_work_mem = '{need_mb}MB'")
        # An index on the column itself when it holds the index's type already.
        indexed = "e" if column == kind else f"(e::{kind}({dims}))"
        order = f"e <=> %(q)s::{kind}({dims})" if column == kind else _order(kind, dims)
        for m, efc in builds:
            started = time.perf_counter()
            conn.execute(
                f"CREATE INDEX t_hnsw ON t USING hnsw ({indexed} {kind}_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {efc})"
            )
            build_s = round(time.perf_counter() - started, 1)
            size_mb = round(
                conn.execute("SELECT pg_relation_size('t_hnsw')").fetchone()[0] / 2**20, 1
            )
            for ef in efs:
                conn.execute(f"SET hnsw.ef_search = {ef}")
                for rerank in reranks:
                    if rerank:
                        sql = (
                            f"SELECT id FROM (SELECT id, e FROM t ORDER BY {order} "
                            f"LIMIT {rerank}) s ORDER BY e <=> %(q)s LIMIT {K}"
                        )
                    else:
                        sql = f"SELECT id FROM t ORDER BY {order} LIMIT {K}"
                    for q in queries[:3]:
                        _search(conn, sql, q)  # warm
                    lat: list[float] = []
                    rec: list[float] = []
                    for q, truth in zip(queries, truths, strict=True):
                        t0 = time.perf_counter()
                        got = _search(conn, sql, q)
                        lat.append((time.perf_counter() - t0) * 1000)
                        rec.append(len(truth.intersection(got)) / K)
                    run = {
                        "m": m,
                        "ef_construction": efc,
                        "build_s": build_s,
                        "index_mb": size_mb,
                        "ef_search": ef,
                        "rerank": rerank,
                        "recall": round(float(np.mean(rec)), 4),
                        "worst_query": round(min(rec), 2),
                        "queries_below_half": sum(r < 0.5 for r in rec),
                        "p50_ms": round(_percentile(lat, 50), 2),
                        "p95_ms": round(_percentile(lat, 95), 2),
                    }
                    results["runs"].append(run)
                    print(json.dumps(run), flush=True)
            conn.execute("DROP INDEX t_hnsw")
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Embed the corpus and the questions, then build and measure on a scratch database."""
    settings = load_settings()
    async with scratch_app(settings) as app:
        folder = eval_set(None, "squad-v1.1-dev")
        passages = read_jsonl(folder / "corpus.jsonl")
        questions = [q["question"] for q in read_jsonl(folder / "questions.jsonl")]
        random.Random(args.seed).shuffle(questions)
        texts = [passage_document(p).decode() for p in passages]
        base = np.array(await app.inference.embed(texts, key="passage"), dtype=np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries = np.array(
            await app.inference.embed(questions[: args.queries], key="query"), dtype=np.float32
        )
        vectors = _filler(base, args.rows, np.random.default_rng(args.seed))
        url = app.db.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )
        builds = [tuple(int(x) for x in b.split(":")) for b in args.builds.split(",")]
        return await asyncio.to_thread(
            _measure,
            url,
            vectors,
            queries,
            builds,  # type: ignore[arg-type]
            [int(x) for x in args.ef.split(",")],
            [int(x) for x in args.rerank.split(",")],
            args.kind,
            args.column,
            args.exact_rows,
        )


def main() -> None:
    """Run the calibration and print a table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7, help="filler and question sample")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--builds", default="16:128", help="m:ef_construction, comma-separated")
    parser.add_argument("--ef", default="160,240,320", help="ef_search values")
    parser.add_argument("--rerank", default="0", help="0 (off) or rows re-ordered exactly")
    parser.add_argument("--kind", default="halfvec", choices=("halfvec", "vector"))
    parser.add_argument("--column", default="vector", choices=("vector", "halfvec"))
    parser.add_argument("--exact-rows", type=int, default=3000, help="rows of the exact scan")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    if args.column == "halfvec" and args.rerank != "0":
        parser.error("--rerank re-orders by the float32 column: not with --column halfvec")
    started = time.perf_counter()
    results = asyncio.run(main_async(args))
    results["seed"] = args.seed
    results["wall_s"] = round(time.perf_counter() - started)
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print(
        f"pgvector {results['pgvector']}, {results['rows']} rows, seed {args.seed}, "
        f"column {args.column} ({results['table_mb']} MB); exact scan {results['exact_scan']}"
    )
    print("m | ef_c | build s | MB | ef | rerank | recall | worst | <0.5 | p50/p95 ms")
    for r in results["runs"]:
        print(
            f"{r['m']} | {r['ef_construction']} | {r['build_s']} | {r['index_mb']} | "
            f"{r['ef_search']} | {r['rerank']} | {r['recall']} | {r['worst_query']} | "
            f"{r['queries_below_half']} | {r['p50_ms']}/{r['p95_ms']}"
        )


if __name__ == "__main__":
    main()
