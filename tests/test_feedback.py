"""Feedback on answers, as conversations in console channels: the command, reactions as
the core sees them, retention, clear and the CLI export.

Real Postgres and real models; the platforms' own reactions (Slack, Discord, Matrix)
are in their test files.  alice is an admin (console:alice), bob is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from helpers import converse, make_pdf, say
from sqlalchemy import text
from typer.testing import CliRunner

from bot.app import App
from bot.cli import feedback as feedback_cli
from bot.events import ConversationRef, ReactionAdded, UserRef
from bot.feedback import verdict_of_reaction, verdict_of_word
from bot.knowledge.texts import NOT_FOUND
from bot.retention import run_retention

REPO = Path(__file__).resolve().parents[1]
GENERAL = ConversationRef("console", "", "general", None, "#general")
WARRANTY = "How long is the warranty of the Zephyr X200?"


@pytest.fixture
async def app(settings):
    app = App.build(settings)
    app.answerer.max_answer_tokens = 24  # short answers: the tests are about feedback
    app.start_background()
    yield app
    await app.close()


def feedback_rows(app: App) -> list[dict]:
    with app.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM feedback ORDER BY id")).all()
    return [dict(r._mapping) for r in rows]


def last_answer_id(app: App) -> str:
    """The platform id the latest answer was posted under (what a reaction names)."""
    with app.db.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT platform_message_id FROM messages WHERE role = 'assistant' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()


def age(app: App, table: str, by: timedelta) -> None:
    with app.db.engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET created_at = created_at - :by"), {"by": by})


def test_which_reactions_and_words_are_verdicts() -> None:
    for good in ("+1", "thumbsup", ":+1:", "+1::skin-tone-4", "👍", "👍️", "👍🏽"):
        assert verdict_of_reaction(good) == "good", good
    for bad in ("-1", "thumbsdown", "👎", "👎🏿"):
        assert verdict_of_reaction(bad) == "bad", bad
    for other in ("eyes", "heart", "❤️", "", "thumbs"):
        assert verdict_of_reaction(other) is None, other
    assert [verdict_of_word(w) for w in ("GOOD", "bad", "👍", "down", "meh")] == [
        "good",
        "bad",
        "good",
        "bad",
        None,
    ]


async def test_feedback_bad_with_a_note_rates_the_latest_answer_with_its_sources(
    app: App, tmp_path: Path
) -> None:
    manual = make_pdf(tmp_path / "manual.pdf")
    assert "Indexed manual.pdf" in await say(app, f"/librarian upload {manual}")

    reply = await say(app, "/librarian feedback bad wrong page", user="bob")
    assert reply.strip() == (
        "librarian (only you): There is no answer of mine in this conversation to rate."
    )

    answer = await say(app, f"@librarian {WARRANTY}", user="bob")
    assert "Sources:\n[1] manual.pdf, p. 2" in answer, answer

    # "thanks!" and its fixed reply come between: the verdict is still on the answer
    # (seen by hand in session 14: it rated the reply to a message of only "👍").
    assert "You're welcome" in await say(app, "@librarian thanks!", user="bob")
    reply = await say(app, "/librarian feedback bad wrong page", user="bob")
    assert reply.startswith("librarian (only you): Thanks: recorded bad (wrong page)"), reply
    assert f'my answer to "{WARRANTY}"' in reply
    (row,) = feedback_rows(app)
    binding = await app.dispatcher.binding(GENERAL)
    assert (row["binding_id"], row["author"], row["verdict"], row["note"]) == (
        binding.id,
        "console:bob",
        "bad",
        "wrong page",
    )
    assert row["question"] == WARRANTY
    assert row["answer"] and row["answer"] in answer
    assert row["sources"][0]["document"] == "manual.pdf"
    assert row["sources"][0]["pages"] == "p. 2"
    # The sources as stored are the ones the answer cited, in order.
    cited = answer.split("Sources:\n", 1)[1].strip().splitlines()
    assert [f"[{i}] {s['document']}, {s['pages']}" for i, s in enumerate(row["sources"], 1)] == [
        line.split(" (")[0] for line in cited
    ]

    # Rating again replaces the verdict (a new verdict without a note drops the old note);
    # someone else's verdict is a row of its own.
    reply = await say(app, "/librarian feedback good", user="bob")
    assert "Your feedback on my answer to" in reply and "is now: good." in reply
    reply = await say(app, "/librarian feedback 👍 clear and right", user="alice")
    assert "recorded good (clear and right)" in reply
    rows = feedback_rows(app)
    assert [(r["author"], r["verdict"], r["note"]) for r in rows] == [
        ("console:bob", "good", None),
        ("console:alice", "good", "clear and right"),
    ]

    reply = await say(app, "/librarian feedback meh", user="bob")
    assert "say good or bad" in reply and "Usage: /librarian feedback good|bad [<note>]" in reply
    reply = await say(app, "/librarian help feedback", user="bob")
    assert "(everyone)" in reply and "Rating again replaces your verdict" in reply

    # A reaction, as an adapter delivers it: 👎 on the answer replaces bob's verdict;
    # other reactions and reactions on other messages record nothing and leave no trace.
    posted = last_answer_id(app)
    bob = UserRef("console", "bob")
    for event_id, message_id, emoji in (
        ("r1", posted, "eyes"),
        ("r2", "line-not-an-answer", "+1"),
        ("r3", posted, "-1"),
    ):
        await app.dispatcher.handle(ReactionAdded(event_id, GENERAL, bob, message_id, emoji))
    rows = feedback_rows(app)
    assert [(r["author"], r["verdict"]) for r in rows] == [
        ("console:bob", "bad"),
        ("console:alice", "good"),
    ]
    with app.db.engine.connect() as conn:
        seen = conn.execute(
            text("SELECT event_id FROM processed_events WHERE event_id LIKE 'r_' ORDER BY 1")
        ).scalars()
        assert list(seen) == ["r2", "r3"]  # "eyes" is not feedback: not even de-duplicated

    # In another channel there is nothing to rate.
    reply = await say(app, "/librarian feedback good", channel="random", user="bob")
    assert "There is no answer of mine in this conversation to rate." in reply


async def test_feedback_is_deleted_by_the_channels_retention_and_by_clear(app: App) -> None:
    out = await converse(app, ["@librarian What is the warranty?", "/librarian feedback bad"])
    assert NOT_FOUND in out.getvalue() and "recorded bad" in out.getvalue()
    out = await converse(
        app, ["@librarian What is the price?", "/librarian feedback good"], channel="random"
    )
    assert "recorded good" in out.getvalue()
    assert len(feedback_rows(app)) == 2

    # #general keeps an hour, #random keeps everything; then everything is two hours old.
    assert "is now 1h" in await say(app, "/librarian retention 1h")
    age(app, "messages", timedelta(hours=2))
    age(app, "feedback", timedelta(hours=2))
    run = await asyncio.to_thread(run_retention, app.store)
    assert run.ran and run.deleted == {"console:general": 2}
    assert run.feedback == {"console:general": 1}
    assert "deleted 1 verdict on answers (console:general: 1)" in run.describe()
    assert [r["verdict"] for r in feedback_rows(app)] == ["good"]  # #random's
    (entry, *_) = [e for e in app.store.audit_entries(10) if e["action"] == "retention_run"]
    assert entry["details"]["feedback"] == {"console:general": 1}

    # A verdict given just now on an answer past the retention goes with the answer:
    # it holds a copy of it, which must not outlive it.
    out = await converse(app, ["@librarian What is the warranty?"])
    age(app, "messages", timedelta(hours=2))
    assert "recorded bad" in await say(app, "/librarian feedback bad")
    run = await asyncio.to_thread(run_retention, app.store)
    assert run.feedback == {"console:general": 1}
    assert [r["verdict"] for r in feedback_rows(app)] == ["good"]

    # /librarian clear takes the channel's feedback with its messages.
    reply = await say(app, "/librarian clear", channel="random")
    assert (
        "Cleared the history of #random: 2 stored messages deleted, and 1 verdict on answers."
        in reply
    )
    assert feedback_rows(app) == []


async def test_the_cli_exports_feedback(app: App, librarian_env: dict[str, str]) -> None:
    out = await converse(
        app,
        ["@librarian What is the warranty?", "/librarian feedback bad nothing found"],
        user="bob",
    )
    assert "recorded bad (nothing found)" in out.getvalue()
    out = await converse(app, ["@librarian What is the price?", "/librarian feedback good"])
    assert "recorded good" in out.getvalue()

    cli = typer.Typer()
    cli.command()(feedback_cli.feedback)
    result = CliRunner().invoke(cli, ["--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.output)
    assert [(e["author"], e["verdict"], e["note"]) for e in exported] == [
        ("console:alice", "good", None),  # newest first
        ("console:bob", "bad", "nothing found"),
    ]
    assert exported[1]["question"] == "What is the warranty?"
    assert exported[1]["answer"].startswith(NOT_FOUND)
    assert exported[1]["channel"] == "console:general" and exported[1]["sources"] == []
    assert exported[1]["message_id"] and exported[1]["created_at"]

    result = CliRunner().invoke(cli, ["--limit", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "console:general  console:alice  good" in lines[0]
    assert lines[1] == "  Q: What is the price?" and lines[2].startswith(f"  A: {NOT_FOUND}")
    assert lines[-1] == "  Sources: none"
    result = CliRunner().invoke(cli, ["--channel", "console:random"])
    assert result.output.strip() == "no feedback yet"

    # `librarian feedback` is a command of the real command line.
    env = {**os.environ, **librarian_env}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "feedback", "--json", "--channel", "console:general"],
        env=env,
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    assert [e["verdict"] for e in json.loads(done.stdout)] == ["good", "bad"]
