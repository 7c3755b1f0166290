"""The base every chat-platform adapter subclasses: what it must do, and what it may.

An adapter must ``start``, ``stop``, ``send``, ``edit``, ``fetch_file`` and tell
whether a user ``is_admin``; those are abstract, so an adapter missing one cannot be
built.  The optional features are declared here once, each with the default that
suits a platform without it, so the core calls them directly and an adapter states
only what differs (after opsdroid's ``Connector``):

- ``edit_interval_s``: how often a streamed answer may be edited (1 s, see below; the
  console says 0);
- ``private_replies``: whether a reply can be shown to one user only (Matrix cannot);
- ``working(conversation, message_id, on)``: a typing notice or reaction while an
  answer is prepared (none by default);
- ``local_file_refs(paths)``: local paths as files, for the console's ``upload``
  (None by default: a chat platform has no local files).

A subclass defining a name that is one slip away from an optional feature (say
``private_reply``) is refused when the class is made, since the core would otherwise
go on using the default without a word.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from bot.events import ConversationRef, Event, FileRef, OutboundMessage, UserRef

EventSink = Callable[[Event], Awaitable[None]]

#: The optional features' names, which the misspelling check compares against.
OPTIONAL_FEATURES = ("edit_interval_s", "private_replies", "working", "local_file_refs")


class Adapter(ABC):
    """Translates one platform's events and transports the bot's messages."""

    platform: str

    # -- optional features, with the defaults of a platform that lacks them ---------------

    #: Seconds between edits of a streamed answer.  Chat platforms (Slack's
    #: chat.update, Discord, Matrix homeservers) rate-limit edits to about one a second.
    edit_interval_s: float = 1.0
    #: Whether ``OutboundMessage.private_to`` can be honoured (ephemeral or direct).
    private_replies: bool = True

    async def working(
        self, conversation: ConversationRef, message_id: str | None, on: bool
    ) -> None:
        """Show (``on``) or clear that an answer to ``message_id`` is being prepared."""
        return None

    def local_file_refs(self, paths: list[str]) -> list[FileRef] | None:
        """Local paths as files to index, or None where the platform has no local files."""
        return None

    # -- what every adapter must do ---------------------------------------------------------

    @abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Connect and deliver every translated event to ``sink``; return when stopped."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def send(self, message: OutboundMessage) -> str:
        """Post a message; return its platform id (for later edits)."""

    @abstractmethod
    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Replace the text of a message the bot posted (used to stream answers)."""

    @abstractmethod
    async def fetch_file(self, ref: FileRef) -> bytes:
        """Download a shared file."""

    @abstractmethod
    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """Whether the platform's own roles make ``user`` an admin here."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = set(dir(Adapter))
        for name in vars(cls):
            if name.startswith("_") or name in declared:
                continue
            near = difflib.get_close_matches(name, OPTIONAL_FEATURES, n=1, cutoff=0.8)
            if near:
                raise TypeError(
                    f"{cls.__name__}.{name} looks like a misspelling of the optional "
                    f"feature {near[0]!r} (bot.adapter.Adapter); the core would never "
                    f"see it. Name it {near[0]!r}, or choose a name further from it."
                )
