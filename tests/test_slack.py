"""The Slack adapter: the real slack-bolt app against a wire-level Slack emulator.

The emulator (tests/slack_emulator.py) serves the Web API on 127.0.0.1 through the
clients' ``base_url``, hands out a Socket Mode websocket, serves file downloads, and
sends signed Events API and slash-command requests.  Real Postgres and real models:
UADMIN is a Slack workspace admin (users.info), UBOB is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("slack_bolt")

from helpers import make_pdf  # noqa: E402
from slack_emulator import (  # noqa: E402
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    TEAM,
    SlackEmulator,
)
from sqlalchemy import text  # noqa: E402

from adapters.slack import (  # noqa: E402
    EVENTS_PATH,
    SlackAdapter,
    translate,  # noqa: E402
)
from bot.app import App  # noqa: E402
from bot.cli.run import configured_adapters  # noqa: E402
from bot.knowledge.texts import NOT_FOUND  # noqa: E402

GENERAL = "CGENERAL"
RANDOM = "CRANDOM"
ADMIN = "UADMIN"
BOB = "UBOB"
WARRANTY = "How long is the warranty of the Zephyr X200?"
ACK_LIMIT_S = 3.0  # Slack's own limit: an event or command not acked in 3 s failed
MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "slack-app-manifest.yaml"


def manifest() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    emu = SlackEmulator()
    # The bot token has exactly the manifest's scopes: a call needing another one fails.
    emu.scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    await emu.start()
    emu.add_user(ADMIN, "ada", admin=True)
    emu.add_user(BOB, "bob")
    emu.add_channel(GENERAL, "general")
    yield emu
    await emu.close()


@pytest.fixture
def slack_settings(settings, emulator: SlackEmulator, monkeypatch: pytest.MonkeyPatch):
    """Settings for Slack, given the conventional SLACK_* names and the emulator's API root."""
    from bot.config import load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("LIBRARIAN_SLACK_API_URL", emulator.api_url)
    monkeypatch.setenv("LIBRARIAN_SLACK_HTTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LIBRARIAN_SLACK_HTTP_PORT", "0")
    return load_settings()


@contextlib.asynccontextmanager
async def running_bot(
    settings: Any, emulator: SlackEmulator, mode: str
) -> AsyncIterator[tuple[App, SlackAdapter]]:
    """The whole bot, with the Slack adapter wired as `librarian run` wires it."""
    settings = settings.model_copy(update={"slack_mode": mode})
    app = App.build(settings)
    app.answerer.max_answer_tokens = 24  # short answers: the test is about transport
    (adapter,) = configured_adapters(settings, app)
    assert isinstance(adapter, SlackAdapter) and adapter.mode == mode
    app.dispatcher.add_adapter(adapter)
    app.start_background()
    runner = asyncio.create_task(adapter.start(app.dispatcher.handle))
    try:
        if mode == "socket":
            await emulator.wait_connected()
        else:
            await emulator.wait_for(lambda: adapter.bound_port or runner.done(), timeout=10)
            assert not runner.done(), runner
        yield app, adapter
    finally:
        await adapter.stop()
        await asyncio.wait_for(runner, 10)
        await app.close()


def count(app: App, table: str) -> int:
    with app.db.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def in_thread(emulator: SlackEmulator, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in emulator.posted() if m["thread_ts"] == thread_ts]


async def settle(adapter: SlackAdapter) -> None:
    """Let the adapter finish the work of every event received so far."""
    await asyncio.sleep(0.1)
    await adapter.drain(timeout=120)


# -- Socket Mode ----------------------------------------------------------------------------


async def test_socket_mode_indexes_a_shared_file_answers_in_thread_and_forgets_deleted_files(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    async with running_bot(slack_settings, emulator, "socket") as (app, adapter):
        # A file is shared: Slack sends the message and a file_shared event; both are acked
        # at once and the file is indexed once, with a reply in the sharing message's thread.
        shared = emulator.share_file(GENERAL, BOB, "manual.pdf", pdf)
        ack_message, took_message = await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(shared))
        )
        file_shared = {
            "type": "file_shared",
            "file_id": shared.id,
            "user_id": BOB,
            "file": {"id": shared.id},
            "channel_id": GENERAL,
            "event_ts": emulator.next_ts(),
        }
        ack_file, took_file = await emulator.socket_send(
            "events_api", emulator.event_callback(file_shared)
        )
        assert ack_message["envelope_id"] and ack_file["envelope_id"]
        assert max(took_message, took_file) < ACK_LIMIT_S
        await emulator.wait_for(lambda: in_thread(emulator, shared.ts), timeout=60)
        await settle(adapter)
        replies = in_thread(emulator, shared.ts)
        assert [m["text"] for m in replies] == ["Indexed manual.pdf: 3 pages, 3 chunks."]
        assert len(emulator.calls_of("download")) == 1
        (doc,) = app.store.documents_by_source_file("slack", shared.id)
        permalink = f"https://emulated.slack.com/archives/{GENERAL}/p{shared.ts.replace('.', '')}"
        assert doc.source_url == permalink and doc.uploader == f"slack:{BOB}"

        # A mention: acked at once, eyes while working, answer threaded, streamed, cited.
        mention = emulator.mention(GENERAL, BOB, WARRANTY)
        _, took = await emulator.socket_send("events_api", emulator.event_callback(mention))
        assert took < ACK_LIMIT_S
        await emulator.wait_for(
            lambda: any("Sources:" in m["text"] for m in in_thread(emulator, mention["ts"])),
            timeout=90,
        )
        await settle(adapter)
        (answer,) = in_thread(emulator, mention["ts"])
        posts = [
            c
            for c in emulator.calls_of("chat.postMessage")
            if c.args.get("thread_ts") == mention["ts"]
        ]
        assert len(posts) == 1
        updates = [c for c in emulator.calls_of("chat.update") if c.args["ts"] == answer["ts"]]
        assert updates, "the answer was posted once, not streamed"
        assert posts[0].args["text"] != answer["text"]  # the first post was a partial answer
        # Throttled to about one edit a second (the last one, with the sources, comes at once).
        times = [posts[0].at] + [c.at for c in updates[:-1]]
        assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False)), times
        final = answer["text"]
        assert "Sources:\n[1] manual.pdf, p. 2" in final and f"({permalink})" in final, final
        reactions = [
            (c.method, c.args["name"], c.args["timestamp"])
            for c in emulator.calls
            if c.method.startswith("reactions.")
        ]
        assert reactions == [
            ("reactions.add", "eyes", mention["ts"]),
            ("reactions.remove", "eyes", mention["ts"]),
        ]
        assert count(app, "messages") == 2  # the question and the answer, in the thread
        assert all(c.token == BOT_TOKEN for c in emulator.calls if c.method.startswith("chat."))

        # A private question (a slash command over Socket Mode): ephemeral messages cannot
        # be edited, so the answer is posted once more when it is complete.
        updates_before = len(emulator.calls_of("chat.update"))
        _, took = await emulator.socket_send(
            "slash_commands", emulator.slash_command(GENERAL, BOB, f"ask {WARRANTY}")
        )
        assert took < ACK_LIMIT_S
        await emulator.wait_for(
            lambda: any(
                "Sources:" in c.args["text"] for c in emulator.calls_of("chat.postEphemeral")
            ),
            timeout=90,
        )
        await settle(adapter)
        private = emulator.calls_of("chat.postEphemeral")
        assert [c.args["user"] for c in private] == [BOB] * len(private)
        assert "Sources:" in private[-1].args["text"] and len(private) <= 2
        assert len(emulator.calls_of("chat.update")) == updates_before
        assert count(app, "messages") == 2  # private questions stay out of the history

        # The file is deleted in Slack: its document, chunks and stored bytes go.
        deleted = {"type": "file_deleted", "file_id": shared.id, "event_ts": emulator.next_ts()}
        _, took = await emulator.socket_send("events_api", emulator.event_callback(deleted))
        assert took < ACK_LIMIT_S
        await settle(adapter)
        assert app.store.documents_by_source_file("slack", shared.id) == []
        assert count(app, "chunks") == 0
        assert not app.files.exists(doc.sha256)
        forgets = [e for e in app.store.audit_entries(50) if e["action"] == "forget"]
        assert forgets and forgets[0]["actor"] == "slack:file-removed"

        # Deleting the message that shared a file forgets it too ...
        other = emulator.share_file(GENERAL, BOB, "manual-2.pdf", pdf + b"\n% copy\n")
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(other))
        )
        await settle(adapter)
        assert len(app.store.documents_by_source_file("slack", other.id)) == 1
        message_deleted = {
            "type": "message",
            "subtype": "message_deleted",
            "channel": GENERAL,
            "ts": emulator.next_ts(),
            "deleted_ts": other.ts,
            "hidden": True,
            "previous_message": emulator.file_message(other),
        }
        await emulator.socket_send("events_api", emulator.event_callback(message_deleted))
        await settle(adapter)
        assert app.store.documents_by_source_file("slack", other.id) == []

        # ... and so does reconciliation, for a file deleted while no event came.
        third = emulator.share_file(GENERAL, BOB, "manual-3.pdf", pdf + b"\n% third\n")
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(third))
        )
        await settle(adapter)
        assert len(app.store.documents_by_source_file("slack", third.id)) == 1
        del emulator.files[third.id]
        assert await adapter.reconcile() == [third.id]
        assert app.store.documents_by_source_file("slack", third.id) == []


async def test_a_shared_file_of_a_kind_librarian_does_not_read_is_never_downloaded_and_bob_is_told(
    slack_settings, emulator: SlackEmulator
) -> None:
    """Slack sends every share; the core's download rule (``may_download``, which the
    Discord and Matrix adapters filter by) turns a program down by its name and type
    before any byte is fetched, and says so in the sharing message's thread, once."""
    async with running_bot(slack_settings, emulator, "socket") as (app, adapter):
        tool = emulator.share_file(
            GENERAL, BOB, "setup.exe", b"MZ\x90\x00" * 64, "application/x-msdownload"
        )
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(tool))
        )
        file_shared = {
            "type": "file_shared",
            "file_id": tool.id,
            "user_id": BOB,
            "file": {"id": tool.id},
            "channel_id": GENERAL,
            "event_ts": emulator.next_ts(),
        }
        await emulator.socket_send("events_api", emulator.event_callback(file_shared))
        await emulator.wait_for(lambda: in_thread(emulator, tool.ts), timeout=60)
        await settle(adapter)
        (told,) = in_thread(emulator, tool.ts)
        assert told["text"].startswith(
            "I can't index that: setup.exe is not a kind of file Librarian reads. "
            "Librarian can read PDF (.pdf), Word (.docx)"
        ), told["text"]
        assert emulator.calls_of("download") == []
        assert count(app, "documents") == 0

        # Where shares are not indexed (autoindex off), nothing is said about them.
        binding = await app.dispatcher.binding(translate.conversation(TEAM, GENERAL))
        app.store.update_binding(binding.id, auto_index=False)
        song = emulator.share_file(GENERAL, BOB, "song.mp3", b"ID3\x03" + bytes(64), "audio/mpeg")
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(song))
        )
        await settle(adapter)
        assert in_thread(emulator, song.ts) == []
        assert emulator.calls_of("download") == []


# -- feedback -------------------------------------------------------------------------------


async def test_a_thumbs_up_on_the_answer_is_stored_with_the_question_and_its_sources(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    async with running_bot(slack_settings, emulator, "socket") as (app, adapter):
        shared = emulator.share_file(GENERAL, BOB, "manual.pdf", pdf)
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(shared))
        )
        await emulator.wait_for(lambda: in_thread(emulator, shared.ts), timeout=60)
        mention = emulator.mention(GENERAL, BOB, WARRANTY)
        await emulator.socket_send("events_api", emulator.event_callback(mention))
        await emulator.wait_for(
            lambda: any("Sources:" in m["text"] for m in in_thread(emulator, mention["ts"])),
            timeout=90,
        )
        await settle(adapter)
        (answer,) = in_thread(emulator, mention["ts"])

        # The bot's own :eyes: on the question, and a :tada: on the answer: not feedback.
        for event in (
            emulator.reaction(GENERAL, BOT_USER, mention["ts"], "eyes", item_user=BOB),
            emulator.reaction(GENERAL, BOB, answer["ts"], "tada"),
        ):
            _, took = await emulator.socket_send("events_api", emulator.event_callback(event))
            assert took < ACK_LIMIT_S
        # bob gives the answer a thumbs-up: acked at once, stored with what it rates.
        thumbs_up = emulator.reaction(GENERAL, BOB, answer["ts"], "+1")
        assert thumbs_up["item_user"] == BOT_USER
        _, took = await emulator.socket_send("events_api", emulator.event_callback(thumbs_up))
        assert took < ACK_LIMIT_S
        await settle(adapter)
        (entry,) = app.store.feedback_entries()
        assert (entry.channel, entry.author, entry.verdict) == (
            f"slack:T0EMU/{GENERAL}",
            f"slack:{BOB}",
            "good",
        )
        assert entry.question == WARRANTY
        # Stored as written; posted with &, < and > escaped for Slack (the evidence's
        # "> " quotes are "&gt; " in the text, which Slack shows as quotes).
        assert entry.answer and translate.escape(entry.answer) in answer["text"]
        assert entry.sources[0]["document"] == "manual.pdf"
        assert entry.sources[0]["pages"] == "p. 2"
        assert entry.thread_id == mention["ts"] and entry.platform_message_id == answer["ts"]

        # Changing his mind (a thumbs-down, with a skin tone) replaces his verdict; a
        # redelivered event changes nothing; the bot says nothing about reactions.
        posts_before = len(emulator.calls_of("chat.postMessage"))
        down = emulator.event_callback(
            emulator.reaction(GENERAL, BOB, answer["ts"], "-1::skin-tone-3")
        )
        await emulator.socket_send("events_api", down)
        await emulator.socket_send("events_api", down)
        await settle(adapter)
        assert [(e.author, e.verdict) for e in app.store.feedback_entries()] == [
            (f"slack:{BOB}", "bad")
        ]
        assert len(emulator.calls_of("chat.postMessage")) == posts_before

        # The admin rates it by command, with a note; the reply is private.
        await emulator.socket_send(
            "slash_commands", emulator.slash_command(GENERAL, ADMIN, "feedback good clear")
        )
        await settle(adapter)
        (said,) = emulator.calls_of("chat.postEphemeral")
        assert said.args["user"] == ADMIN
        assert said.args["text"].startswith("Thanks: recorded good (clear) for my answer to")
        assert [(e.author, e.verdict, e.note) for e in app.store.feedback_entries()] == [
            (f"slack:{ADMIN}", "good", "clear"),
            (f"slack:{BOB}", "bad", None),
        ]


# -- HTTP Events API ------------------------------------------------------------------------


async def test_http_events_are_verified_acked_at_once_and_answered_once(
    slack_settings, emulator: SlackEmulator
) -> None:
    async with running_bot(slack_settings, emulator, "http") as (app, adapter):
        url = f"http://127.0.0.1:{adapter.bound_port}{EVENTS_PATH}"
        before = (count(app, "processed_events"), count(app, "messages"))

        # A bad signature, or a timestamp older than 5 minutes: 401, nothing stored.
        callback = emulator.event_callback(emulator.mention(GENERAL, BOB, WARRANTY))
        status, _, _ = await emulator.post_event(url, callback, signature="v0=" + "0" * 64)
        assert status == 401
        stale = int(time.time()) - 6 * 60
        status, _, _ = await emulator.post_event(url, callback, timestamp=stale)
        assert status == 401
        await settle(adapter)
        assert (count(app, "processed_events"), count(app, "messages")) == before
        assert emulator.posted() == []

        # Slack checks the endpoint when the Events API URL is saved.
        challenge = {"token": "t", "challenge": "ch4ll3nge", "type": "url_verification"}
        status, body, _ = await emulator.post_event(url, challenge)
        assert status == 200 and "ch4ll3nge" in body

        # The same event four times (three redeliveries, X-Slack-Retry-Num), while the
        # first is in flight: every delivery acked at once, one answer.
        mention = emulator.mention(GENERAL, BOB, "Who won the football world cup in 1998?")
        callback = emulator.event_callback(mention, event_id="Ev0REDELIVERED")
        results = await asyncio.gather(
            emulator.post_event(url, callback),
            *(emulator.post_event(url, callback, retry_num=n) for n in (1, 2, 3)),
        )
        assert [status for status, _, _ in results] == [200] * 4
        assert max(took for _, _, took in results) < ACK_LIMIT_S
        await emulator.wait_for(lambda: in_thread(emulator, mention["ts"]), timeout=60)
        await settle(adapter)
        (answer,) = in_thread(emulator, mention["ts"])
        assert answer["text"].startswith(NOT_FOUND)
        with app.db.engine.connect() as conn:
            seen = conn.execute(
                text("SELECT count(*) FROM processed_events WHERE event_id = 'Ev0REDELIVERED'")
            ).scalar_one()
        assert seen == 1

        # A 429 with Retry-After on chat.postMessage: the bot waits, then posts once.
        emulator.fail_next("chat.postMessage", 429, retry_after=1)
        status, body, took = await emulator.post_command(
            url, emulator.slash_command(GENERAL, BOB, "help")
        )
        assert status == 200 and took < ACK_LIMIT_S
        await emulator.wait_for(lambda: emulator.posted(GENERAL)[1:], timeout=30)
        await settle(adapter)
        attempts = [
            c
            for c in emulator.calls_of("chat.postMessage", ok_only=False)
            if not c.args.get("thread_ts")
        ]
        assert [c.status for c in attempts] == [429, 200]
        assert attempts[1].at - attempts[0].at >= 1.0
        helps = [m for m in emulator.posted(GENERAL) if "Librarian commands" in m["text"]]
        assert len(helps) == 1

        # A non-admin's /librarian retention: an ephemeral refusal, nothing changed.
        posted_before = len(emulator.posted())
        status, _, took = await emulator.post_command(
            url, emulator.slash_command(GENERAL, BOB, "retention 1d")
        )
        assert status == 200 and took < ACK_LIMIT_S
        await emulator.wait_for(lambda: emulator.calls_of("chat.postEphemeral"), timeout=30)
        await settle(adapter)
        (refusal,) = emulator.calls_of("chat.postEphemeral")
        assert refusal.args["user"] == BOB and refusal.args["channel"] == GENERAL
        assert refusal.args["text"] == "Refused: only admins may do that."
        assert len(emulator.posted()) == posted_before
        binding = next(b for b in app.store.bindings() if b.channel_id == GENERAL)
        assert binding.retention_seconds is None

        # A workspace admin (users.info: is_admin) may.
        await emulator.post_command(url, emulator.slash_command(GENERAL, ADMIN, "retention 1d"))
        await emulator.wait_for(
            lambda: [m for m in emulator.posted() if "now 1d" in m["text"]], timeout=30
        )
        binding = next(b for b in app.store.bindings() if b.channel_id == GENERAL)
        assert binding.retention_seconds == 86400
        assert [c.args["user"] for c in emulator.calls_of("users.info")] == [BOB, ADMIN]


async def test_upload_by_slash_command_takes_the_latest_file_or_a_link(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    async with running_bot(slack_settings, emulator, "http") as (app, adapter):
        # Auto-indexing off: a shared file waits for /librarian upload.
        binding = await app.dispatcher.binding(translate.conversation("T0EMU", GENERAL))
        app.store.update_binding(binding.id, auto_index=False)
        url = f"http://127.0.0.1:{adapter.bound_port}{EVENTS_PATH}"
        older = emulator.share_file(GENERAL, BOB, "old.pdf", pdf + b"\n% old\n")
        latest = emulator.share_file(GENERAL, BOB, "manual.pdf", pdf)
        latest.created += 1
        await emulator.post_event(url, emulator.event_callback(emulator.file_message(latest)))
        await settle(adapter)
        assert app.store.list_documents(binding.workspace.id) == []

        await emulator.post_command(url, emulator.slash_command(GENERAL, BOB, "upload"))
        await emulator.wait_for(
            lambda: [m for m in emulator.posted() if m["text"].startswith("Indexed")], 60
        )
        await settle(adapter)
        (listed,) = emulator.calls_of("files.list")
        assert listed.args["channel"] == GENERAL and listed.args["user"] == BOB
        assert int(listed.args["count"]) == 1
        (doc,) = app.store.list_documents(binding.workspace.id)
        assert doc.file_name == "manual.pdf" and doc.source_file_id == latest.id

        # A link to a file; Slack answers the download with its sign-in page: refused.
        login = emulator.share_file(GENERAL, BOB, "notes.pdf", pdf, serve_login_page=True)
        link = f"<https://emulated.slack.com/files/{BOB}/{login.id}/notes.pdf>"
        await emulator.post_command(url, emulator.slash_command(GENERAL, BOB, f"upload {link}"))
        await emulator.wait_for(
            lambda: [m for m in emulator.posted() if "web page instead of notes.pdf" in m["text"]],
            30,
        )
        assert [c.args["file"] for c in emulator.calls_of("files.info")][-1] == login.id
        assert len(app.store.list_documents(binding.workspace.id)) == 1
        assert older.id not in {
            d.source_file_id for d in app.store.list_documents(binding.workspace.id)
        }


async def test_a_file_named_like_a_channel_ping_does_not_ping_the_channel_on_slack(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    """``<!channel>``, ``<@U…>`` and masked links in a file name are shown as text."""
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    name = "<!channel> & <@UADMIN> <mailto:boss@evil.example|payroll>.pdf"
    async with running_bot(slack_settings, emulator, "socket") as (app, adapter):
        shared = emulator.share_file(GENERAL, BOB, name, pdf)
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(shared))
        )
        await emulator.wait_for(lambda: in_thread(emulator, shared.ts), timeout=60)
        await emulator.socket_send("slash_commands", emulator.slash_command(GENERAL, BOB, "docs"))
        await emulator.wait_for(lambda: len(emulator.calls_of("chat.postMessage")) == 2, 30)
        await settle(adapter)
        (indexed,) = in_thread(emulator, shared.ts)
        shown = (
            "&lt;!channel&gt; &amp; &lt;@UADMIN&gt; &lt;mailto:boss@evil.example|payroll&gt;.pdf"
        )
        assert indexed["text"] == f"Indexed {shown}: 3 pages, 3 chunks."
        _, docs = emulator.calls_of("chat.postMessage")  # the list of documents
        assert docs.args.get("thread_ts") is None and shown in docs.args["text"]
        sent = [c.args["text"] for c in emulator.calls if "text" in c.args]
        assert sent and not any("<" in t or ">" in t for t in sent), sent
        # The name itself is stored as it was given: only what Slack displays is escaped.
        (doc,) = app.store.documents_by_source_file("slack", shared.id)
        assert doc.file_name == name


async def test_deleting_one_slack_share_forgets_the_file_only_in_that_channels_workspace(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    emulator.add_channel(RANDOM, "random")
    async with running_bot(slack_settings, emulator, "socket") as (app, adapter):
        # One file shared in two channels, each reading its own workspace.
        shared = emulator.share_file(GENERAL, BOB, "manual.pdf", pdf)
        emulator.share_again(shared, RANDOM)
        for channel in (GENERAL, RANDOM):
            await emulator.socket_send(
                "events_api", emulator.event_callback(emulator.file_message(shared, channel))
            )
        await settle(adapter)
        docs = app.store.documents_by_source_file("slack", shared.id)
        assert len(docs) == 2 and len({d.workspace_id for d in docs}) == 2
        random_ws = (await app.dispatcher.binding(translate.conversation(TEAM, RANDOM))).workspace
        [kept] = [d for d in docs if d.workspace_id == random_ws.id]

        # The message that shared it in #general is deleted: #random keeps its document.
        deleted = {
            "type": "message",
            "subtype": "message_deleted",
            "channel": GENERAL,
            "ts": emulator.next_ts(),
            "deleted_ts": shared.ts,
            "hidden": True,
            "previous_message": emulator.file_message(shared),
        }
        await emulator.socket_send("events_api", emulator.event_callback(deleted))
        await settle(adapter)
        assert [d.id for d in app.store.documents_by_source_file("slack", shared.id)] == [kept.id]
        assert app.files.exists(kept.sha256)

        # The file itself is deleted: gone everywhere.
        gone = {"type": "file_deleted", "file_id": shared.id, "event_ts": emulator.next_ts()}
        await emulator.socket_send("events_api", emulator.event_callback(gone))
        await settle(adapter)
        assert app.store.documents_by_source_file("slack", shared.id) == []
        assert not app.files.exists(kept.sha256)


async def test_a_wrong_bot_token_stops_the_start_with_one_clear_line(
    emulator: SlackEmulator,
) -> None:
    from bot.errors import ConfigError

    adapter = SlackAdapter(bot_token="xoxb-wrong", app_token=APP_TOKEN, api_url=emulator.api_url)

    async def sink(event: Any) -> None:
        raise AssertionError(event)

    with pytest.raises(ConfigError, match="auth.test failed \\(invalid_auth\\)"):
        await adapter.start(sink)
    await adapter.stop()


def test_the_manifest_asks_for_what_the_adapter_uses() -> None:
    from slack_emulator import METHOD_SCOPES

    from adapters.slack import EVENT_TYPES

    data = manifest()
    events = data["settings"]["event_subscriptions"]["bot_events"]
    assert {e.split(".")[0] for e in events} == set(EVENT_TYPES)
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/librarian"]
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    needed = set(METHOD_SCOPES.values()) | {"app_mentions:read", "commands"}
    needed |= {"reactions:read"}  # reaction_added events
    needed |= {"channels:history", "groups:history", "groups:read"}  # message.* events
    assert scopes == needed
    assert data["settings"]["socket_mode_enabled"] is True


# -- the pure rules -------------------------------------------------------------------------


def test_translation_rules() -> None:
    assert translate.strip_mentions_of(f"<@{BOT_USER}>  what is <@U2|x>?", BOT_USER) == (
        "what is <@U2|x>?"
    )
    assert translate.file_id_in("https://acme.slack.com/files/U01/F0ABCDE/a.pdf") == "F0ABCDE"
    assert translate.file_id_in("<https://files.slack.com/files-pri/T01-F0XYZ12/a.pdf|a>") == (
        "F0XYZ12"
    )
    assert translate.file_id_in("F0ABCDE") == "F0ABCDE"
    assert translate.file_id_in("report.pdf") is None
    previous = {"ts": "1.1", "files": [{"id": "F1"}, {"id": "F2"}]}
    assert translate.removed_file_ids(
        {"subtype": "message_deleted", "previous_message": previous}
    ) == ["F1", "F2"]
    assert translate.removed_file_ids(
        {
            "subtype": "message_changed",
            "previous_message": previous,
            "message": {"files": [{"id": "F2"}]},
        }
    ) == ["F1"]
    tombstone = {"subtype": "tombstone", "files": [{"id": "F1"}]}
    assert translate.removed_file_ids(
        {"subtype": "message_changed", "previous_message": previous, "message": tombstone}
    ) == ["F1", "F2"]
    reacted = {
        "event_id": "Ev1",
        "team_id": "T1",
        "event": {
            "type": "reaction_added",
            "user": "U2",
            "reaction": "thumbsup",
            "item": {"type": "message", "channel": "C1", "ts": "1.2"},
        },
    }
    event = translate.reaction_added(reacted, BOT_USER)
    assert event is not None and (event.message_id, event.emoji) == ("1.2", "thumbsup")
    assert (event.conversation.space_id, event.conversation.channel_id) == ("T1", "C1")
    assert event.author.qualified == "slack:U2"
    own = {**reacted, "event": {**reacted["event"], "user": BOT_USER}}
    on_file = {**reacted, "event": {**reacted["event"], "item": {"type": "file", "file": "F1"}}}
    assert translate.reaction_added(own, BOT_USER) is None
    assert translate.reaction_added(on_file, BOT_USER) is None
    assert translate.looks_like_html(b"\n<!DOCTYPE html><html>")
    assert not translate.looks_like_html(b"%PDF-1.7")


async def test_a_slack_upload_by_id_of_a_file_from_a_private_channel_is_refused(
    slack_settings, emulator: SlackEmulator, tmp_path: Path
) -> None:
    # The bot is in a private channel bob is not in; ada shares a file there.  Its id
    # (or link) typed by bob in #general must not index it: the bot's token can read
    # it, bob cannot.
    emulator.add_channel("CSECRET", "board", private=True)
    secret = make_pdf(tmp_path / "board.pdf").read_bytes()
    stored = emulator.share_file("CSECRET", ADMIN, "board.pdf", secret)
    async with running_bot(slack_settings, emulator, "http") as (app, adapter):
        url = f"http://127.0.0.1:{adapter.bound_port}{EVENTS_PATH}"
        binding = await app.dispatcher.binding(translate.conversation("T0EMU", GENERAL))
        for typed in (stored.id, f"<https://emulated.slack.com/files/{ADMIN}/{stored.id}/x>"):
            await emulator.post_command(
                url, emulator.slash_command(GENERAL, BOB, f"upload {typed}")
            )
            await settle(adapter)
        refusals = [
            c.args
            for c in emulator.calls_of("chat.postEphemeral")
            if "can't index" in c.args["text"]
        ]
        assert len(refusals) == 2 and all(r["user"] == BOB for r in refusals)
        assert app.store.list_documents(binding.workspace.id) == []
        assert count(app, "documents") == 0

        # The file's owner may bring her own file; a file shared here is anyone's to index.
        await emulator.post_command(
            url, emulator.slash_command(GENERAL, ADMIN, f"upload {stored.id}")
        )
        await emulator.wait_for(
            lambda: [m for m in emulator.posted() if m["text"].startswith("Indexed board.pdf")], 60
        )
        await settle(adapter)
        assert [d.file_name for d in app.store.list_documents(binding.workspace.id)] == [
            "board.pdf"
        ]
