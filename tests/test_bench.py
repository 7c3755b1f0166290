"""`librarian bench ... --quick --json` on a fresh database: the keys exist, values are sane.

These assert behaviour (the benchmarks run end to end and report what they promise),
not speed: the figures depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _eval_dir() -> Path:
    for candidate in (REPO.parent / "shared" / "eval", Path("/work/shared/eval")):
        if (candidate / "squad-v1.1-dev" / "corpus.jsonl").is_file():
            return candidate
    pytest.skip("the shared evaluation sets (shared/eval) are not beside this checkout")


def _bench(name: str, env: dict[str, str], models: Path, *options: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "bench", name, "--quick", "--json", *options]
        + ["--eval-dir", str(_eval_dir())],
        env={**os.environ, **env, "LIBRARIAN_MODELS_PATH": str(models)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def _scratch_databases(url: str) -> set[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database")).scalars()
            return {n for n in names if n.startswith("librarian_bench")}
    finally:
        engine.dispose()


def test_retrieval_bench_quick(librarian_env: dict[str, str], shared_models: Path) -> None:
    data = _bench("retrieval", librarian_env, shared_models)
    for mode in ("dense", "keyword", "hybrid"):
        recalls = [_get(data, f"squad.{mode}.recall@{k}") for k in (1, 5, 10)]
        assert all(0.0 <= r <= 1.0 for r in recalls)
        assert recalls == sorted(recalls)  # recall@k never falls as k grows
    assert _get(data, "squad.hybrid.recall@10") > 0.5
    p50, p95 = _get(data, "squad.latency_ms.p50"), _get(data, "squad.latency_ms.p95")
    assert 0 < p50 <= p95
    assert _get(data, "scale.latency_ms.p95") > 0
    assert 0.5 <= _get(data, "scale.recall_vs_exact_min") <= 1.0
    # The exact top 10 the recall is measured against (computed from the loaded
    # vectors) is the server's own exact scan's.
    for share, row in _get(data, "scale.by_workspace").items():
        assert row["truth_vs_server_exact"] >= 0.98, (share, row)
    assert _get(data, "scale.rows") >= 20_000
    # The quick run lowers the exact-scan threshold so that every plan is exercised:
    # the large workspaces got indexes of their own and were searched through them.
    assert _get(data, "scale.plans").get("workspace_hnsw", 0) > 0
    assert _get(data, "scale.plans").get("exact", 0) > 0
    # What the index build took and what the chunks and their indexes occupy.
    assert _get(data, "scale.index_s") >= 0
    storage = _get(data, "scale.storage")
    assert 0 < storage["hnsw_indexes_mb"] < storage["chunks_total_mb"] <= storage["database_mb"]
    assert storage["shared_buffers_mb"] >= 128  # the embedded server's sizing floor
    assert _get(data, "scale.bot_peak_rss_mb") > 0
    # The filtered-search guarantee: every measured workspace gave its k rows.
    assert _get(data, "scale.fewest_rows") == _get(data, "scale.k") == 10
    # The test server has pgvector 0.8: its large workspaces got halfvec indexes.
    assert _get(data, "scale.pgvector").startswith("0.8")
    assert _get(data, "scale.vector_path") == "0.8"
    assert _get(data, "scale.index_kind") == "halfvec"
    # The scratch database is gone.
    assert _scratch_databases(librarian_env["DATABASE_URL"]) == set()


def test_ingest_bench_quick(librarian_env: dict[str, str], shared_models: Path) -> None:
    data = _bench("ingest", librarian_env, shared_models)
    assert data["pages"] == 12 and data["chunks"] >= data["pages"]
    assert data["pages_per_s"] > 0
    assert 0 < data["ratio"] <= 1.5
    # Pages per second per format: the same 4 pages as text and as Markdown, next to PDF.
    formats = data["formats"]
    assert formats["pdf"]["pages"] == 12 and formats["pdf"]["pages_per_s"] > 0
    for kind in ("text", "markdown"):
        assert formats[kind]["indexed"] == 1 and formats[kind]["pages"] == 4
        assert formats[kind]["pages_per_s"] > 0
    # The real office files, one per extension: indexed with pages/s, or refused with why.
    for ext, row in data["corpus"].items():
        assert row["indexed"] + len(row.get("refused", {})) == row["files"], ext
        assert (row["pages_per_s"] is None) == (row["indexed"] == 0), ext
    # OCR pages/s over the images of the corpus: None until images are read.
    assert (data["ocr"]["pages_per_s"] is None) == (data["ocr"]["pages"] == 0)


def test_grounding_bench_quick(librarian_env: dict[str, str], shared_models: Path) -> None:
    data = _bench("grounding", librarian_env, shared_models)
    keys = ("fact_in_reply", "gold_in_evidence", "page_cited", "not_found", "replaced")
    for name in ("squad_v2", "realdocs"):
        for kind in ("answerable", "unanswerable"):
            for key in keys:
                assert 0.0 <= _get(data, f"{name}.{kind}.{key}") <= 1.0
    # Two of each kind (each answer costs the model ~5 s): every step runs and reports.
    assert _get(data, "squad_v2.answerable.questions") == 2
    assert _get(data, "squad_v2.unanswerable.questions") == 2
    # The quick real-document set: the Federal Register notice's report-split questions.
    assert _get(data, "realdocs.answerable.questions") == 3
    assert _get(data, "realdocs.documents") == 1


def test_grounding_bench_asks_the_chinese_questions_of_the_chinese_files(
    librarian_env: dict[str, str], shared_models: Path
) -> None:
    # Asked as a team asks in a channel: one remembered thread per kind.
    data = _bench("grounding", librarian_env, shared_models, "--set", "chinese", "--conversation")
    assert set(data) >= {"chinese"} and "squad_v2" not in data and "realdocs" not in data
    assert _get(data, "chinese.documents") == 3
    assert _get(data, "chinese.answerable.questions") == 2
    assert _get(data, "chinese.unanswerable.questions") == 2
    # A Chinese gold string has no spaces around it: it is found inside the reply's
    # sentence (a matcher comparing whole words would score every Chinese reply 0).
    assert _get(data, "chinese.answerable.gold_in_evidence") > 0
    # The bundled model's file says it writes English: no Chinese question is put to it,
    # and every reply found is the evidence.
    assert _get(data, "chinese.answerable.prompt_tokens_p50") == 0
    assert _get(data, "chinese.answerable.model_posted") == 0


def test_table_output_is_readable() -> None:
    from bot.bench.report import format_table

    table = format_table(
        "Retrieval benchmark",
        {"squad": {"hybrid": {"recall@5": 0.96}}, "seconds": 12.0},
        {"squad.hybrid.recall@5": ">= 0.95"},
    )
    assert "squad.hybrid.recall@5" in table and "0.96" in table and "goal >= 0.95" in table


def test_retrieval_bench_scale_is_sized_by_its_options() -> None:
    from bot.bench.retrieval import FULL, QUICK, scaled

    assert scaled(FULL, None, None) == FULL
    million = scaled(FULL, 1_000_000, None)
    assert (million.scale_rows, million.scale_workspaces) == (1_000_000, 500)
    assert scaled(QUICK, 30_000, 12).scale_workspaces == 12
    with pytest.raises(ValueError, match="more than"):
        scaled(FULL, 10_000, 3)


def test_a_reply_states_the_gold_fact_in_typographic_quotes_or_in_chinese() -> None:
    from bot.bench.grounding import answer_matches

    # The reply quotes the document, whose quotation marks are typographic.
    reply = "the model associates it with “Inductive_Logic_Programming” as the referent"
    assert answer_matches(reply, ["Inductive_Logic_Programming"])
    # Chinese has no spaces between words: the gold string is found inside the sentence.
    assert answer_matches("文件说：甘草黄酮具有抗氧化作用。", ["抗氧化"])
    # ... and a Latin gold string there is a word of its own between Chinese characters.
    assert answer_matches("本部分按照GB/T 1.1—2020给出的规则起草。", ["GB/T 1.1—2020"])
    assert not answer_matches("本部分按照GB/T 1.1—2020给出的规则起草。", ["1.1"])
    # Still whole words for the rest: "3.40" is not "3,400", nor "340" a part of "3400".
    assert not answer_matches("costs $3.40 per airplane", ["$3,400"])
    assert not answer_matches("about 3400 workers", ["340"])
