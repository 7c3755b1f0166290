"""What every adapter shares: the base class with its optional features (bot/adapter.py), and
adapters/base.py's prefix rule, capped downloads and tracked work.

Part of the fast tier: no platform, server or database.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.base import Tasks, command_text, deliver, read_capped
from adapters.console import ConsoleAdapter
from adapters.discord.adapter import DiscordAdapter
from adapters.matrix.adapter import MatrixAdapter
from adapters.slack.adapter import SlackAdapter
from bot.adapter import OPTIONAL_FEATURES, Adapter, EventSink
from bot.events import ConversationRef, FileRef, MessageReceived, OutboundMessage, UserRef
from bot.ingest.filetypes import ExtractionRefused
from bot.replies import StreamingReply

BOT = Path(__file__).resolve().parents[1] / "bot"
GENERAL = ConversationRef("plain", "", "general", None, "#general")


class PlainPlatform(Adapter):
    """A platform that states only what every adapter must do, and keeps what it was sent."""

    platform = "plain"

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}

    async def start(self, sink: EventSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> str:
        message_id = f"m{len(self.shown) + 1}"
        self.shown[message_id] = message.text
        return message_id

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        self.shown[message_id] = text

    async def fetch_file(self, ref: FileRef) -> bytes:
        return b""

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        return False


async def test_an_adapter_that_states_only_what_it_must_gets_the_optional_defaults() -> None:
    plain = PlainPlatform()
    assert plain.edit_interval_s == 1.0  # chat platforms rate-limit edits
    assert plain.private_replies is True
    assert plain.local_file_refs(["~/report.pdf"]) is None  # no local files on a chat
    assert await plain.working(GENERAL, "q1", True) is None
    # A streamed answer on it is edited at most once a second, then finished at once.
    reply = StreamingReply(plain, GENERAL, reply_to="q1")
    await reply.update("The warranty")
    await reply.update("The warranty lasts")
    assert plain.shown == {"m1": "The warranty"}
    assert await reply.finish("The warranty lasts two years.") == "m1"
    assert plain.shown == {"m1": "The warranty lasts two years."}


def test_a_misspelt_optional_feature_is_refused_when_the_adapter_is_written() -> None:
    with pytest.raises(TypeError) as refused:

        class Mistyped(PlainPlatform):
            private_reply = False  # meant: private_replies

    assert str(refused.value).startswith(
        "Mistyped.private_reply looks like a misspelling of the optional feature 'private_replies'"
    )
    with pytest.raises(TypeError, match="'edit_interval_s'"):

        class Hurried(PlainPlatform):
            edit_interval = 0.0

    class Fine(PlainPlatform):  # names far from every feature are the adapter's own
        edit_message = None
        private_room = True


def test_an_adapter_missing_a_required_part_cannot_be_built() -> None:
    class Mute(Adapter):
        platform = "mute"

        async def start(self, sink: EventSink) -> None:
            return None

        async def stop(self) -> None:
            return None

        async def fetch_file(self, ref: FileRef) -> bytes:
            return b""

        async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract methods edit, send"):
        Mute()  # type: ignore[abstract]


def test_an_adapter_written_to_the_old_protocol_is_refused_in_plain_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.config import Settings
    from bot.dispatcher import Dispatcher

    class Structural:  # every method, but no base class: no optional features either
        platform = "structural"
        send = edit = start = stop = fetch_file = is_admin = PlainPlatform.send

    monkeypatch.setenv("LIBRARIAN_HOME", str(tmp_path))
    # Registering an adapter touches none of the store, answerer or ingestion.
    dispatcher = Dispatcher(Settings(), store=None, answerer=None, ingest=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as refused:
        dispatcher.add_adapter(Structural())  # type: ignore[arg-type]
    assert str(refused.value) == (
        "Structural is not a bot.adapter.Adapter: an adapter subclasses it, which gives "
        "its optional features their defaults."
    )
    dispatcher.add_adapter(PlainPlatform())
    assert dispatcher.adapter_for(GENERAL).platform == "plain"


def test_every_platform_adapter_states_only_what_differs_from_the_defaults() -> None:
    for platform in (ConsoleAdapter, SlackAdapter, MatrixAdapter, DiscordAdapter):
        assert issubclass(platform, Adapter), platform
    assert ConsoleAdapter.edit_interval_s == 0.0  # a terminal takes every piece
    assert ConsoleAdapter.local_file_refs is not Adapter.local_file_refs
    assert MatrixAdapter.private_replies is False  # a room sees every message
    assert SlackAdapter.private_replies and DiscordAdapter.private_replies
    for platform in (SlackAdapter, MatrixAdapter, DiscordAdapter):
        assert platform.working is not Adapter.working, platform  # typing or a reaction


def test_the_core_reads_no_adapter_feature_through_a_fallback() -> None:
    """``getattr(adapter, "private_replies", True)`` would hide a misspelt name."""
    found = []
    for path in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in OPTIONAL_FEATURES
            ):
                found.append(f"{path.relative_to(BOT.parent)}:{node.lineno}")
    assert found == []


def test_a_command_starts_with_the_prefix_then_whitespace_or_nothing() -> None:
    assert command_text("/librarian help") == "help"
    assert command_text("!LIBRARIAN  status ") == "status"
    assert command_text("/librarian") == ""
    # A newline after the prefix counts on every platform now (it used to on Matrix only).
    assert command_text("/librarian\nforget my report.pdf") == "forget my report.pdf"
    assert command_text("  !librarian\tdocs") == "docs"
    assert command_text("/librarians are nice") is None
    assert command_text("what does /librarian help say?") is None
    assert command_text("@librarian what is the warranty?") is None


async def _pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_a_download_is_refused_once_it_passes_the_limit() -> None:
    mib = b"x" * 2**20
    assert await read_capped(_pieces(mib, mib), 2, "ok.pdf") == mib * 2
    assert await read_capped(_pieces(mib, mib, mib), None, "no-limit.pdf") == mib * 3
    with pytest.raises(ExtractionRefused, match="big.pdf") as refused:
        await read_capped(_pieces(mib, mib, b"y"), 2, "big.pdf")
    assert refused.value.reason_code == "too_large"


async def test_work_is_drained_cancelled_and_its_failures_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Tasks("test")
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        done.append("quick")

    async def broken() -> None:
        raise RuntimeError("boom")

    async def forever() -> None:
        await asyncio.Event().wait()

    tasks.spawn(quick(), "quick")
    tasks.spawn(broken(), "broken")
    await tasks.drain(timeout=5)
    assert done == ["quick"] and len(tasks) == 0
    assert "test: broken failed" in caplog.text
    stuck = tasks.spawn(forever(), "forever")
    await tasks.drain(timeout=0.05)
    assert len(tasks) == 1
    await tasks.cancel()
    assert stuck.cancelled() and len(tasks) == 0


async def test_a_failing_sink_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    event = MessageReceived(
        "e1", ConversationRef("console", "", "general"), UserRef("console", "bob"), "hi", False
    )

    async def sink(_event: object) -> None:
        raise RuntimeError("the core broke")

    await deliver(sink, event, "Console")
    await deliver(None, event, "Console")
    assert "Console: event e1 failed" in caplog.text
    assert "Console: event e1 arrived before start()" in caplog.text
