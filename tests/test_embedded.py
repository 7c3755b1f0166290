"""The embedded database: an old home is upgraded with nothing lost, a failed upgrade
leaves it untouched, and a server that dies under a running bot comes back.

The old home is made the way Librarian made it before: ``pgserver`` 0.1.4's PostgreSQL
16.2 with pgvector 0.6.2 (a dev dependency kept for these tests), filled by the real
``librarian`` CLI.  Everything after that is what a user runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.store.embedded import POSTGRES_MAJOR, backup_path, data_version

DOC = """Travel policy

Employees book train travel for trips under 600 kilometres.
The travel desk approves hotel stays of up to 3 nights without a manager.
Reimbursement claims are filed within 45 days of the trip.
"""
QUESTION = "Within how many days must reimbursement claims be filed?"
TABLES = ("workspaces", "channel_bindings", "documents", "chunks", "messages")


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    return json.loads(out[out.index("{") :])


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    finally:
        engine.dispose()


@pytest.fixture
def old_home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict]]:
    """A home made by the old embedded server, with a document, a binding and an answer.

    Yields the home, the environment to run the CLI on it (embedded mode), and what the
    old server held: row counts and the answer's sources and evidence.
    """
    import pgserver  # the old package: PostgreSQL 16.2, pgvector 0.6.2

    # Not under pytest's temp root, which the server's unprivileged user cannot enter.
    home = Path(tempfile.mkdtemp(prefix="librarian-test-old-home-"))
    doc = tmp_path / "travel.txt"
    doc.write_text(DOC)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["LIBRARIAN_HOME"] = str(home)
    server = pgserver.get_server(home / "pgdata", cleanup_mode="stop")
    try:
        old = {**env, "DATABASE_URL": server.get_uri()}
        status = _json(_cli(old, "status", "--json"))
        assert status["postgres_version"].startswith("16.2")
        assert status["pgvector_version"] == "0.6.2"
        assert _cli(old, "ingest", str(doc), "--channel", "console:travel").returncode == 0
        before = _json(_cli(old, "ask", QUESTION, "--channel", "console:travel", "--json"))
        counts = _counts(server.get_uri())
    finally:
        server.cleanup()  # stops the old server, as quitting the old bot did
    assert data_version(home / "pgdata") == 16
    yield home, env, {"counts": counts, "answer": before}
    # Stop whatever server the test left running on the home before deleting it.
    for pgdata in (home / "pgdata", backup_path(home / "pgdata", 16)):
        pid_file = pgdata / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    time.sleep(1)
    shutil.rmtree(home, ignore_errors=True)


def test_a_home_made_by_the_old_embedded_server_is_upgraded_with_nothing_lost(old_home) -> None:
    home, env, before = old_home

    status = _cli(env, "status", "--json")
    info = _json(status)
    # The user is told what happens, and where the old data is kept.
    assert "upgrading the embedded database from PostgreSQL 16 to 18" in status.stderr
    assert str(backup_path(home / "pgdata", 16)) in status.stderr
    assert info["postgres_version"].startswith(f"{POSTGRES_MAJOR}.")
    assert info["pgvector_version"].startswith("0.8")
    assert data_version(home / "pgdata") == POSTGRES_MAJOR
    assert data_version(backup_path(home / "pgdata", 16)) == 16
    assert {t: info["counts"][t] for t in TABLES} == before["counts"]

    after = _json(_cli(env, "ask", QUESTION, "--channel", "console:travel", "--json"))
    assert "45 days" in after["answer"]
    assert after["sources"] == before["answer"]["sources"]
    assert after["evidence"] == before["answer"]["evidence"]

    # A second start finds nothing to upgrade.
    again = _cli(env, "status", "--json")
    assert "upgrading" not in again.stderr
    assert _json(again)["counts"]["chunks"] == before["counts"]["chunks"]


def test_a_failed_upgrade_leaves_the_old_home_untouched_and_says_why(old_home) -> None:
    import pgserver

    home, env, before = old_home
    pgdata = home / "pgdata"
    # pg_upgrade refuses a user table holding a regproc column (its OIDs are not kept).
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    engine = create_engine(server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE blocker (p regproc)"))
    engine.dispose()
    server.cleanup()

    status = _cli(env, "status")
    assert status.returncode == 2
    message = status.stderr
    assert "could not upgrade the embedded database" in message
    assert "it is untouched" in message
    assert "reg" in message  # pg_upgrade's own reason is passed on
    assert data_version(pgdata) == 16
    assert not backup_path(pgdata, 16).exists()
    assert not list(home.glob(".pgdata-upgrade-*")), "the half-made new cluster is removed"

    # Everything is still there for the old server.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        assert _counts(server.get_uri()) == before["counts"]
    finally:
        server.cleanup()
