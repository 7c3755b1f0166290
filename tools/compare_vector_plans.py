"""Filtered dense search plans on pgvector 0.8, side by side on one table.

Today's plan (``bot/store/search.py``) gives every workspace above 3,000 chunks a
partial HNSW index of its own, because pgvector before 0.8 filtered after the index
scan.  pgvector 0.8 adds iterative index scans (``hnsw.iterative_scan``), which keep
scanning one shared index until k rows pass the filter, and ``halfvec`` (2-byte
floats).  This tool loads the retrieval benchmark's synthetic corpus (real SQuAD
embeddings mixed into filler vectors, the same generator and shares) into a scratch
database and measures, per workspace share:

- ``own``: a partial HNSW index per workspace on ``vector`` (today's plan);
- ``own_half``: the same on ``halfvec``;
- ``shared``: one HNSW index for all rows on ``vector``, searched with
  ``hnsw.iterative_scan`` off (pgvector 0.6's behaviour: filter after the scan),
  ``relaxed_order`` and ``strict_order``, at ``ef_search`` 160 (today's) and 40
  (pgvector's default);
- ``shared_half``: the same on ``halfvec``;

against an exact scan: p50/p95 latency (client side, one statement), recall@10, the
fewest rows a query returned, the index the planner used, index build time and size.
``hnsw.max_scan_tuples`` is left at pgvector's default (20,000) unless given.

    python tools/compare_vector_plans.py [--rows 200000] [--workspaces 50] [--queries 50]
        [--plans own,own_half,shared,shared_half] [--max-scan-tuples N] [--out FILE]
        [--interleave]

``--interleave`` builds the chosen plans' indexes together and asks each query of each
plan in turn, so that a load coming and going on a shared machine weighs on all alike.

Prints a table and the JSON.  Needs the embedded server (or ``DATABASE_URL``) with
pgvector >= 0.8 and the bundled embedding model.
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

from bot.bench.common import eval_set, read_jsonl, scratch_app
from bot.bench.retrieval import SCALE_SHARES, SEED, _filler, _workspace_sizes
from bot.config import load_settings

K = 10
EF_SEARCH = 160
PLANS = ("own", "own_half", "shared", "shared_half")
# The ways each index is searched: (name, hnsw.iterative_scan, hnsw.ef_search).
MODES = {
    "own": (("", "off", EF_SEARCH),),
    "shared": (
        ("filter_after", "off", EF_SEARCH),
        ("relaxed", "relaxed_order", EF_SEARCH),
        ("strict", "strict_order", EF_SEARCH),
        ("relaxed_ef40", "relaxed_order", 40),
        ("strict_ef40", "strict_order", 40),
    ),
}


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else 0.0


async def _embed(app: Any, texts: list[str]) -> np.ndarray:
    out = await app.inference.embed(texts, key="passage")
    return np.array(out, dtype=np.float32)


def _load(conn: psycopg.Connection, sizes: list[int], base: np.ndarray, dims: int) -> None:
    rng = np.random.default_rng(SEED)
    conn.execute(
        f"CREATE TABLE t (id bigserial PRIMARY KEY, ws int NOT NULL, e vector({dims}) NOT NULL)"
    )
    for ws, size in enumerate(sizes):
        vectors = _filler(base, size, rng)
        with conn.cursor().copy("COPY t (ws, e) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for v in vectors:
                copy.write_row((ws, v))
    conn.execute("CREATE INDEX t_ws_idx ON t (ws)")
    conn.execute("ANALYZE t")


def _index_size(conn: psycopg.Connection, names: list[str]) -> float:
    total = 0
    for name in names:
        total += conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    return round(total / 1024 / 1024, 1)


def _build(conn: psycopg.Connection, plan: str, measured: list[int], dims: int) -> dict:
    started = time.perf_counter()
    names: list[str] = []
    half = "half" in plan
    expr = f"(e::halfvec({dims})) halfvec_cosine_ops" if half else "e vector_cosine_ops"
    if plan.startswith("own"):
        for ws in measured:
            name = f"t_{plan}_w{ws}"
            conn.execute(
                f"CREATE INDEX {name} ON t USING hnsw ({expr}) "
                f"WITH (m = 16, ef_construction = 128) WHERE ws = {ws}"
            )
            names.append(name)
    else:
        name = f"t_{plan}"
        conn.execute(
            f"CREATE INDEX {name} ON t USING hnsw ({expr}) WITH (m = 16, ef_construction = 128)"
        )
        names.append(name)
    return {
        "build_s": round(time.perf_counter() - started, 1),
        "index_mb": _index_size(conn, names),
        "names": names,
    }


def _search(conn: psycopg.Connection, plan: str, ws: int, q: np.ndarray, dims: int) -> list[int]:
    half = "half" in plan
    order = f"e::halfvec({dims}) <=> %(q)s::halfvec({dims})" if half else "e <=> %(q)s"
    return [
        r[0]
        for r in conn.execute(
            # The workspace id is written into the statement, as bot/store/search.py
            # does: a partial index's predicate must be provable when the plan is made.
            f"SELECT id FROM t WHERE ws = {int(ws)} ORDER BY {order} LIMIT {K}",
            {"q": q},
        ).fetchall()
    ]


def _index_used(conn: psycopg.Connection, plan: str, ws: int, q: np.ndarray, dims: int) -> str:
    """The index the planner picks for this search (or the scan it does instead)."""
    half = "half" in plan
    order = f"e::halfvec({dims}) <=> %(q)s::halfvec({dims})" if half else "e <=> %(q)s"
    lines = [
        r[0]
        for r in conn.execute(
            f"EXPLAIN (COSTS OFF) SELECT id FROM t WHERE ws = {int(ws)} ORDER BY {order} LIMIT {K}",
            {"q": q},
        ).fetchall()
    ]
    for line in lines:
        if "Index Scan using t_" in line:
            return line.split("Index Scan using", 1)[1].split()[0]
    return "exact" if any("Sort" in line for line in lines) else lines[-1].strip()


def _exact(conn: psycopg.Connection, ws: int, q: np.ndarray) -> set[int]:
    conn.execute("SET enable_indexscan = off")
    rows = conn.execute(
        f"SELECT id FROM t WHERE ws = %(ws)s ORDER BY e <=> %(q)s LIMIT {K}", {"q": q, "ws": ws}
    ).fetchall()
    conn.execute("RESET enable_indexscan")
    return {r[0] for r in rows}


async def main_async(
    rows: int,
    workspaces: int,
    queries: int,
    chosen: tuple[str, ...] = PLANS,
    max_scan_tuples: int | None = None,
    interleave: bool = False,
) -> dict:
    """Load the corpus into a scratch database and measure every plan on it."""
    settings = load_settings()
    async with scratch_app(settings) as app:
        folder = eval_set(None, "squad-v1.1-dev")
        passages = read_jsonl(folder / "corpus.jsonl")[:2000]
        questions = [q["question"] for q in read_jsonl(folder / "questions.jsonl")]
        random.Random(SEED).shuffle(questions)
        base = await _embed(app, [p["text"] for p in passages])
        qv = np.array(await app.inference.embed(questions[:queries], key="query"), dtype=np.float32)
        url = app.db.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )
        return await asyncio.to_thread(
            _measure, url, base, qv, rows, workspaces, chosen, max_scan_tuples, interleave
        )


def _measure(
    url: str,
    base: np.ndarray,
    qv: np.ndarray,
    rows: int,
    workspaces: int,
    chosen: tuple[str, ...] = PLANS,
    max_scan_tuples: int | None = None,
    interleave: bool = False,
) -> dict[str, Any]:
    dims = base.shape[1]
    results: dict[str, Any] = {"rows": rows, "workspaces": workspaces, "queries": len(qv)}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        results["pgvector"] = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]
        sizes = _workspace_sizes(rows, workspaces)
        started = time.perf_counter()
        _load(conn, sizes, base, dims)
        results["load_s"] = round(time.perf_counter() - started, 1)
        measured = list(range(len(SCALE_SHARES)))
        truths = {ws: [_exact(conn, ws, q) for q in qv] for ws in measured}
        # Without the b-tree on ws the planner's only other way is a scan and sort of
        # the whole table, so every plan below measures its HNSW index (the store picks
        # exact scans itself, for small workspaces; see bot/store/search.py).
        conn.execute("DROP INDEX t_ws_idx")
        # The graph must fit in maintenance_work_mem or a build slows down many times
        # (the store sizes it per index; 1 GB covers 200k rows of 384 dims).
        conn.execute("SET maintenance_work_mem = '1GB'")
        if max_scan_tuples:
            conn.execute(f"SET hnsw.max_scan_tuples = {int(max_scan_tuples)}")
        results["max_scan_tuples"] = int(conn.execute("SHOW hnsw.max_scan_tuples").fetchone()[0])
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        if interleave:
            results["interleaved"] = True
            results["plans"] = _interleaved(conn, chosen, measured, truths, qv, dims, sizes)
            return results
        plans: dict[str, Any] = {}
        for plan in chosen:
            built = _build(conn, plan, measured, dims)
            for mode, iterative, ef in MODES["own" if plan.startswith("own") else "shared"]:
                conn.execute(f"SET hnsw.iterative_scan = {iterative}")
                conn.execute(f"SET hnsw.ef_search = {ef}")
                per_ws = {}
                for ws in measured:
                    for q in qv[:3]:
                        _search(conn, plan, ws, q, dims)  # warm the caches
                    lat, rec, fewest = [], [], K
                    for q, truth in zip(qv, truths[ws], strict=True):
                        t0 = time.perf_counter()
                        got = _search(conn, plan, ws, q, dims)
                        lat.append((time.perf_counter() - t0) * 1000)
                        rec.append(len(truth.intersection(got)) / max(1, len(truth)))
                        fewest = min(fewest, len(got))
                    per_ws[f"{100 * SCALE_SHARES[ws]:.0f}%"] = {
                        "rows": sizes[ws],
                        "p50_ms": round(_percentile(lat, 50), 2),
                        "p95_ms": round(_percentile(lat, 95), 2),
                        "recall": round(float(np.mean(rec)), 4),
                        "fewest_rows": fewest,
                        "index": _index_used(conn, plan, ws, qv[0], dims),
                    }
                name = f"{plan}_{mode}" if mode else plan
                plans[name] = {
                    "build_s": built["build_s"],
                    "index_mb": built["index_mb"],
                    "iterative_scan": iterative,
                    "ef_search": ef,
                    "by_share": per_ws,
                }
                print(json.dumps({name: plans[name]}), flush=True)
            conn.execute("RESET hnsw.iterative_scan")
            for index in built["names"]:
                conn.execute(f"DROP INDEX {index}")
        results["plans"] = plans
    return results


def _interleaved(
    conn: psycopg.Connection,
    chosen: tuple[str, ...],
    measured: list[int],
    truths: dict[int, list[set[int]]],
    qv: np.ndarray,
    dims: int,
    sizes: list[int],
) -> dict[str, Any]:
    """Every chosen plan's indexes at once, each query asked of each plan in turn.

    Side by side, so a load that comes and goes on a shared machine weighs on every
    plan alike.  Only plans whose indexes hold different types can coexist (``own``
    and ``own_half``, or one of each kind of index): the planner picks an index by
    its expression, so two indexes on the same expression would answer each other's
    queries.  Iterative scans are off (the plans' first mode).
    """
    built = {plan: _build(conn, plan, measured, dims) for plan in chosen}
    conn.execute("SET hnsw.iterative_scan = off")
    lat: dict[tuple[str, int], list[float]] = {(p, ws): [] for p in chosen for ws in measured}
    rec: dict[tuple[str, int], list[float]] = {(p, ws): [] for p in chosen for ws in measured}
    fewest = dict.fromkeys(lat, K)
    for ws in measured:
        for plan in chosen:
            for q in qv[:3]:
                _search(conn, plan, ws, q, dims)  # warm the caches
        for i, (q, truth) in enumerate(zip(qv, truths[ws], strict=True)):
            # Alternate which plan goes first, so neither always follows the other.
            order = chosen if i % 2 == 0 else tuple(reversed(chosen))
            for plan in order:
                t0 = time.perf_counter()
                got = _search(conn, plan, ws, q, dims)
                lat[plan, ws].append((time.perf_counter() - t0) * 1000)
                rec[plan, ws].append(len(truth.intersection(got)) / max(1, len(truth)))
                fewest[plan, ws] = min(fewest[plan, ws], len(got))
    plans: dict[str, Any] = {}
    for plan in chosen:
        plans[plan] = {
            "build_s": built[plan]["build_s"],
            "index_mb": built[plan]["index_mb"],
            "iterative_scan": "off",
            "ef_search": EF_SEARCH,
            "by_share": {
                f"{100 * SCALE_SHARES[ws]:.0f}%": {
                    "rows": sizes[ws],
                    "p50_ms": round(_percentile(lat[plan, ws], 50), 2),
                    "p95_ms": round(_percentile(lat[plan, ws], 95), 2),
                    "recall": round(float(np.mean(rec[plan, ws])), 4),
                    "fewest_rows": fewest[plan, ws],
                    "index": _index_used(conn, plan, ws, qv[0], dims),
                }
                for ws in measured
            },
        }
    for plan in chosen:
        for index in built[plan]["names"]:
            conn.execute(f"DROP INDEX {index}")
    return plans


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workspaces", type=int, default=50)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument(
        "--plans", default=",".join(PLANS), help="comma-separated: " + ",".join(PLANS)
    )
    parser.add_argument("--max-scan-tuples", type=int, default=None)
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="build the plans' indexes together and ask each query of each in turn "
        "(plans of different types only, e.g. own,own_half); iterative scans off",
    )
    args = parser.parse_args()
    chosen = tuple(p for p in args.plans.split(",") if p)
    unknown = set(chosen) - set(PLANS)
    if unknown:
        parser.error(f"unknown plans {sorted(unknown)}; choose from {', '.join(PLANS)}")
    if args.interleave and len({"half" in p for p in chosen}) != len(chosen):
        parser.error("--interleave needs plans whose indexes hold different types")
    started = time.perf_counter()
    results = asyncio.run(
        main_async(
            args.rows,
            args.workspaces,
            args.queries,
            chosen,
            args.max_scan_tuples,
            args.interleave,
        )
    )
    results["wall_s"] = round(time.perf_counter() - started)
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print(f"pgvector {results['pgvector']}, {results['rows']} rows, {results['workspaces']} ws")
    print("plan | build s | index MB | share: p50/p95 ms recall fewest index")
    for plan, r in results["plans"].items():
        cells = [
            f"{share} {v['p50_ms']}/{v['p95_ms']} {v['recall']} {v['fewest_rows']} {v['index']}"
            for share, v in r["by_share"].items()
        ]
        print(f"{plan} | {r['build_s']} | {r['index_mb']} | " + " ; ".join(cells))


if __name__ == "__main__":
    main()
