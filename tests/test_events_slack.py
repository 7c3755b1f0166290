"""At-least-once events on Slack: a shared file whose download fails is tried again.

The real slack-bolt app against the Slack emulator (its file server answering 503),
real Postgres and real models, as in tests/test_slack.py, whose fixtures these are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("slack_bolt")

from helpers import make_pdf  # noqa: E402
from test_slack import (  # noqa: E402,F401  (emulator and slack_settings are fixtures)
    BOB,
    GENERAL,
    emulator,
    in_thread,
    running_bot,
    settle,
    slack_settings,
)


def file_shared_event(stored) -> dict:
    return {
        "type": "file_shared",
        "file_id": stored.id,
        "user_id": stored.user,
        "file": {"id": stored.id},
        "channel_id": stored.channel,
        "event_ts": stored.ts,
    }


async def test_a_file_whose_download_failed_is_retried_then_reported_as_failed(
    slack_settings,  # noqa: F811
    emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    pdf = make_pdf(tmp_path / "manual.pdf").read_bytes()
    settings = slack_settings.model_copy(update={"event_retry_seconds": 0.2})
    async with running_bot(settings, emulator, "socket") as (app, adapter):
        # Slack's file server fails once: the share (message and file_shared event) is
        # tried again and indexed, with one reply.
        shared = emulator.share_file(GENERAL, BOB, "manual.pdf", pdf)
        shared.download_failures = 1
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(shared))
        )
        await emulator.socket_send("events_api", emulator.event_callback(file_shared_event(shared)))
        await emulator.wait_for(lambda: in_thread(emulator, shared.ts), timeout=60)
        await settle(adapter)
        assert [m["text"] for m in in_thread(emulator, shared.ts)] == [
            "Indexed manual.pdf: 3 pages, 3 chunks."
        ]
        downloads = [c.status for c in emulator.calls_of("download", ok_only=False)]
        assert downloads == [503, 200]

        # Bob forgets it, then shares it again (a new message): indexed again, not
        # ignored as a redelivery of the first share.
        (doc,) = app.store.documents_by_source_file("slack", shared.id)
        await emulator.socket_send(
            "slash_commands", emulator.slash_command(GENERAL, BOB, f"forget #{doc.id}")
        )
        await settle(adapter)
        assert app.store.documents_by_source_file("slack", shared.id) == []
        shared.ts = emulator.next_ts()
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(shared))
        )
        await emulator.socket_send("events_api", emulator.event_callback(file_shared_event(shared)))
        await emulator.wait_for(lambda: in_thread(emulator, shared.ts), timeout=60)
        await settle(adapter)
        assert [m["text"] for m in in_thread(emulator, shared.ts)] == [
            "Indexed manual.pdf: 3 pages, 3 chunks."
        ]
        downloads = [c.status for c in emulator.calls_of("download", ok_only=False)]
        assert downloads == [503, 200, 200]

        # It keeps failing: three tries, then the channel is told, in the share's thread.
        broken = emulator.share_file(GENERAL, BOB, "broken.pdf", pdf + b"\n% v2")
        broken.download_failures = 10
        await emulator.socket_send(
            "events_api", emulator.event_callback(emulator.file_message(broken))
        )
        await emulator.wait_for(lambda: in_thread(emulator, broken.ts), timeout=60)
        await settle(adapter)
        assert [m["text"] for m in in_thread(emulator, broken.ts)] == [
            "Sorry, I could not index broken.pdf (it failed 3 times). "
            "The details are in the bot's log. Please share it again."
        ]
        downloads = [c.status for c in emulator.calls_of("download", ok_only=False)]
        assert downloads == [503, 200, 200, 503, 503, 503]
        assert app.store.event_state("slack", f"file:{GENERAL}:{broken.id}:{broken.ts}") == (
            "failed",
            3,
        )
        assert app.store.documents_by_source_file("slack", broken.id) == []
