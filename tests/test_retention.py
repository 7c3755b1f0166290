"""Per-channel retention: the job, its advisory lock, the scheduler and the CLI.

Real Postgres.  Old messages are stored with Store.add_message and then backdated
with an UPDATE; the job deletes by each channel's retention.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from helpers import say, wait_until
from sqlalchemy import text
from typer.testing import CliRunner

from bot.app import App
from bot.cli import retention as retention_cli
from bot.config import load_settings
from bot.events import ConversationRef
from bot.retention import (
    DurationError,
    format_duration,
    parse_duration,
    run_retention,
)
from bot.store.records import Binding
from bot.store.repo import LOCK_RETENTION

REPO = Path(__file__).resolve().parents[1]


def channel(name: str) -> ConversationRef:
    return ConversationRef("console", "", name, None, f"#{name}")


def add_history(
    app: App,
    binding: Binding,
    *,
    old: int = 0,
    new: int = 0,
    age: timedelta = timedelta(hours=2),
    thread: str | None = None,
) -> None:
    """``old`` turns written ``age`` ago and ``new`` turns written now."""
    old_ids = [
        app.store.add_message(binding.id, thread, "user", f"old {i}", author="console:bob")
        for i in range(old)
    ]
    if old_ids:
        with app.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE messages SET created_at = now() - :age WHERE id = ANY(:ids)"),
                {"age": age, "ids": old_ids},
            )
    for i in range(new):
        app.store.add_message(binding.id, thread, "assistant", f"new {i}", author="librarian")


def texts(app: App, binding: Binding, thread: str | None = None) -> list[str]:
    """The stored turns of a channel or thread, sorted (their order is not the point)."""
    return sorted(m.text for m in app.store.recent_messages(binding.id, thread, limit=1000))


def retention_entries(app: App) -> list[dict]:
    return [e for e in app.store.audit_entries(100) if e["action"] == "retention_run"]


def test_durations() -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration(" 1H ") == 3600
    assert parse_duration("off") is None
    for bad, why in (
        ("5x", "not a duration"),
        ("d", "not a duration"),
        ("1.5h", "not a duration"),
        ("-1d", "not a duration"),
        ("0h", "zero"),
        ("4000d", "ten years"),
    ):
        with pytest.raises(DurationError, match=why):
            parse_duration(bad)
    assert [format_duration(s) for s in (None, 86400 * 30, 7200, 5400, 90)] == [
        "off",
        "30d",
        "2h",
        "1h30m",
        "1m30s",
    ]


async def test_one_run_deletes_only_what_is_older_than_each_channels_retention(settings) -> None:
    app = App.build(settings)
    try:
        reply = await say(app, "/librarian retention 1h", user="alice")
        assert "Retention in #general is now 1h" in reply
        # The CLI sets another channel's retention, creating its binding on first use.
        result = CliRunner().invoke(retention_cli.app, ["set", "console:ops", "1d"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "console:ops: retention 1d"
        bad = CliRunner().invoke(retention_cli.app, ["set", "console:ops", "5x"])
        assert bad.exit_code != 0 and "not a duration" in str(bad.exception)

        general = await app.dispatcher.binding(channel("general"))
        random = await app.dispatcher.binding(channel("random"))  # retention off
        ops = await app.dispatcher.binding(channel("ops"))
        assert (general.retention_seconds, random.retention_seconds) == (3600, None)
        assert ops.retention_seconds == 86400
        add_history(app, general, old=3, new=2)
        add_history(app, general, old=1, new=1, thread="t1")  # threads expire too
        add_history(app, general, old=1, age=timedelta(minutes=50))  # not yet an hour
        add_history(app, random, old=2, age=timedelta(days=30))
        add_history(app, ops, old=2)  # 2 h old, retention 1 d

        first = await asyncio.to_thread(run_retention, app.store)
        assert first.ran and first.deleted == {"console:general": 4} and first.total == 4
        assert texts(app, general) == ["new 0", "new 1", "old 0"]
        assert texts(app, general, "t1") == ["new 0"]
        assert len(texts(app, random)) == 2 and len(texts(app, ops)) == 2

        # Idempotent: nothing is left to delete; the run still leaves its (empty) entry.
        second = await asyncio.to_thread(run_retention, app.store)
        assert second.ran and second.deleted == {} and second.total == 0
        empty, entry = retention_entries(app)
        assert entry["actor"] == "scheduler" and entry["target"] == "messages"
        assert entry["details"] == {"deleted": {"console:general": 4}, "total": 4, "feedback": {}}
        assert empty["details"] == {"deleted": {}, "total": 0, "feedback": {}}

        # While another process holds the lock, a run is skipped and deletes nothing.
        add_history(app, general, old=1, thread="t2")
        with app.db.engine.connect() as other:
            other.execute(text("SELECT pg_advisory_xact_lock(:a, 0)"), {"a": LOCK_RETENTION})
            skipped = await asyncio.to_thread(run_retention, app.store)
            assert not skipped.ran and skipped.deleted == {}
            assert "another process" in skipped.describe()
            assert texts(app, general, "t2") == ["old 0"]
            other.rollback()  # ends the transaction: the lock goes with it
        result = CliRunner().invoke(retention_cli.app, ["run"])
        assert result.exit_code == 0, result.output
        assert "console:general" in result.output and "1 deleted" in result.output
        assert texts(app, general, "t2") == []
        assert [e["actor"] for e in retention_entries(app)] == ["cli", "scheduler", "scheduler"]

        listing = CliRunner().invoke(retention_cli.app, ["list"])
        assert listing.exit_code == 0, listing.output
        assert listing.output.splitlines() == [
            "console:general  1h      console:general",
            "console:ops      1d      console:ops",
            "console:random   off     console:random",
        ]
        audit_cli = typer.Typer()
        audit_cli.command()(retention_cli.audit)
        log = CliRunner().invoke(audit_cli, ["--limit", "2"])
        assert log.exit_code == 0, log.output
        newest = log.output.splitlines()[0]
        assert "cli" in newest and "retention_run" in newest
        assert '"deleted": {"console:general": 1}' in newest
    finally:
        await app.close()


async def test_two_processes_started_at_once_delete_once(
    settings, librarian_env: dict[str, str], shared_models: Path
) -> None:
    app = App.build(settings)  # creates the schema before the two processes start
    try:
        await say(app, "/librarian retention 1h", user="alice")
        general = await app.dispatcher.binding(channel("general"))
        expired = 20_000  # enough rows that the deleting transaction takes a while
        with app.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO messages (binding_id, role, author, text, created_at) "
                    "SELECT :b, 'user', 'console:bob', 'old ' || i, now() - interval '3 hours' "
                    "FROM generate_series(1, :n) AS i"
                ),
                {"b": general.id, "n": expired},
            )
        add_history(app, general, new=3)

        env = {**os.environ, **librarian_env, "LIBRARIAN_MODELS_PATH": str(shared_models)}
        command = [sys.executable, "-m", "bot", "retention", "run", "--json"]
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert time.monotonic() - started < 60
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
        runs = [json.loads(out) for out, _err in outputs]
        deleting = [r for r in runs if r["total"] > 0]
        idle = [r for r in runs if r["total"] == 0]
        assert len(deleting) == 1 and len(idle) == 1, runs
        assert deleting[0]["deleted"] == {"console:general": expired}
        # The other one either found the lock taken, or ran after and found nothing.
        assert idle[0]["skipped"] or idle[0]["deleted"] == {}
        assert texts(app, general) == ["new 0", "new 1", "new 2"]

        audit = subprocess.run(
            [sys.executable, "-m", "bot", "audit", "--json", "--limit", "10"],
            env=env,
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        entries = json.loads(audit.stdout)
        runs_logged = [e for e in entries if e["action"] == "retention_run" and e["actor"] == "cli"]
        # One entry per run that took the lock: one with the deletions, and at most one
        # empty one (when the second process ran after the first instead of being skipped).
        deleting_logged = [e for e in runs_logged if e["details"]["total"] > 0]
        assert len(deleting_logged) == 1
        assert deleting_logged[0]["details"] == {
            "deleted": {"console:general": expired},
            "total": expired,
            "feedback": {},
        }
        assert len(runs_logged) == 1 + (0 if idle[0]["skipped"] else 1)
        # The command that set the retention is there too, by alice.
        assert any(e["actor"] == "console:alice" for e in entries)
    finally:
        await app.close()


async def test_the_scheduler_runs_the_job_on_its_interval(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARIAN_RETENTION_INTERVAL_MINUTES", "0.02")  # 1.2 s
    app = App.build(load_settings())
    try:
        await say(app, "/librarian retention 1h", user="alice")
        general = await app.dispatcher.binding(channel("general"))
        add_history(app, general, old=2, new=1)
        app.start_background()
        job = app.scheduler.job()
        assert job is not None and job.coalesce and job.max_instances == 1
        assert job.misfire_grace_time == 1 and job.trigger.interval == timedelta(seconds=1.2)
        # It keeps running, every interval.
        assert await wait_until(lambda: app.scheduler.retention_runs >= 2, 20)
        assert texts(app, general) == ["new 0"]
        entries = retention_entries(app)
        assert len(entries) == app.scheduler.retention_runs  # one entry per run
        assert sum(e["details"]["total"] for e in entries) == 2
        assert all(e["actor"] == "scheduler" for e in entries)
    finally:
        await app.close()
    assert not app.scheduler.running


async def test_old_event_ids_are_forgotten_and_recent_ones_still_stop_redeliveries(
    settings,
) -> None:
    app = App.build(settings)
    try:
        for event_id in ("Ev-old", "Ev-new"):
            claim = app.store.claim_event("slack", event_id, "test", {}, lease_seconds=60)
            assert claim is not None and app.store.finish_event(claim)
        with app.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE processed_events SET processed_at = now() - interval '8 days' "
                    "WHERE event_id = 'Ev-old'"
                )
            )
        run = await asyncio.to_thread(run_retention, app.store)
        assert run.ran
        with app.db.engine.connect() as conn:
            left = conn.execute(text("SELECT event_id FROM processed_events")).scalars().all()
        assert left == ["Ev-new"]
        # A redelivery is still dropped.
        assert app.store.claim_event("slack", "Ev-new", "again", {}, lease_seconds=60) is None
    finally:
        await app.close()
