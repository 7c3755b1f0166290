"""Posting and streaming the bot's messages through an adapter."""

from __future__ import annotations

import time

from bot.adapter import Adapter
from bot.events import ConversationRef, OutboundMessage, UserRef


class StreamingReply:
    """One bot message that grows as an answer streams in.

    The first text is posted with ``send``; later texts replace it with ``edit``,
    at most once per ``adapter.edit_interval_s`` (about a second on chat platforms,
    which rate-limit edits; zero on the console).  ``finish`` posts the final text.
    """

    def __init__(
        self,
        adapter: Adapter,
        conversation: ConversationRef,
        *,
        reply_to: str | None = None,
        private_to: UserRef | None = None,
    ) -> None:
        self.adapter = adapter
        self.conversation = conversation
        self.reply_to = reply_to
        self.private_to = private_to
        self.message_id: str | None = None
        self._shown = ""
        self._last_edit = 0.0
        self.interval = adapter.edit_interval_s

    async def update(self, text: str) -> None:
        """Show ``text`` now, or soon (edits are throttled)."""
        if not text.strip():
            return
        now = time.monotonic()
        if self.message_id is not None and now - self._last_edit < self.interval:
            return
        await self._show(text)

    async def finish(self, text: str) -> str:
        """Show the final text, whatever the throttle says; return the message id."""
        await self._show(text)
        assert self.message_id is not None
        return self.message_id

    async def _show(self, text: str) -> None:
        if text == self._shown:
            return
        if self.message_id is None:
            self.message_id = await self.adapter.send(
                OutboundMessage(
                    self.conversation, text, reply_to=self.reply_to, private_to=self.private_to
                )
            )
        else:
            await self.adapter.edit(self.conversation, self.message_id, text)
        self._shown = text
        self._last_edit = time.monotonic()
