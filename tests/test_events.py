"""At-least-once events, exactly-once effects: the bot loses nothing and says nothing twice.

Real Postgres (the database is really made unreachable, and a real bot process is
really killed), real models, the console adapter and the Slack emulator.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RecordingStdout, make_pdf, say, wait_until
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.events import ConversationRef, MessageReceived, UserRef
from bot.knowledge.texts import NOT_FOUND
from bot.store import migrate
from bot.store.database import open_database
from bot.store.events import EventTakenOver

GENERAL = ConversationRef("console", "", "general", None, "#general")
ALICE = UserRef("console", "alice")
WARRANTY = "How long is the warranty of the Zephyr X200?"
WORLD_CUP = "Who won the football world cup in 1998?"
ROOT = Path(__file__).resolve().parents[1]


def question(event_id: str, text_: str = WORLD_CUP) -> MessageReceived:
    return MessageReceived(event_id, GENERAL, ALICE, text_, True, message_id=f"line-{event_id}")


def console(app: App) -> RecordingStdout:
    """A console in #general that prints what the bot says there (nobody typing)."""
    out = RecordingStdout()
    adapter = ConsoleAdapter(user="alice", stdout=out, stdin=RecordingStdout(), interactive=False)
    app.dispatcher.add_adapter(adapter)
    return out


def exchanges(app: App, question_text: str) -> list[tuple[str, str]]:
    """The stored turns of #general that are this question or answer it (role, text)."""
    with app.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.role, m.text FROM messages m JOIN channel_bindings b "
                "ON b.id = m.binding_id WHERE b.channel_id = 'general' ORDER BY m.id"
            )
        ).all()
    return [(r.role, r.text) for r in rows if r.role == "assistant" or r.text == question_text]


def answers_printed(out: RecordingStdout) -> int:
    return out.getvalue().count("librarian: ")


@pytest.fixture
def database_switch(pg_admin_url: str, fresh_database_url: str) -> Iterator[DatabaseSwitch]:
    switch = DatabaseSwitch(pg_admin_url, make_url(fresh_database_url).database or "")
    yield switch
    switch.up()
    switch.engine.dispose()


class DatabaseSwitch:
    """Takes the bot's database away (connections cut, new ones refused) and back."""

    def __init__(self, admin_url: str, name: str) -> None:
        admin = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        self.name = name

    def down(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": self.name},
            )

    def up(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


async def test_two_deliveries_of_one_event_at_once_give_one_answer(settings) -> None:
    app = App.build(settings)
    out = console(app)
    try:
        event = question("Ev-twice")
        await asyncio.gather(app.dispatcher.handle(event), app.dispatcher.handle(event))
        await app.dispatcher.handle(event)  # and once more, later
        assert answers_printed(out) == 1, out.getvalue()
        assert NOT_FOUND in out.getvalue()
        assert [role for role, _ in exchanges(app, WORLD_CUP)] == ["user", "assistant"]
        assert app.store.event_state("console", "Ev-twice") == ("done", 1)
    finally:
        await app.close()


async def test_a_question_asked_while_the_database_is_away_is_answered_once_it_is_back(
    settings, database_switch: DatabaseSwitch
) -> None:
    app = App.build(settings.model_copy(update={"event_retry_seconds": 0.2}))
    try:
        await say(app, "/librarian help")  # the channel exists, the pools hold connections
        out = console(app)
        printed = answers_printed(out)
        database_switch.down()
        asked = asyncio.create_task(app.dispatcher.handle(question("Ev-away")))
        await asyncio.sleep(3)
        assert not asked.done() and answers_printed(out) == printed  # waiting, not failing
        database_switch.up()
        await asyncio.wait_for(asked, 60)
        assert answers_printed(out) == printed + 1
        assert NOT_FOUND in out.getvalue() and "Sorry" not in out.getvalue()
        assert [role for role, _ in exchanges(app, WORLD_CUP)] == ["user", "assistant"]
        assert app.store.event_state("console", "Ev-away") == ("done", 1)
    finally:
        await app.close()


async def test_the_database_going_away_mid_answer_gives_one_stored_answer_once_it_is_back(
    settings, database_switch: DatabaseSwitch, tmp_path: Path
) -> None:
    app = App.build(settings.model_copy(update={"event_retry_seconds": 0.5}))
    app.start_background()
    try:
        upload = await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        assert "Indexed manual.pdf" in upload
        out = console(app)
        app.answerer.max_answer_tokens = 24  # the test is about the database, not the prose
        # The evidence reaches the terminal (the model is writing the rest): then the
        # database goes away, and comes back when the bot's log says the attempt failed
        # (its answer could not be stored), a second later.
        cut = asyncio.Event()
        writes = out.write

        def write(piece: str) -> int:
            if not cut.is_set() and piece.startswith("librarian: "):
                cut.set()
                database_switch.down()
            return writes(piece)

        failures = FailedAttempts()
        logging.getLogger("bot.delivery").addHandler(failures)

        async def restore() -> None:
            await cut.wait()
            await wait_until(lambda: failures.seen > 0, 120)
            await asyncio.sleep(1)
            database_switch.up()

        out.write = write  # type: ignore[method-assign]
        restorer = asyncio.create_task(restore())
        try:
            await asyncio.wait_for(app.dispatcher.handle(question("Ev-mid", WARRANTY)), 180)
        finally:
            logging.getLogger("bot.delivery").removeHandler(failures)
            await restorer
        assert cut.is_set()
        # The first attempt could not store its answer, so did not post it: one answer.
        assert out.getvalue().count("Sources:") == 1
        assert "Sources:\n[1] manual.pdf, p. 2" in out.getvalue()
        assert [role for role, _ in exchanges(app, WARRANTY)] == ["user", "assistant"]
        assert app.store.event_state("console", "Ev-mid") == ("done", 2)
    finally:
        await app.close()


class FailedAttempts(logging.Handler):
    """Counts the failed attempts the bot logs (what an operator reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed (attempt" in record.getMessage():
            self.seen += 1


async def test_a_crash_mid_answer_is_finished_after_restart_once(
    settings, librarian_env: dict[str, str], tmp_path: Path
) -> None:
    # The workspace has the manual, so that answering takes a while (the model writes).
    app = App.build(settings)
    app.start_background()
    try:
        assert "Indexed" in await say(app, f"/librarian upload {make_pdf(tmp_path / 'm.pdf')}")
    finally:
        await app.close()

    # A real bot process is asked in the terminal, and killed while it answers.
    env = {
        **os.environ,
        **librarian_env,
        "LIBRARIAN_MODELS_PATH": str(settings.models_dir),
        "LIBRARIAN_ADMINS": "console:alice",
        "LIBRARIAN_EVENT_LEASE_SECONDS": "2",
    }
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--user", "alice", "--channel", "general"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    engine = create_engine(librarian_env["DATABASE_URL"].replace("://", "+psycopg://", 1))
    try:
        assert bot.stdin is not None
        bot.stdin.write(f"@librarian {WARRANTY}\n".encode())
        bot.stdin.flush()

        def in_flight() -> list[str]:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        text("SELECT event_id FROM processed_events WHERE state = 'in_flight'")
                    ).scalars()
                )

        deadline = time.monotonic() + 90
        while not in_flight() and time.monotonic() < deadline and bot.poll() is None:
            time.sleep(0.02)
        (event_id,) = in_flight()
        time.sleep(0.3)
        bot.send_signal(signal.SIGKILL)
        bot.wait(10)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM messages")).scalar_one()
        assert in_flight() == [event_id] and stored == 0  # killed before its answer was stored
    finally:
        if bot.poll() is None:
            bot.kill()
        engine.dispose()

    # The bot starts again: it finds the question in flight, its owner's lease expired,
    # and answers it; once.
    app = App.build(settings.model_copy(update={"event_lease_seconds": 2.0}))
    out = console(app)
    app.start_background()
    try:
        assert await wait_until(
            lambda: app.store.event_state("console", event_id) == ("done", 2), 120
        )
        assert out.getvalue().count("Sources:") == 1, out.getvalue()
        assert "Sources:\n[1] m.pdf, p. 2" in out.getvalue()
        assert [role for role, _ in exchanges(app, WARRANTY)] == ["user", "assistant"]
        await asyncio.sleep(2.5)  # a lease period later, another pass finds nothing to do
        assert await app.dispatcher.recover() == 0
        assert out.getvalue().count("Sources:") == 1
    finally:
        await app.close()


async def test_a_question_that_keeps_failing_is_tried_three_times_then_reported(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings.model_copy(update={"event_retry_seconds": 0.1}))
    try:
        await say(app, "/librarian help")
        out = console(app)
        # The terminal breaks while the answer is written (the edge of the world), every time.
        writes = out.write
        broken = {"n": 0}

        def write(piece: str) -> int:
            if piece.startswith("librarian: ") and "Sorry" not in piece:
                broken["n"] += 1
                raise OSError("the terminal went away")
            return writes(piece)

        out.write = write  # type: ignore[method-assign]
        await app.dispatcher.handle(question("Ev-broken"))
        assert broken["n"] == 3
        assert (
            "Sorry, I could not answer your question (it failed 3 times). "
            "The details are in the bot's log. Please ask again." in out.getvalue()
        )
        assert app.store.event_state("console", "Ev-broken") == ("failed", 3)
        await app.dispatcher.handle(question("Ev-broken"))  # a redelivery: nothing more
        assert broken["n"] == 3
    finally:
        await app.close()


async def test_an_answer_stored_by_an_owner_who_lost_the_event_is_rolled_back(settings) -> None:
    app = App.build(settings)
    try:
        binding = await app.dispatcher.binding(GENERAL)
        slow = app.store.claim_event("console", "Ev-slow", "slow", {}, lease_seconds=0.05)
        await asyncio.sleep(0.2)  # the slow owner stopped renewing: its lease expired
        other = app.store.claim_event("console", "Ev-slow", "other", {}, lease_seconds=60)
        assert slow is not None and other is not None and other.attempts == 2

        def store(claim) -> int:
            return app.store.add_exchange(
                binding.id,
                None,
                WORLD_CUP,
                "an answer",
                author="console:alice",
                question_message_id=None,
                cited_chunk_ids=[],
                meta={},
                event=claim,
                reply="an answer",
            )

        with pytest.raises(EventTakenOver):
            store(slow)
        assert exchanges(app, WORLD_CUP) == []  # nothing of the slow owner's was kept
        answer_id = store(other)
        again = app.store.claim_event("console", "Ev-slow", "other", {}, lease_seconds=60)
        assert again is not None and again.effect == {
            "answer": {"message": answer_id, "reply": "an answer"}
        }
        assert not app.store.finish_event(slow) and app.store.finish_event(other)
        assert app.store.event_state("console", "Ev-slow") == ("done", 2)
    finally:
        await app.close()


async def test_an_event_left_in_flight_that_cannot_be_read_is_given_up_not_retried(
    settings,
) -> None:
    app = App.build(settings)
    out = console(app)
    try:
        app.store.claim_event(
            "console", "Ev-alien", "dead", {"type": "SomethingNew"}, lease_seconds=0.01
        )
        await asyncio.sleep(0.1)
        assert await app.dispatcher.recover() == 0
        assert app.store.event_state("console", "Ev-alien") == ("failed", 1)
        assert await app.dispatcher.recover() == 0 and out.getvalue() == ""
    finally:
        await app.close()


def test_migration_0010_keeps_every_recorded_event_as_done(librarian_env) -> None:
    from bot.config import load_settings

    db = open_database(load_settings())
    try:
        migrate.upgrade(db, "0009")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO processed_events (platform, event_id) "
                    "VALUES ('slack', 'Ev1'), ('console', 'console-2')"
                )
            )
        migrate.upgrade(db, "head")
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT platform, event_id, state, attempts, payload FROM processed_events "
                    "ORDER BY platform"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("console", "console-2", "done", 1, None),
            ("slack", "Ev1", "done", 1, None),
        ]
    finally:
        db.close()
