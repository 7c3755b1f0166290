"""The Discord adapter end to end: the real discord.py client against a local Discord.

tests/discord_emulator.py serves Discord's REST API and gateway on 127.0.0.1 and
records what the bot does; the bot is an App on real Postgres with the real models,
wired by ``configured_adapters`` from LIBRARIAN_DISCORD_* settings.  alice has
Manage Server, carol Manage Channels, bob nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from discord_emulator import (
    EPHEMERAL,
    GUILD_MESSAGE_REACTIONS_INTENT,
    MESSAGE_CONTENT_INTENT,
    DiscordEmulator,
    point_discord_py_at,
)
from helpers import make_pdf

from adapters.discord import DiscordAdapter, split_message
from adapters.discord.text import strip_mentions, thread_name
from bot.app import App
from bot.cli.run import configured_adapters
from bot.commands import base_commands
from bot.config import load_settings
from bot.events import ConversationRef, OutboundMessage
from bot.ingest.filetypes import KINDS

pytestmark = pytest.mark.slow

INTERACTION_LIMIT_S = 3.0  # Discord's deadline for the first response to an interaction

WARRANTY = "How long is the warranty of the Zephyr X200?"
PDF = "application/pdf"


@dataclass
class Bot:
    app: App
    adapter: DiscordAdapter
    emu: DiscordEmulator

    @property
    def general(self) -> str:
        return self.emu.channel_ids["general"]


@pytest.fixture
async def bot(settings, monkeypatch: pytest.MonkeyPatch):
    emu = DiscordEmulator(heartbeat_ms=1000)
    await emu.start()
    # The adapter points both class attributes at the emulator; restore them afterwards.
    point_discord_py_at(emu, monkeypatch)
    monkeypatch.setenv("DISCORD_TOKEN", emu.token)  # the conventional name works too
    monkeypatch.setenv("LIBRARIAN_DISCORD_API_URL", emu.api_url)
    monkeypatch.setenv("LIBRARIAN_DISCORD_GATEWAY_URL", emu.gateway_url)
    settings = load_settings()
    app = App.build(settings)
    app.answerer.max_answer_tokens = 40  # short answers keep the file quick
    [adapter] = configured_adapters(settings, app)
    assert isinstance(adapter, DiscordAdapter)
    adapter.guild_ready_timeout = 0.2
    app.dispatcher.add_adapter(adapter)
    app.start_background()
    task = asyncio.create_task(adapter.start(app.dispatcher.handle))
    try:
        await emu.wait_for(lambda: emu.commands.get(emu.guild_id) or task.done(), timeout=30)
        if task.done():
            task.result()
        yield Bot(app, adapter, emu)
        assert emu.rate_limited == [], "discord.py let a request hit a 429"
    finally:
        await adapter.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await app.close()
        await emu.close()


def followups(emu: DiscordEmulator, interaction) -> list[dict]:
    return [emu.messages[m] for m in interaction.followups if m in emu.messages]


async def followup_with(emu: DiscordEmulator, interaction, text: str, timeout=60) -> dict:
    found = await emu.wait_for(
        lambda: [m for m in followups(emu, interaction) if text in m["content"]], timeout
    )
    return found[-1]


# -- pure rules -----------------------------------------------------------------------------


def test_split_message_respects_the_limit() -> None:
    text = "\n".join(f"Line {i}: " + "word " * 30 for i in range(60))
    parts = split_message(text)
    assert len(parts) > 1 and all(0 < len(p) <= 2000 for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())
    assert split_message("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert split_message("short") == ["short"]
    assert strip_mentions("<@42> what is <@!42> this?", 42) == "what is   this?"
    assert len(thread_name("q" * 300)) == 100


# -- conversations --------------------------------------------------------------------------


async def test_a_shared_pdf_is_indexed_and_a_mention_is_answered_in_a_thread(
    bot: Bot, tmp_path: Path
) -> None:
    emu, general = bot.emu, bot.general
    [identify] = [e for e in emu.gateway_log if e["op"] == 2]
    assert identify["token_ok"] and identify["intents"] & MESSAGE_CONTENT_INTENT
    assert [c["name"] for c in emu.commands[emu.guild_id]] == ["librarian"]

    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    shared = await emu.post("bob", "general", "the manual", files=[("manual.pdf", pdf, PDF)])
    await emu.post("bob", "general", "a photo", files=[("cat.png", b"\x89PNG....", "image/png")])
    [indexed] = await emu.wait_for(
        lambda: [m for m in emu.bot_messages(general) if "Indexed manual.pdf" in m["content"]]
    )
    assert indexed["message_reference"]["message_id"] == shared["id"]  # a reply, not a thread
    assert emu.calls_to("GET", rf"/attachments/{general}/\d+/manual.pdf")

    question = await emu.post("alice", "general", WARRANTY, mention_bot=True)
    thread_id = question["id"]  # a thread started on a message has the message's id
    [answer] = await emu.wait_for(
        lambda: [m for m in emu.bot_messages(thread_id) if "Sources:" in m["content"]]
    )
    [created] = emu.calls_to("POST", rf"/channels/{general}/messages/{thread_id}/threads")
    assert created.body["name"] == WARRANTY
    jump = f"https://discord.com/channels/{emu.guild_id}/{general}/{shared['id']}"
    assert f"[1] manual.pdf, p. 2 ({jump})" in answer["content"], answer["content"]
    # Streamed: posted once, then edited into its final form; the bot typed meanwhile.
    assert len(emu.calls_to("POST", rf"/channels/{thread_id}/messages")) == 1
    edits = emu.calls_to("PATCH", rf"/channels/{thread_id}/messages/{answer['id']}")
    assert edits and edits[-1].body["content"] == answer["content"]
    assert emu.calls_to("POST", rf"/channels/{thread_id}/typing")
    gaps = [b.at - a.at for a, b in zip(edits, edits[1:-1], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # about one edit a second
    assert not [m for m in emu.bot_messages(general) if "Sources:" in m["content"]]

    # A reply to the bot (no mention) in the thread is a question, answered in that thread.
    await emu.post("alice", thread_id, "And how much does it cost?", reply_to=answer["id"])
    await emu.wait_for(lambda: len(emu.bot_messages(thread_id)) == 2)
    await emu.wait_for(lambda: "Sources:" in emu.bot_messages(thread_id)[-1]["content"])
    assert len(emu.calls_to("POST", r"/channels/\d+/messages/\d+/threads")) == 1
    assert "manual.pdf, p. 3" in emu.bot_messages(thread_id)[-1]["content"]

    # Past 2,000 characters a message continues in follow-up messages, edits included.
    conv = ConversationRef("discord", emu.guild_id, emu.channel_ids["random"], None, "#random")
    long_id = await bot.adapter.send(OutboundMessage(conv, "word " * 900))  # 4,500 chars
    random_msgs = emu.bot_messages(emu.channel_ids["random"])
    assert [len(m["content"]) for m in random_msgs][0] <= 2000 and len(random_msgs) == 3
    await bot.adapter.edit(conv, long_id, "word " * 500)
    random_msgs = emu.bot_messages(emu.channel_ids["random"])
    assert len(random_msgs) == 2 and all(len(m["content"]) <= 2000 for m in random_msgs)
    await bot.adapter.edit(conv, long_id, "word " * 1000)
    random_msgs = emu.bot_messages(emu.channel_ids["random"])
    assert len(random_msgs) == 3 and all(len(m["content"]) <= 2000 for m in random_msgs)
    heartbeats = [e for e in emu.gateway_log if e["op"] == 1]
    assert len(heartbeats) >= 2


async def test_a_thumbs_up_on_the_answer_is_stored_with_the_question_and_its_sources(
    bot: Bot, tmp_path: Path
) -> None:
    emu, general = bot.emu, bot.general
    [identify] = [e for e in emu.gateway_log if e["op"] == 2]
    assert identify["intents"] & GUILD_MESSAGE_REACTIONS_INTENT
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    await emu.post("bob", "general", "the manual", files=[("manual.pdf", pdf, PDF)])
    await emu.wait_for(
        lambda: [m for m in emu.bot_messages(general) if "Indexed manual.pdf" in m["content"]]
    )
    question = await emu.post("alice", "general", WARRANTY, mention_bot=True)
    thread_id = question["id"]
    [answer] = await emu.wait_for(
        lambda: [m for m in emu.bot_messages(thread_id) if "Sources:" in m["content"]]
    )
    store = bot.app.store

    # A 👍 on alice's question is not about an answer; bob's 👍 on the answer (in its
    # thread) is stored, with the question, the answer and its sources.
    await emu.react("bob", question["id"], "👍")
    await emu.react("bob", answer["id"], "👍")
    [entry] = await emu.wait_for(lambda: store.feedback_entries())
    assert (entry.channel, entry.author, entry.verdict) == (
        f"discord:{emu.guild_id}/{general}",
        f"discord:{emu.users['bob']['id']}",
        "good",
    )
    assert entry.question == WARRANTY and entry.platform_message_id == answer["id"]
    assert entry.answer and entry.answer in answer["content"]
    assert (entry.sources[0]["document"], entry.sources[0]["pages"]) == ("manual.pdf", "p. 2")

    # carol rates it from the thread with the slash command: privately, with a note.
    rated = await emu.slash("carol", thread_id, "feedback", {"verdict": "bad", "note": "vague"})
    said = await followup_with(emu, rated, "recorded bad (vague)")
    assert rated.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert said["flags"] & EPHEMERAL and f'my answer to "{WARRANTY}"' in said["content"]
    # bob changes his mind with a 👎 (with a skin tone): his verdict is replaced.
    await emu.react("bob", answer["id"], "👎🏻")
    bob = f"discord:{emu.users['bob']['id']}"
    await emu.wait_for(
        lambda: [e for e in store.feedback_entries() if e.author == bob and e.verdict == "bad"]
    )
    assert sorted((e.author, e.verdict, e.note) for e in store.feedback_entries()) == [
        (bob, "bad", None),
        (f"discord:{emu.users['carol']['id']}", "bad", "vague"),
    ]
    # The bot said nothing about any of it in the thread, but carol's private reply.
    assert [m["id"] for m in emu.bot_messages(thread_id)] == [answer["id"], said["id"]]


async def test_a_slash_command_is_deferred_at_once_while_the_model_is_busy(
    bot: Bot, tmp_path: Path
) -> None:
    emu = bot.emu
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    upload = await emu.slash("alice", "general", "upload", files={"file": ("manual.pdf", pdf, PDF)})
    [done] = await emu.wait_for(
        lambda: [m for m in emu.bot_messages(bot.general) if "Indexed manual.pdf" in m["content"]]
    )
    assert "Indexed manual.pdf: 3 pages" in done["content"]
    # Deferred privately (only alice saw "thinking"); the public reply is in the channel.
    assert upload.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert not done["flags"] & EPHEMERAL
    await emu.wait_for(lambda: upload.original_id not in emu.messages)  # "thinking" went

    # Keep the chat model busy with a long generation, then ask privately.
    stream = await bot.app.inference.chat_stream(
        None,
        [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}],
        "someone-else",
        max_tokens=400,
        temperature=0.8,
    )
    busy = asyncio.create_task(stream.text())
    await asyncio.sleep(0.3)
    assert not busy.done()
    ask = await emu.slash("bob", "general", "ask", {"question": WARRANTY})
    await emu.wait_for(lambda: ask.callback is not None, timeout=5)
    # Discord's own limit: an interaction not answered (deferred) within 3 s fails.
    assert ask.callback_at - ask.dispatched_at < INTERACTION_LIMIT_S
    assert not busy.done(), "the model was not busy when the command was deferred"
    assert ask.callback == {"type": 5, "data": {"flags": EPHEMERAL}}  # private: only bob sees
    answer = await followup_with(emu, ask, "Sources:")
    assert busy.done()
    assert answer["flags"] & EPHEMERAL and "[1] manual.pdf, p. 2" in answer["content"]
    assert answer["interaction_metadata"]["user"]["id"] == emu.users["bob"]["id"]


def in_channel(bot: Bot, text: str) -> list[dict]:
    """The bot's messages in #general holding ``text`` that everyone there sees."""
    return [
        m
        for m in bot.emu.bot_messages(bot.general)
        if text in m["content"] and not m["flags"] & EPHEMERAL
    ]


async def test_a_refused_slash_command_on_discord_is_never_shown_to_the_channel(
    bot: Bot,
) -> None:
    emu = bot.emu
    refused = await emu.slash("bob", "general", "retention", {"duration": "7d"})
    reply = await followup_with(emu, refused, "Refused: only admins may do that")
    assert reply["flags"] & EPHEMERAL  # only bob sees it
    # Deferred ephemerally before the permission check: not even "thinking" was public,
    # and the refusal replaced that private message.
    assert refused.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert reply["id"] == refused.original_id
    assert not in_channel(bot, "Refused") and not in_channel(bot, "only admins")
    [entry] = [e for e in bot.app.store.audit_entries(50) if e["action"] == "refused"]
    assert entry["actor"] == f"discord:{emu.users['bob']['id']}"

    # What is for everyone is posted in the channel; the private "thinking" goes.
    allowed = await emu.slash("alice", "general", "retention", {"duration": "7d"})  # Manage Server
    [reply] = await emu.wait_for(lambda: in_channel(bot, "Retention in #general is now 7d"))
    assert not reply["flags"] & EPHEMERAL
    await emu.wait_for(lambda: allowed.original_id not in emu.messages)
    await emu.slash("carol", "general", "retention")  # Manage Channels
    await emu.wait_for(lambda: in_channel(bot, "Retention in #general: 7d"))
    # Typed commands work too, with the same permissions; a refusal goes by DM.
    await emu.post("bob", "general", "!librarian clear")
    [dm] = await emu.wait_for(lambda: emu.dm_messages("bob"))
    assert "Refused: only admins may do that" in dm["content"]
    assert not in_channel(bot, "Refused")


async def test_a_typed_librarian_ask_on_discord_is_answered_by_dm_never_in_the_channel(
    bot: Bot, tmp_path: Path
) -> None:
    emu = bot.emu
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    await emu.post("bob", "general", "the manual", files=[("manual.pdf", pdf, PDF)])
    await emu.wait_for(lambda: in_channel(bot, "Indexed manual.pdf"))
    posted_before = len(in_channel(bot, ""))

    await emu.post("bob", "general", f"!librarian ask {WARRANTY}")
    [answer] = await emu.wait_for(
        lambda: [m for m in emu.dm_messages("bob") if "Sources:" in m["content"]], timeout=90
    )
    assert "[1] manual.pdf, p. 2" in answer["content"]
    await emu.wait_for(lambda: not bot.adapter._tasks)  # the command's work is over
    assert len(in_channel(bot, "")) == posted_before

    # carol takes no DMs: she is told to use the slash command, and nothing else is said.
    emu.closed_dms.add(emu.users["carol"]["id"])
    await emu.post("carol", "general", f"!librarian ask {WARRANTY}")
    [notice] = await emu.wait_for(lambda: in_channel(bot, "use the /librarian slash command"))
    await emu.wait_for(lambda: not bot.adapter._tasks, timeout=90)  # answered, and edited
    assert notice["content"].startswith(f"<@{emu.users['carol']['id']}>")
    sources = [m for m in emu.messages.values() if "Sources:" in m["content"]]
    assert [m["id"] for m in sources] == [answer["id"]]


async def test_a_dropped_gateway_connection_resumes_and_nothing_is_answered_twice(
    bot: Bot, tmp_path: Path
) -> None:
    emu, general = bot.emu, bot.general
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    await emu.post("bob", "general", "manual", files=[("manual.pdf", pdf, PDF)])
    await emu.wait_for(
        lambda: [m for m in emu.bot_messages(general) if "Indexed manual.pdf" in m["content"]]
    )
    first = await emu.post("alice", "general", WARRANTY, mention_bot=True)
    session = emu.session()
    first_seq = session.seq
    await emu.wait_for(lambda: first["id"] in emu.channels)  # the bot is answering it
    await emu.drop(session)
    # Said while the bot is away; Discord also redelivers the question it already had.
    second = await emu.post(
        "bob", "general", "How much does the Zephyr X200 cost?", mention_bot=True
    )
    session.replay_from = first_seq
    await asyncio.wait_for(session.resumed.wait(), 30)
    [resume] = [e for e in emu.gateway_log if e["op"] == 6]
    assert resume["session_id"] == session.session_id and resume["seq"] >= first_seq
    assert len([e for e in emu.gateway_log if e["op"] == 2]) == 1  # resumed, not re-identified

    for question in (first, second):
        await emu.wait_for(
            lambda q=question: [m for m in emu.bot_messages(q["id"]) if "Sources:" in m["content"]]
        )
    await asyncio.sleep(1.5)  # room for a duplicate answer to show up, if there were one
    for question in (first, second):
        assert len(emu.bot_messages(question["id"])) == 1
        assert (
            len(emu.calls_to("POST", rf"/channels/{general}/messages/{question['id']}/threads"))
            == 1
        )
    assert "p. 3" in emu.bot_messages(second["id"])[0]["content"]


async def test_without_the_message_content_intent_mentions_still_work(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the gateway part: the intent is left out of IDENTIFY and mentions arrive."""
    emu = DiscordEmulator()
    await emu.start()
    point_discord_py_at(emu, monkeypatch)
    adapter = DiscordAdapter(
        emu.token,
        commands=base_commands(),
        api_url=emu.api_url,
        gateway_url=emu.gateway_url,
        message_content=False,
    )
    seen = []

    async def sink(event) -> None:
        seen.append(event)

    task = asyncio.create_task(adapter.start(sink))
    try:
        await emu.wait_for(lambda: emu.commands.get(emu.guild_id), timeout=30)
        [identify] = [e for e in emu.gateway_log if e["op"] == 2]
        assert not identify["intents"] & MESSAGE_CONTENT_INTENT
        await emu.post("bob", "general", "notes", files=[("a.md", b"# A", "text/markdown")])
        await emu.post("bob", "general", "What is in the notes?", mention_bot=True)
        started = time.monotonic()
        while len(seen) < 1 and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        [event] = seen  # the file message arrived empty, so only the question counts
        assert event.text == "What is in the notes?" and event.mentions_bot
    finally:
        await adapter.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await emu.close()


async def test_every_kind_librarian_reads_is_downloaded_and_nothing_else(bot: Bot) -> None:
    """The adapter downloads by the extractor's own declaration of supported kinds."""
    emu, general = bot.emu, bot.general
    # Some 40 files in a few seconds, each refused with a reply ("not a zip container"):
    # this test is about what is downloaded, not about pacing 40 replies under
    # Discord's 5-per-5-seconds message bucket (other tests hold discord.py to that).
    emu.bucket_limit = 1000
    wanted = []
    for kind, spec in KINDS.items():
        for ext in spec.extensions:  # named by its extension, labelled loosely
            wanted.append((f"by-name-{kind}{ext}", "application/octet-stream"))
        for media in sorted(spec.media_types):  # no extension, labelled by the platform
            wanted.append((f"by-label-{kind}-{media.replace('/', '-')}", media))
    tool = [("setup.exe", b"MZ\x90\x00", "application/x-msdownload")]
    await emu.post("bob", "general", "a tool", files=tool)
    for name, media in wanted:
        await emu.post("bob", "general", "a file", files=[(name, b"Notes for the team.\n", media)])
    for name, _media in wanted:
        try:
            await emu.wait_for(
                lambda name=name: emu.calls_to(
                    "GET", rf"/attachments/{general}/\d+/{re.escape(name)}"
                )
            )
        except AssertionError:
            fetched = [c.path for c in emu.calls if c.method == "GET" and "/attachments/" in c.path]
            raise AssertionError(f"{name} was not downloaded; downloaded: {fetched}") from None
    await asyncio.sleep(1)  # the last post had its chance too
    assert not emu.calls_to("GET", rf"/attachments/{general}/\d+/setup.exe")
