"""The vocabulary shared by the core and the adapters.

Adapters translate platform events into these frozen dataclasses and transport
``OutboundMessage`` back; they decide nothing.  Nothing here knows a chat SDK.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConversationRef:
    """Where something was said: a channel, optionally a thread inside it."""

    platform: str
    space_id: str  # Slack team, Discord guild, Matrix server; "" where there is none
    channel_id: str
    thread_id: str | None = None
    channel_name: str | None = None  # for people: "#general"

    @property
    def channel(self) -> ConversationRef:
        """The same channel without the thread."""
        return ConversationRef(
            self.platform, self.space_id, self.channel_id, None, self.channel_name
        )

    def in_thread(self, thread_id: str | None) -> ConversationRef:
        """The same channel, in another thread."""
        return ConversationRef(
            self.platform, self.space_id, self.channel_id, thread_id, self.channel_name
        )

    @property
    def key(self) -> str:
        """A stable key for fair queueing and history: platform/space/channel/thread."""
        return f"{self.platform}/{self.space_id}/{self.channel_id}/{self.thread_id or ''}"

    @property
    def label(self) -> str:
        """How people name this channel."""
        return self.channel_name or self.channel_id


@dataclass(frozen=True)
class UserRef:
    """Who did something, qualified by platform (``console:alice``)."""

    platform: str
    user_id: str
    display_name: str | None = None

    @property
    def qualified(self) -> str:
        """The platform-qualified id used in settings and the audit log."""
        return f"{self.platform}:{self.user_id}"

    @property
    def name(self) -> str:
        """A name for messages."""
        return self.display_name or self.user_id


@dataclass(frozen=True)
class FileRef:
    """A file shared on a platform, not yet downloaded."""

    platform: str
    file_id: str
    name: str
    size: int | None = None
    media_type: str | None = None
    url: str | None = None  # where the adapter downloads it from
    message_id: str | None = None  # the message that shared it
    permalink: str | None = None  # a link back to that message, for citations


@dataclass(frozen=True)
class MessageReceived:
    """A message in a channel; a question when it mentions the bot."""

    event_id: str
    conversation: ConversationRef
    author: UserRef
    text: str
    mentions_bot: bool
    message_id: str | None = None
    files: tuple[FileRef, ...] = ()


@dataclass(frozen=True)
class FileShared:
    """A file appeared in a channel (auto-indexing decides whether to read it)."""

    event_id: str
    conversation: ConversationRef
    author: UserRef
    file: FileRef


@dataclass(frozen=True)
class FileRemoved:
    """A file, or one share of it, was removed on the platform: forget what came of it.

    ``everywhere``: the file itself is gone (deleted, or found missing), so every
    document indexed from it goes.  Otherwise only its share in ``conversation`` was
    removed (the sharing message deleted), and only the documents of that channel's
    workspace go: one team deleting its message must not forget another's document.
    """

    event_id: str
    conversation: ConversationRef
    file_id: str
    everywhere: bool = False


@dataclass(frozen=True)
class CommandInvoked:
    """``/librarian <name> <args>``, from a slash command or typed as text."""

    event_id: str
    conversation: ConversationRef
    author: UserRef
    text: str  # everything after "librarian", e.g. "upload report.pdf"
    files: tuple[FileRef, ...] = ()
    message_id: str | None = None


@dataclass(frozen=True)
class ReactionAdded:
    """Someone reacted to a message with an emoji.

    ``emoji`` is the reaction as the platform names it (Slack's ``+1``, the ``👍``
    character on Discord and Matrix); the core decides which reactions count as
    feedback (``bot.feedback``), so adapters pass every reaction on, untouched.
    """

    event_id: str
    conversation: ConversationRef  # the channel; the thread is not known from a reaction
    author: UserRef
    message_id: str  # the platform id of the message reacted to
    emoji: str


Event = MessageReceived | FileShared | FileRemoved | CommandInvoked | ReactionAdded

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (MessageReceived, FileShared, FileRemoved, CommandInvoked, ReactionAdded)
}


def event_payload(event: Event) -> dict[str, Any]:
    """An event as JSON-able data, stored while it is in flight to run it again after a
    crash: its fields (where, who, the text or file reference) and its type."""
    return {"type": type(event).__name__, **asdict(event)}


def event_from_payload(payload: dict[str, Any]) -> Event:
    """The event ``event_payload`` stored; ValueError for a payload it did not write."""
    fields = dict(payload)
    fields.pop("effect", None)  # what an attempt stored (bot.store.events), not the event
    kind = _EVENT_TYPES.get(str(fields.pop("type", "")))
    if kind is None:
        raise ValueError(f"not a stored event: type {payload.get('type')!r}")
    fields["conversation"] = ConversationRef(**fields["conversation"])
    if "author" in fields:
        fields["author"] = UserRef(**fields["author"])
    if "file" in fields:
        fields["file"] = FileRef(**fields["file"])
    if "files" in fields:
        fields["files"] = tuple(FileRef(**f) for f in fields["files"])
    return kind(**fields)


@dataclass(frozen=True)
class OutboundMessage:
    """Something the bot says."""

    conversation: ConversationRef
    text: str
    reply_to: str | None = None  # platform message id to answer (threads where supported)
    private_to: UserRef | None = None  # ephemeral where the platform supports it
    extra: dict[str, str] = field(default_factory=dict, compare=False)
