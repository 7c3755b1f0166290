"""The smaller holes of issue 16, attacked (the Slack and Discord ones are in their files).

Each test is named after the attack and failed on the code before the fix: a `forget`
reply that told whether another team holds the same bytes, connection strings printed
with their password, database errors logged with message text, and one platform's
fatal error stopping every other.  Real Postgres, real models, the real slack-bolt and
discord.py clients against the emulators in tests/.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from discord_emulator import DiscordEmulator, point_discord_py_at
from slack_emulator import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackEmulator
from sqlalchemy.exc import DBAPIError
from test_team_boundary import World, pdfs, places, world  # noqa: F401  (fixtures)

from bot.app import App
from bot.cli.run import configured_adapters
from bot.config import load_settings
from bot.redact import MaskingFormatter, mask_log_handlers, mask_secrets
from bot.store.database import open_database
from bot.supervisor import Supervisor, describe_state, recorded_states

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Hunter2-s3cret"


# -- no cross-team oracle -----------------------------------------------------------------------


def _shape(reply: str) -> str:
    """A forget reply without what legitimately differs: ids, names, counts."""
    return re.sub(r"\d+", "N", reply)


async def test_forget_does_not_tell_whether_another_team_holds_the_same_file(
    world: World,  # noqa: F811
    pdfs: dict[str, bytes],  # noqa: F811
) -> None:
    victim, _, mallory = places("slack")
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])

    # mallory holds two files: one nobody else has, and a copy of team A's secret.
    assert "Indexed" in await world.upload(mallory, "mallory", "mine.pdf", pdfs["manual"])
    alone = await world.command(mallory, "mallory", "forget mine.pdf")
    assert "Indexed" in await world.upload(mallory, "mallory", "mine.pdf", pdfs["secret"])
    shared = await world.command(mallory, "mallory", "forget mine.pdf")

    assert alone.startswith("Forgot #") and shared.startswith("Forgot #")
    assert _shape(alone) == _shape(shared), (alone, shared)
    assert "another" not in shared.lower() and "kept" not in shared.lower()
    # Team A's copy is untouched; the bytes are kept for it, which only the audit says.
    ws_a = (await world.app.dispatcher.binding(victim.conversation)).workspace
    [secret] = world.app.store.list_documents(ws_a.id)
    assert world.app.files.exists(secret.sha256)
    forgets = [e for e in world.app.store.audit_entries(20) if e["action"] == "forget"]
    assert [e["details"]["file_deleted"] for e in forgets] == [False, True]


# -- connection strings masked everywhere -------------------------------------------------------


def test_a_database_password_is_masked_in_every_form_of_connection_string() -> None:
    forms = {
        f"postgresql://lib:{PASSWORD}@db.example:5432/librarian": (
            "postgresql://lib:***@db.example:5432/librarian"
        ),
        f"postgresql://lib@db.example/librarian?sslmode=require&password={PASSWORD}": (
            "postgresql://lib@db.example/librarian?sslmode=require&password=***"
        ),
        f"host=db.example user=lib password={PASSWORD} dbname=librarian": (
            "host=db.example user=lib password=*** dbname=librarian"
        ),
        f"host=db.example password = '{PASSWORD} x' dbname=librarian": (
            "host=db.example password = *** dbname=librarian"
        ),
        # A password holding '@' (unencoded) is masked whole.
        f"postgresql://lib:{PASSWORD}@x@db.example/librarian": (
            "postgresql://lib:***@db.example/librarian"
        ),
        "postgresql://postgres:@/postgres?host=/tmp/pg": "postgresql://postgres@/postgres?host=/tmp/pg",
        "no connection string here: password is a word": (
            "no connection string here: password is a word"
        ),
    }
    for raw, shown in forms.items():
        assert mask_secrets(raw) == shown, raw


def test_a_password_in_database_url_query_is_not_printed_by_status_errors_or_logs(
    librarian_env: dict[str, str], tmp_path: Path
) -> None:
    # The test server trusts local logins, so a password in the query changes nothing but
    # what could be printed.
    url = librarian_env["DATABASE_URL"]
    with_password = url + ("&" if "?" in url else "?") + f"password={PASSWORD}"
    env = {**os.environ, "DATABASE_URL": with_password, "CI": "true"}
    status = subprocess.run(
        [sys.executable, "-m", "bot", "status", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert PASSWORD not in status.stdout + status.stderr
    assert "password=***" in json.loads(status.stdout)["database"]

    # An unreachable server: the one-line error names the URL, masked.
    down = f"postgresql://lib:{PASSWORD}@127.0.0.1:1/librarian?password={PASSWORD}"
    failed = subprocess.run(
        [sys.executable, "-m", "bot", "status"],
        cwd=REPO,
        env={**env, "DATABASE_URL": down},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2 and "cannot connect to" in failed.stderr
    assert PASSWORD not in failed.stdout + failed.stderr
    assert "lib:***@127.0.0.1:1" in failed.stderr

    # Anything logged through the CLI's handlers is masked too, tracebacks included.
    out = io.StringIO()
    logger = logging.getLogger("test.masking")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        mask_log_handlers(logger)
        assert isinstance(handler.formatter, MaskingFormatter)
        logger.warning("reconnecting to %s", with_password)
        try:
            raise RuntimeError(f"cannot use host=h password={PASSWORD}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    logged = out.getvalue()
    assert "reconnecting to" in logged and "RuntimeError" in logged
    assert PASSWORD not in logged


# -- no bound parameters in database errors ------------------------------------------------------


def test_a_failing_statement_logs_no_message_text(
    settings, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.store import migrate
    from bot.store.repo import Store

    db = open_database(settings)
    try:
        migrate.ensure_schema(db, auto_upgrade=True)
        store = Store(db)
        question = "What is the launch code of Nightjar? QUESTION-TEXT-4471"
        author = "slack:" + "UNIQUE-AUTHOR"  # (not as one literal: tracebacks show source)
        with pytest.raises(DBAPIError) as caught:  # no such channel binding: a foreign key
            store.add_message(987654, None, "user", question, author=author)
        with caplog.at_level(logging.ERROR):
            logging.getLogger("bot.dispatcher").error("failed", exc_info=caught.value)
        for shown in (str(caught.value), caplog.text):
            assert "QUESTION-TEXT-4471" not in shown and "slack:UNIQUE-AUTHOR" not in shown
        assert "messages" in str(caught.value)  # the statement itself is still said
        assert "parameters hidden" in str(caught.value)
    finally:
        db.close()


# -- each platform supervised on its own --------------------------------------------------------


async def test_one_platforms_revoked_token_does_not_stop_the_other_platforms(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = SlackEmulator()
    await slack.start()
    slack.add_user("UBOB", "bob")
    slack.add_user("UALICE", "alice")
    slack.add_channel("CGENERAL", "general")
    disc = DiscordEmulator(token="the-token-discord-knows")
    await disc.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("LIBRARIAN_SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("DISCORD_TOKEN", "a-revoked-token")
    monkeypatch.setenv("LIBRARIAN_ADMINS", "slack:UALICE")
    monkeypatch.setenv("LIBRARIAN_DISCORD_API_URL", disc.api_url)
    monkeypatch.setenv("LIBRARIAN_DISCORD_GATEWAY_URL", disc.gateway_url)
    point_discord_py_at(disc, monkeypatch)
    settings = load_settings()
    app = App.build(settings)
    app.answerer.max_answer_tokens = 16
    # Quick backoff for the test: 1 s, then 2 s, then given up.
    app.supervisor = Supervisor(app.store, initial_backoff_s=1.0, max_restarts=2)
    adapters = configured_adapters(settings, app)
    assert [a.platform for a in adapters] == ["slack", "discord"]
    running = asyncio.create_task(app.run_adapters(adapters))
    try:
        await slack.wait_connected()
        # Discord refuses the token: that adapter is restarted, with the reason shown ...
        restarting = await slack.wait_for(
            lambda: (
                app.supervisor.states.get("discord", {}).get("state") == "restarting"
                and app.supervisor.states["discord"]
            ),
            timeout=30,
        )
        assert "LoginFailure" in restarting["reason"]
        assert re.fullmatch(
            r"restarting in [0-9] s \(LoginFailure: .+\)", describe_state(restarting)
        )
        # ... tried again, then given up; Slack was never stopped.
        await slack.wait_for(
            lambda: app.supervisor.states["discord"]["state"] == "failed", timeout=30
        )
        logins = [c for c in disc.calls if c.path == "/users/@me"]
        assert len(logins) == 3  # the first start and two restarts
        assert not running.done()
        assert app.supervisor.states["slack"]["state"] == "running"

        # Slack still answers, and its status shows each platform: why one failed only
        # to LIBRARIAN_ADMINS (a platform's error may name another team's channel).
        def said() -> list[str]:
            return [c.args["text"] for c in slack.calls_of("chat.postMessage")]

        earlier = len(said())
        await slack.socket_send("slash_commands", slack.slash_command("CGENERAL", "UBOB", "status"))
        to_bob = (await slack.wait_for(lambda: said()[earlier:], timeout=30))[-1]
        assert "Platforms: discord failed; slack running" in to_bob, to_bob
        assert "LoginFailure" not in to_bob
        await slack.socket_send(
            "slash_commands", slack.slash_command("CGENERAL", "UALICE", "status")
        )
        to_alice = (await slack.wait_for(lambda: said()[earlier + 1 :], timeout=30))[-1]
        assert "Platforms: discord failed (LoginFailure: " in to_alice, to_alice
        assert "slack running" in to_alice

        # So does `librarian status --json`, from another process.
        status = subprocess.run(
            [sys.executable, "-m", "bot", "status", "--json"],
            cwd=REPO,
            env={**os.environ, "CI": "true"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)["adapters"]
        assert shown["slack"]["state"] == "running" and shown["slack"]["described"] == "running"
        assert shown["discord"]["state"] == "failed" and shown["discord"]["restarts"] == 2
        assert shown["discord"]["described"].startswith("failed (LoginFailure: ")
        assert "a-revoked-token" not in status.stdout
    finally:
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.stop()
        await asyncio.wait_for(running, 30)
        assert recorded_states(app.store)["slack"]["state"] == "stopped"
        await app.close()
        await slack.close()
        await disc.close()


async def test_a_lone_platform_with_a_wrong_token_still_stops_the_run_with_one_line(
    settings,
) -> None:
    """A setting that waiting cannot fix is not retried; with no platform left running,
    `librarian run` ends with the adapter's own one-line error (exit code 2)."""
    from adapters.slack import SlackAdapter
    from bot.errors import ConfigError

    slack = SlackEmulator()
    await slack.start()
    app = App.build(settings)
    try:
        adapter = SlackAdapter(bot_token="xoxb-wrong", app_token=APP_TOKEN, api_url=slack.api_url)
        with pytest.raises(ConfigError, match="auth.test failed") as raised:
            await asyncio.wait_for(app.run_adapters([adapter]), 30)
        assert raised.value.exit_code == 2
        state = recorded_states(app.store)["slack"]
        assert state["state"] == "failed" and state["restarts"] == 0
        assert len(slack.calls_of("auth.test", ok_only=False)) == 1  # not retried
    finally:
        await app.close()
        await slack.close()
