"""Dense search on both paths: pgvector 0.8's (halfvec workspace indexes) on the embedded
server, and the pgvector 0.6 plans as the fallback, forced by the setting or found on a
real PostgreSQL 16.2 with pgvector 0.6.2 (``pgserver`` 0.1.4, a dev dependency).

On each path a large workspace (its own HNSW index) and a small one (exact scan) beside
a larger neighbour are asked for their 10 nearest chunks: each answer holds 10 rows of
that workspace only, close to the exact scan's.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import Database, open_database
from bot.store.repo import Store, WorkspaceDefaults, workspace_index_name

DIMS = 64
K = 10


def _clustered(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors around the given centres (a corpus has topics, not uniform noise)."""
    picks = centres[rng.integers(0, len(centres), n)]
    v = picks + rng.normal(0.0, 0.35, picks.shape)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _workspace(store: Store, name: str, model: int, vectors: np.ndarray) -> int:
    binding = store.binding_for("console", "", name, WorkspaceDefaults(200, 40, 4, 0.0))
    store.bulk_load_vectors(binding.workspace.id, model, vectors, file_name=f"{name}.txt")
    return binding.workspace.id


def _index_definition(db: Database, model: int, ws: int) -> str:
    with db.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT pg_get_indexdef(to_regclass(:n))"),
                {"n": workspace_index_name(model, ws)},
            ).scalar()
        )


def _plan_of_search(db: Database, model: int, ws: int, query: np.ndarray) -> str:
    """How the server runs the workspace's indexed search: EXPLAIN of its ORDER BY, in
    the type of the workspace's index."""
    from bot.store.hnsw import index_kind_of

    kind = index_kind_of(_index_definition(db, model, ws))
    literal = str([float(v) for v in query])
    with db.engine.connect() as conn:
        return "\n".join(
            conn.execute(
                text(
                    f"EXPLAIN SELECT id FROM chunks WHERE workspace_id = {ws} "
                    f"AND embedding_model_id = {model} ORDER BY {kind.of(DIMS)} "
                    f"<=> CAST('{literal}' AS {kind.type}({DIMS})) LIMIT {K}"
                )
            ).scalars()
        )


def ask_both_workspaces(db: Database) -> dict[str, Any]:
    """Fill a large, a small and a neighbouring workspace; ask each 30 questions.

    Returns the large workspace's index definition, the plans that ran, the mean
    recall@10 against the exact scan, the fewest rows any answer had, and whether any
    answer held another workspace's chunk.
    """
    migrate.upgrade(db)
    store = Store(db)
    store.exact_scan_max_rows = 1_000  # 4,000 chunks make a "large" workspace
    model = store.ensure_embedding_model(f"test-{DIMS}d", DIMS)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(24, DIMS))
    large = _workspace(store, "large", model, _clustered(rng, centres, 4_000))
    small = _workspace(store, "small", model, _clustered(rng, centres, K))
    _workspace(store, "neighbour", model, _clustered(rng, centres, 6_000))
    # The planner's statistics, as autovacuum would have them after such a load: with
    # none, it takes the new workspace for one row and sorts it instead of using its index.
    store.analyze_chunks()
    assert store.ensure_workspace_index(large, model, DIMS, concurrently=False)
    assert not store.ensure_workspace_index(small, model, DIMS, concurrently=False)
    own_chunks = {}
    with db.engine.connect() as conn:
        for ws in (large, small):
            own_chunks[ws] = set(
                conn.execute(
                    text("SELECT id FROM chunks WHERE workspace_id = :w"), {"w": ws}
                ).scalars()
            )
    recalls, fewest, foreign = [], K, 0
    store.plan_counts.clear()
    for query in _clustered(rng, centres, 30):
        for ws in (large, small):
            hits = store.search_dense(ws, model, DIMS, query, K)
            truth = store.search_dense(ws, model, DIMS, query, K, exact=True)
            got = {h.chunk_id for h in hits}
            recalls.append(len(got & {h.chunk_id for h in truth}) / K)
            fewest = min(fewest, len(hits))
            foreign += len(got - own_chunks[ws])
    return {
        "index": _index_definition(db, model, large),
        "explain": _plan_of_search(db, model, large, _clustered(rng, centres, 1)[0]),
        "plans": dict(store.plan_counts),
        "recall": float(np.mean(recalls)),
        "fewest": fewest,
        "foreign": foreign,
        # The index's size as the search knows it (it sets the search's breadth).
        "index_rows": store._indexed[(model, large)].rows,
    }


def assert_served_by_the_workspace_index(seen: dict[str, Any]) -> None:
    """What every path must give: the large workspace searched through its own index
    (EXPLAIN says so), 30 searches of it through the index and 30 of the small one
    exact, each also once exact to compare; k rows of the workspace only, close to
    the exact scan's."""
    assert "Index Scan using chunks_embedding_hnsw_m" in seen["explain"], seen["explain"]
    assert seen["plans"] == {"workspace_hnsw": 30, "exact": 30, "forced_exact": 60}
    assert seen["fewest"] == K and seen["foreign"] == 0
    assert seen["recall"] >= 0.97, seen
    assert seen["index_rows"] == 4_000, seen


def test_the_embedded_server_takes_the_pgvector_08_path(librarian_env: dict[str, str]) -> None:
    """halfvec workspace indexes: half the memory, the same answers."""
    db = open_database(load_settings())
    try:
        assert db.vector_path == "0.8", f"the test server has pgvector {db.pgvector_version}"
        seen = ask_both_workspaces(db)
    finally:
        db.close()
    assert "halfvec_cosine_ops" in seen["index"], seen["index"]
    assert_served_by_the_workspace_index(seen)


def test_the_fallback_path_can_be_forced_on_a_new_server(
    librarian_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARIAN_VECTOR_PLAN", "fallback")
    db = open_database(load_settings())
    try:
        assert db.vector_path == "fallback"
        seen = ask_both_workspaces(db)
    finally:
        db.close()
    assert "vector_cosine_ops" in seen["index"] and "halfvec" not in seen["index"]
    assert_served_by_the_workspace_index(seen)


def fallback_home_reopened_on_08(monkeypatch: pytest.MonkeyPatch) -> Database:
    """A home whose workspaces were indexed on the fallback path (pgvector 0.6's
    ``vector`` indexes), opened again on the 0.8 path."""
    monkeypatch.setenv("LIBRARIAN_VECTOR_PLAN", "fallback")
    db = open_database(load_settings())
    try:
        ask_both_workspaces(db)
    finally:
        db.close()
    monkeypatch.setenv("LIBRARIAN_VECTOR_PLAN", "auto")
    return open_database(load_settings())


def test_an_index_built_on_the_fallback_path_is_still_used_on_the_08_path(
    librarian_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home upgraded from pgvector 0.6 keeps its vector indexes, and they keep serving."""
    db = fallback_home_reopened_on_08(monkeypatch)
    try:
        assert db.vector_path == "0.8"
        store = Store(db)
        model = store.ensure_embedding_model(f"test-{DIMS}d", DIMS)
        with db.engine.connect() as conn:
            large = conn.execute(
                text("SELECT workspace_id FROM documents WHERE file_name = 'large.txt'")
            ).scalar_one()
        assert not store.ensure_workspace_index(large, model, DIMS, concurrently=False)
        query = store.workspace_vectors(large, model)[17]
        hits = store.search_dense(large, model, DIMS, query, K)
        assert len(hits) == K and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert store.plan_counts == {"workspace_hnsw": 1}
        assert "halfvec" not in _index_definition(db, model, large)
    finally:
        db.close()


@pytest.fixture
def pgvector_06_url() -> Iterator[str]:
    """A real PostgreSQL 16.2 with pgvector 0.6.2: the embedded server before this one."""
    import pgserver

    # Not under pytest's temp root, which the server's unprivileged user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="librarian-test-pgvector06-"))
    server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_a_server_with_pgvector_06_gets_the_fallback_path(
    librarian_env: dict[str, str], pgvector_06_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pgvector_06_url)
    db = open_database(load_settings())
    try:
        assert db.pgvector_version == "0.6.2"
        assert db.vector_path == "fallback"
        seen = ask_both_workspaces(db)
    finally:
        db.close()
    assert "vector_cosine_ops" in seen["index"] and "halfvec" not in seen["index"]
    assert_served_by_the_workspace_index(seen)


def test_the_plan_setting_refuses_a_value_it_does_not_know(
    librarian_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.errors import ConfigError

    monkeypatch.setenv("LIBRARIAN_VECTOR_PLAN", "halfvec-please")
    with pytest.raises(ConfigError, match="VECTOR_PLAN"):
        load_settings()


def _explained_index(db: Database, model: int, ws: int, kind_type: str, query: np.ndarray) -> str:
    """The index a search in ``kind_type`` order runs on (EXPLAIN), or the whole plan."""
    literal = str([float(v) for v in query])
    with db.engine.connect() as conn:
        plan = "\n".join(
            conn.execute(
                text(
                    f"EXPLAIN SELECT id FROM chunks WHERE workspace_id = {ws} "
                    f"AND embedding_model_id = {model} "
                    f"ORDER BY embedding::{kind_type}({DIMS}) "
                    f"<=> CAST('{literal}' AS {kind_type}({DIMS})) LIMIT {K}"
                )
            ).scalars()
        )
    if "Index Scan using " not in plan:
        return plan
    return plan.split("Index Scan using ", 1)[1].split()[0]


def _indexes_named_like(db: Database, prefix: str) -> dict[str, bool]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE :p"
            ),
            {"p": prefix + "%"},
        ).all()
    return {str(r[0]): bool(r[1]) for r in rows}


def test_a_vector_index_is_upgraded_to_halfvec_and_serves_searches_throughout(
    librarian_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home made on the fallback path, opened on the 0.8 path: the large workspace's
    vector index is rebuilt as halfvec beside it.  While the new one is being built
    (held at its last step by a reader's open snapshot) the old one answers every
    search with k rows; then the new one does, and the old one is gone."""
    import threading

    db = fallback_home_reopened_on_08(monkeypatch)
    try:
        store = Store(db)
        model = store.ensure_embedding_model(f"test-{DIMS}d", DIMS)
        with db.engine.connect() as conn:
            large = conn.execute(
                text("SELECT workspace_id FROM documents WHERE file_name = 'large.txt'")
            ).scalar_one()
        name = workspace_index_name(model, large)
        assert store.outdated_workspace_indexes(model) == [large]
        queries = store.workspace_vectors(large, model)[:5]

        # A reader whose snapshot predates the build: CREATE INDEX CONCURRENTLY waits
        # for it before it marks the new index valid.
        reader = db.engine.connect()
        reader.begin()
        reader.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        reader.execute(text("SELECT count(*) FROM chunks")).scalar()
        outcome: dict[str, Any] = {}
        upgrade = threading.Thread(
            target=lambda: outcome.update(
                done=store.upgrade_workspace_index(large, model, DIMS, grace_s=0.0)
            )
        )
        upgrade.start()
        try:
            for _ in range(300):  # the new index exists, not yet valid
                if _indexes_named_like(db, name).get(f"{name}_next") is False:
                    break
                threading.Event().wait(0.1)
            assert _indexes_named_like(db, name) == {name: True, f"{name}_next": False}
            during = Store(db)  # another process, which has not seen the new index
            for query in queries:
                hits = during.search_dense(large, model, DIMS, query, K)
                assert len(hits) == K and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
            assert during.plan_counts == {"workspace_hnsw": len(queries)}
            assert _explained_index(db, model, large, "vector", queries[0]) == name
        finally:
            reader.rollback()
            reader.close()
            upgrade.join(120)
        assert outcome == {"done": True}

        assert _indexes_named_like(db, name) == {name: True}
        assert "halfvec_cosine_ops" in _index_definition(db, model, large)
        assert store.outdated_workspace_indexes(model) == []
        after = Store(db)
        for query in queries:
            hits = after.search_dense(large, model, DIMS, query, K)
            assert len(hits) == K and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert after.plan_counts == {"workspace_hnsw": len(queries)}
        assert after._indexed[(model, large)].rows == 4_000
        store.analyze_chunks()  # as autovacuum will: the size stays known
        again = Store(db)
        again.search_dense(large, model, DIMS, queries[0], K)
        assert again._indexed[(model, large)].rows == 4_000
        assert _explained_index(db, model, large, "halfvec", queries[0]) == name
        # Nothing more to do: a second upgrade is a no-op.
        assert not store.upgrade_workspace_index(large, model, DIMS, grace_s=0.0)
    finally:
        db.close()


def test_a_larger_workspace_is_searched_more_broadly() -> None:
    """The breadth of an HNSW search grows with the index it searches (recall at 500k
    rows), stays at the session's default for the sizes that need no more (one
    statement), covers a large k, and never passes pgvector's limit."""
    from bot.store.database import HNSW_EF_SEARCH
    from bot.store.hnsw import ef_search_for

    assert ef_search_for(4_000, K) == ef_search_for(100_000, K) == HNSW_EF_SEARCH
    breadths = [ef_search_for(rows, K) for rows in (100_000, 200_000, 500_000, 800_000)]
    assert all(a < b for a, b in zip(breadths, breadths[1:], strict=False)), breadths
    assert ef_search_for(500_000, K) >= 600  # calibrated: recall@10 0.996 at 640
    assert ef_search_for(0, 300) == 600
    assert ef_search_for(10_000_000, K) == ef_search_for(0, 5_000) == 1000


async def test_the_ingest_worker_upgrades_an_old_index_when_idle_and_answers_throughout(
    settings: Any, tmp_path: Path
) -> None:
    """A bot whose large workspace got a vector index (the fallback path) is started on
    the 0.8 path: with nothing queued, its worker rebuilds the index as halfvec, drops
    the old one, and the bot answers from the manual before, during and after."""
    from helpers import converse, make_pdf, wait_until

    from bot.app import App
    from bot.events import ConversationRef

    question = "@librarian How long is the warranty of the Zephyr X200?"
    app = App.build(settings.model_copy(update={"vector_plan": "fallback"}))
    app.store.exact_scan_max_rows = 2  # so that a 3-page manual is a "large" workspace
    app.start_background()
    try:
        out = await converse(app, [f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}"])
        assert "Indexed manual.pdf: 3 pages" in out.getvalue()
        binding = await app.dispatcher.binding(ConversationRef("console", "", "general"))
        ws = binding.workspace.id
        model, _dims, _name = await app.ingest.embedding_model()
        assert app.store.workspace_index_kind(ws, model) == "vector"
    finally:
        await app.close()

    # The old index is kept index_recheck_seconds after the swap, for other processes to
    # see the new one: 5 s here, not 30, which still outlasts the search of the question
    # asked right after the swap (this test has one process).
    app = App.build(settings.model_copy(update={"index_recheck_seconds": 5.0}))
    app.store.exact_scan_max_rows = 2
    name = workspace_index_name(model, ws)
    try:
        assert app.db.vector_path == "0.8"
        assert app.store.outdated_workspace_indexes(model) == [ws]
        out = await converse(app, [question])
        assert "manual.pdf, p. 2" in out.getvalue()
        app.start_background()
        assert await wait_until(lambda: app.store.workspace_index_kind(ws, model) == "halfvec", 60)
        out = await converse(app, [question])
        assert "manual.pdf, p. 2" in out.getvalue()
        # The old index goes once other processes have had time to see the new one.
        assert await wait_until(lambda: _indexes_named_like(app.db, name) == {name: True}, 90)
        assert app.store.outdated_workspace_indexes(model) == []
        out = await converse(app, [question])
        assert "manual.pdf, p. 2" in out.getvalue()
    finally:
        await app.close()
