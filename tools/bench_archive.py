"""How much each zipped office file and e-book of the corpus inflates while it is read,
and how long reading it takes: every .docx, .pptx, .xlsx, .odt, .ods, .odp and .epub of
../shared/corpus/office, through ``bot.ingest.extract.extract`` in this process (no
sandbox, so the figures are the reader's alone).

    python tools/bench_archive.py [--json] [--runs N]

``inflated_mb`` counts every byte zlib inflates, by the archive checks and by the
parsing library together (``zipfile``'s decompressor is wrapped to count them);
``inflated_x`` divides it by the sum of the archive's declared member sizes: 1.0 when
each member was inflated once, less when some are stored uncompressed in the file (as
Office stores some images) or never read (ODF's styles and thumbnails), 2.0 when every
member was inflated twice.  ``cpu_ms`` is the median process time of
``--runs`` reads after one warm-up.  Run it with another checkout first on
``PYTHONPATH`` to compare two versions of the readers.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OFFICE = ROOT.parent / "shared" / "corpus" / "office"
ZIPPED = (".docx", ".pptx", ".xlsx", ".xlsm", ".odt", ".ods", ".odp", ".epub")

_inflated = 0


class _Counting:
    """A zlib decompressor that counts what it returns."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        global _inflated
        out = self._inner.decompress(data, max_length)
        _inflated += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _count_inflation() -> None:
    original = zipfile._get_decompressor  # noqa: SLF001 - the one place zipfile inflates

    def counting(compress_type: int) -> Any:
        inner = original(compress_type)
        return _Counting(inner) if compress_type == zipfile.ZIP_DEFLATED else inner

    zipfile._get_decompressor = counting  # noqa: SLF001


def measure(path: Path, runs: int) -> dict[str, Any]:
    """One file's inflated bytes (one read) and median CPU time (``runs`` reads)."""
    from bot.ingest.extract import extract

    global _inflated
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    _inflated = 0
    extract(data, path.name)
    inflated = _inflated
    times = []
    for _ in range(runs):
        started = time.process_time()
        extract(data, path.name)
        times.append((time.process_time() - started) * 1000)
    return {
        "file": path.name,
        "declared_mb": round(declared / 2**20, 2),
        "inflated_mb": round(inflated / 2**20, 2),
        "inflated_x": round(inflated / declared, 2) if declared else 0.0,
        "cpu_ms": round(statistics.median(times), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures as a table, or as JSON with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--runs", type=int, default=5, help="timed reads per file (default 5)")
    args = parser.parse_args(argv)
    if not OFFICE.is_dir():
        print(f"The corpus is not at {OFFICE}.", file=sys.stderr)
        return 2
    _count_inflation()
    rows = [measure(p, args.runs) for p in sorted(OFFICE.iterdir()) if p.suffix in ZIPPED]
    total = {
        "declared_mb": round(sum(r["declared_mb"] for r in rows), 2),
        "inflated_mb": round(sum(r["inflated_mb"] for r in rows), 2),
        "cpu_ms": round(sum(r["cpu_ms"] for r in rows), 1),
    }
    if args.json:
        print(json.dumps({"files": rows, "total": total}, indent=2))
        return 0
    print(f"{'file':52} {'declared MB':>11} {'inflated MB':>11} {'x':>5} {'CPU ms':>8}")
    for r in rows:
        print(
            f"{r['file']:52} {r['declared_mb']:>11} {r['inflated_mb']:>11} "
            f"{r['inflated_x']:>5} {r['cpu_ms']:>8}"
        )
    sums = f"{total['declared_mb']:>11} {total['inflated_mb']:>11} {'':>5} {total['cpu_ms']:>8}"
    print(f"{'total':52} {sums}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
