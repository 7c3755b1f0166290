"""The narrow protocol every chat-platform adapter implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from bot.events import ConversationRef, Event, FileRef, OutboundMessage, UserRef

EventSink = Callable[[Event], Awaitable[None]]


@runtime_checkable
class Adapter(Protocol):
    """Translates one platform's events and transports the bot's messages."""

    platform: str

    async def start(self, sink: EventSink) -> None:
        """Connect and deliver every translated event to ``sink``; return when stopped."""

    async def stop(self) -> None:
        """Disconnect."""

    async def send(self, message: OutboundMessage) -> str:
        """Post a message; return its platform id (for later edits)."""

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Replace the text of a message the bot posted (used to stream answers)."""

    async def fetch_file(self, ref: FileRef) -> bytes:
        """Download a shared file."""

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """Whether the platform's own roles make ``user`` an admin here."""
