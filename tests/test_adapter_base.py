"""What every adapter shares (adapters/base.py): the prefix rule, capped downloads, tracked work.

Part of the fast tier: no platform, server or database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.base import Tasks, command_text, deliver, read_capped
from bot.events import ConversationRef, MessageReceived, UserRef
from bot.ingest.filetypes import ExtractionRefused


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
