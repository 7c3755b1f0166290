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


def _stop_and_remove(home: Path) -> None:
    """Stop whatever server a test left running on ``home``, then delete it."""
    for pgdata in (home / "pgdata", backup_path(home / "pgdata", 16)):
        pid_file = pgdata / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    time.sleep(1)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def made_old_home(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, str], dict]]:
    """A home made by the old embedded server, with a document, a binding and an answer.

    Made once for the module (three CLI runs and a server start, ~14 s); every test
    gets a copy of its own from ``old_home``.  Yields the home, the environment to run
    the CLI on it (embedded mode), and what the old server held: row counts and the
    answer's sources and evidence.
    """
    import pgserver  # the old package: PostgreSQL 16.2, pgvector 0.6.2

    # Not under pytest's temp root, which the server's unprivileged user cannot enter.
    home = Path(tempfile.mkdtemp(prefix="librarian-test-old-home-"))
    doc = tmp_path_factory.mktemp("old-home-doc") / "travel.txt"
    doc.write_text(DOC)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["LIBRARIAN_HOME"] = str(home)
    server = pgserver.get_server(home / "pgdata", cleanup_mode="stop")
    try:
        old = {**env, "DATABASE_URL": server.get_uri()}
        status = _json(_cli(old, "status", "--json"))
        assert status["postgres_version"].startswith("16.2")
        assert status["pgvector_version"] == "0.6.2"
        assert status["vector_path"] == "fallback"
        assert _cli(old, "ingest", str(doc), "--channel", "console:travel").returncode == 0
        before = _json(_cli(old, "ask", QUESTION, "--channel", "console:travel", "--json"))
        counts = _counts(server.get_uri())
    finally:
        server.cleanup()  # stops the old server, as quitting the old bot did
    assert data_version(home / "pgdata") == 16
    yield home, env, {"counts": counts, "answer": before}
    _stop_and_remove(home)


@pytest.fixture
def old_home(made_old_home) -> Iterator[tuple[Path, dict[str, str], dict]]:
    """A copy of the module's old home (its server stopped), for one test to upgrade."""
    made, env, before = made_old_home
    home = Path(tempfile.mkdtemp(prefix="librarian-test-old-home-"))
    # cp -a keeps the owner and modes the server's unprivileged user needs on pgdata.
    subprocess.run(["cp", "-a", f"{made}/.", str(home)], check=True)
    assert data_version(home / "pgdata") == 16
    yield home, {**env, "LIBRARIAN_HOME": str(home)}, before
    _stop_and_remove(home)


def test_a_home_made_by_the_old_embedded_server_is_upgraded_with_nothing_lost(old_home) -> None:
    home, env, before = old_home

    status = _cli(env, "status", "--json")
    info = _json(status)
    # The user is told what happens, and where the old data is kept.
    assert "upgrading the embedded database from PostgreSQL 16 to 18" in status.stderr
    assert str(backup_path(home / "pgdata", 16)) in status.stderr
    assert info["postgres_version"].startswith(f"{POSTGRES_MAJOR}.")
    assert info["pgvector_version"].startswith("0.8")
    assert info["vector_path"] == "0.8"
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


class _Bot:
    """``librarian run`` in a real process, driven through its console like a terminal."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        import threading

        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, text: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.1)
        return False

    def close(self) -> str:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return "".join(self.lines)


def _long_document(path: Path) -> Path:
    notes = [
        f"Section {i}. The committee reviewed item {i} of the facilities plan and recorded "
        f"routine notes about lighting, desks and signage in building {i % 7}."
        for i in range(400)
    ]
    notes.insert(350, "The cafeteria closes at 19:40 on Fridays.")
    path.write_text("Facilities notes\n\n" + "\n\n".join(notes))
    return path


def test_the_embedded_server_killed_under_a_running_bot_comes_back(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="librarian-test-kill-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["LIBRARIAN_HOME"] = str(home)
    (tmp_path / "travel.txt").write_text(DOC)
    big = _long_document(tmp_path / "big.txt")
    bot = _Bot(env)
    try:
        bot.say(f"/librarian upload {tmp_path / 'travel.txt'}")
        assert bot.wait_for("Indexed travel.txt", 180), bot.close()
        pgdata = home / "pgdata"
        url = f"postgresql+psycopg://postgres@/postgres?host={pgdata}"
        engine = create_engine(url)

        # A long document is queued and being indexed when the server is killed.
        bot.say(f"/librarian upload {big}")
        status = None
        deadline = time.monotonic() + 60
        while status not in ("queued", "indexing") and time.monotonic() < deadline:
            with engine.connect() as conn:
                status = conn.execute(
                    text("SELECT status FROM documents WHERE file_name = 'big.txt'")
                ).scalar()
            time.sleep(0.05)
        engine.dispose()
        assert status in ("queued", "indexing")
        os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        killed, killed_at = time.monotonic(), time.time()

        bot.say("@librarian When does the cafeteria close on Fridays?")
        assert bot.wait_for("19:40", 120), bot.close()[-3000:]
        assert time.monotonic() - killed < 120
        assert bot.wait_for("Indexed big.txt", 1)

        # The operator asks how the database is: it runs, and was restarted once.
        watched = _json(_cli(env, "status", "--json"))["database_server"]
        assert watched["kind"] == "embedded" and watched["reachable"]
        [seen] = [w for w in watched["watched_by"] if w["pid"] == bot.proc.pid]
        assert seen["state"] == "running"
        assert seen["restarts"] == 1
        assert "postmaster had stopped" in seen["last_restart_reason"]
        assert killed_at <= seen["last_restart_at"] <= time.time()
        said = _cli(env, "status")
        assert "running, restarted once (last at" in said.stdout, said.stdout
        # Indexed exactly once, from one row.
        engine = create_engine(url)
        with engine.connect() as conn:
            docs = conn.execute(
                text("SELECT id, status FROM documents WHERE file_name = 'big.txt'")
            ).all()
            assert [d.status for d in docs] == ["ready"]
            ordinals = conn.execute(
                text("SELECT count(*), count(DISTINCT ordinal) FROM chunks WHERE document_id = :d"),
                {"d": docs[0].id},
            ).one()
            assert ordinals[0] == ordinals[1] > 0
        engine.dispose()
    finally:
        log = bot.close()
        shutil.rmtree(home, ignore_errors=True)
    assert "the embedded Postgres was restarted" in log or "starting it again" in log
    assert "Traceback" not in log


def test_an_external_server_stopped_and_started_again_is_used_without_a_restart(
    tmp_path: Path,
) -> None:
    """With DATABASE_URL the bot does not own the server: a question asked while it is
    down is answered once the operator has it back, without restarting the bot."""
    from bot.store.embedded import pgserver_module

    pg = pgserver_module()
    # Not under pytest's temp root, which the server's unprivileged user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="librarian-test-external-"))
    handle = pg.get_server(root / "pgdata", cleanup_mode=None, postgres_version=POSTGRES_MAJOR)
    pg_ctl = str(handle.bin_path / "pg_ctl")

    def pg_ctl_run(*args: str) -> None:
        subprocess.run(
            [pg_ctl, "-w", "-D", str(root / "pgdata"), *args],
            user=handle.system_user,
            cwd=root,
            check=True,
            capture_output=True,
        )

    env = {k: v for k, v in os.environ.items()}
    env["LIBRARIAN_HOME"] = str(tmp_path / "home")
    env["DATABASE_URL"] = handle.get_uri()
    (tmp_path / "travel.txt").write_text(DOC)
    bot = _Bot(env)
    try:
        bot.say(f"/librarian upload {tmp_path / 'travel.txt'}")
        assert bot.wait_for("Indexed travel.txt", 180), bot.close()

        watched = _json(_cli(env, "status", "--json"))["database_server"]
        [seen] = [w for w in watched["watched_by"] if w["pid"] == bot.proc.pid]
        assert watched["kind"] == "external" and seen["state"] == "reachable"

        pg_ctl_run("-m", "fast", "stop")
        bot.say("@librarian " + QUESTION)
        time.sleep(5)  # the question waits for the database; nothing is lost meanwhile
        assert not bot.wait_for("45 days", 0.1)
        # status cannot reach the server either, and says what the bot is doing.
        assert bot.wait_for("is unreachable", 30), bot.close()[-3000:]
        down = _cli(env, "status", "--json")
        assert down.returncode == 2
        watched = json.loads(down.stdout)["database_server"]
        assert watched["reachable"] is False and "cannot connect" in watched["error"]
        [seen] = [w for w in watched["watched_by"] if w["pid"] == bot.proc.pid]
        assert seen["state"] == "retrying" and seen["last_error"]
        said = _cli(env, "status")
        assert said.returncode == 2
        assert "unreachable since" in said.stdout and "retrying in" in said.stdout, said.stdout

        handle.ensure_postgres_running()  # the operator starts it again
        assert bot.wait_for("45 days", 120), bot.close()[-3000:]
        assert bot.wait_for("is reachable again", 70), bot.close()[-3000:]
        watched = _json(_cli(env, "status", "--json"))["database_server"]
        [seen] = [w for w in watched["watched_by"] if w["pid"] == bot.proc.pid]
        assert seen["state"] == "reachable"
    finally:
        log = bot.close()
        with contextlib.suppress(Exception):
            pg_ctl_run("-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)
    assert "Traceback" not in log


def test_an_operator_backs_up_and_restores_a_home(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="librarian-test-backup-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["LIBRARIAN_HOME"] = str(home)
    doc = tmp_path / "travel.txt"
    doc.write_text(DOC)
    try:
        assert _cli(env, "ingest", str(doc), "--channel", "console:travel").returncode == 0
        before = _json(_cli(env, "status", "--json"))["counts"]
        saved = _cli(env, "db", "backup", str(tmp_path / "librarian.tar"))
        assert saved.returncode == 0, saved.stderr
        assert "1 stored files" in saved.stdout

        # Restoring over a database that holds tables needs --replace.
        refused = _cli(env, "db", "restore", str(tmp_path / "librarian.tar"))
        assert refused.returncode == 1
        assert "run again with --replace" in refused.stderr

        # A new machine: an empty home, then the backup.
        shutil.rmtree(home)
        restored = _cli(env, "db", "restore", str(tmp_path / "librarian.tar"))
        assert restored.returncode == 0, restored.stderr
        assert _json(_cli(env, "status", "--json"))["counts"] == before
        answer = _json(_cli(env, "ask", QUESTION, "--channel", "console:travel", "--json"))
        assert "45 days" in answer["answer"]
        # The model's draft comes with the check's verdict, and why, when it was replaced.
        assert answer["draft"] and answer["checked"] in ("passed", "replaced_by_evidence")
        if answer["checked"] == "passed":
            assert answer["answer"].startswith(answer["draft"]) and answer["unsupported"] == []
        assert answer["hedged"] is answer["answer"].startswith("No passage clearly answers")
        assert [p for p in (home / "files").rglob("*") if p.is_file()]

        broken = tmp_path / "not-a-backup.tar"
        broken.write_bytes(b"hello")
        failed = _cli(env, "db", "restore", str(broken), "--replace")
        assert failed.returncode == 1
        assert "is not a Librarian backup" in failed.stderr
        assert _json(_cli(env, "status", "--json"))["counts"] == before
    finally:
        shutil.rmtree(home, ignore_errors=True)
