"""Pure rules that turn Slack payloads into the core's vocabulary (no network, no SDK).

Slack's identities: a message is ``(channel, ts)``; a thread is the ``ts`` of its
first message; a file is its ``F…`` id, shared by a message in one or more channels.
"""

from __future__ import annotations

import re
from typing import Any

from bot.events import ConversationRef, FileRef, ReactionAdded, UserRef

PLATFORM = "slack"

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
# https://team.slack.com/files/U0123/F0ABC/report.pdf, and the download form
# https://files.slack.com/files-pri/T0123-F0ABC/report.pdf (possibly inside <…|…>).
_FILE_LINK = re.compile(
    r"(?:/files/[A-Z0-9]+/(F[A-Z0-9]{4,})|/files-(?:pri|tmb)/[A-Z0-9]+-(F[A-Z0-9]{4,}))"
)
_BARE_FILE_ID = re.compile(r"^F[A-Z0-9]{4,}$")


def escape(text: str) -> str:
    """Text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped, nothing else.

    Slack reads ``<!channel>``, ``<@U…>``, ``<#C…>`` and ``<url|label>`` in message
    text as pings and masked links; a file name, a document's sentence or the model's
    words must never be one.  Slack's rules
    (https://api.slack.com/reference/surfaces/formatting#escaping) escape exactly
    these three characters; a bare URL still becomes a link (Slack unescapes
    ``&amp;`` in it), so the bot's own citation links keep working.  The bot sends no
    mention or masked link of its own.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_mentions_of(text: str, user_id: str | None) -> str:
    """The text of a mention without ``<@BOT>`` (other people's mentions are kept)."""
    if not user_id:
        return text.strip()

    def drop(match: re.Match[str]) -> str:
        return "" if match.group(1) == user_id else match.group(0)

    return " ".join(_MENTION.sub(drop, text).split())


def conversation(
    team_id: str | None,
    channel_id: str,
    thread_ts: str | None = None,
    channel_name: str | None = None,
) -> ConversationRef:
    """A Slack channel (or a thread in it) as the core names it."""
    label = f"#{channel_name}" if channel_name else None
    return ConversationRef(PLATFORM, team_id or "", channel_id, thread_ts, label)


def team_of(body: dict[str, Any]) -> str:
    """The workspace of an Events API envelope or a slash command."""
    event = body.get("event") or {}
    return str(body.get("team_id") or event.get("team") or event.get("user_team") or "")


def files_of(message: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The files a message carries (none for tombstones and deleted files)."""
    if not message or message.get("subtype") == "tombstone":
        return []
    return [f for f in message.get("files") or [] if f.get("id") and f.get("mode") != "tombstone"]


def removed_file_ids(event: dict[str, Any]) -> list[str]:
    """Files whose sharing message was deleted (``message_deleted``) or emptied of them.

    A deleted message with thread replies becomes a tombstone (``message_changed``);
    an edited message that loses an attachment is a ``message_changed`` as well.
    """
    subtype = event.get("subtype")
    if subtype not in ("message_deleted", "message_changed"):
        return []
    before = [f["id"] for f in files_of(event.get("previous_message"))]
    after = (
        set() if subtype == "message_deleted" else {f["id"] for f in files_of(event.get("message"))}
    )
    return [file_id for file_id in before if file_id not in after]


def share_ts(info: dict[str, Any], channel_id: str) -> str | None:
    """The ts of the first message that shared a file (files.info) in a channel."""
    shares = info.get("shares") or {}
    for kind in ("public", "private"):
        found = (shares.get(kind) or {}).get(channel_id) or []
        if found and found[0].get("ts"):
            return str(found[0]["ts"])
    return None


def shared_in(info: dict[str, Any], channel_id: str) -> bool:
    """Whether a file (files.info) is shared in this channel (public, private or DM)."""
    for key in ("channels", "groups", "ims"):
        if channel_id in (info.get(key) or []):
            return True
    shares = info.get("shares") or {}
    return any(channel_id in (shares.get(kind) or {}) for kind in ("public", "private"))


def may_take_file(info: dict[str, Any], channel_id: str, user_id: str) -> bool:
    """Whether ``/librarian upload <file>`` by ``user_id`` in ``channel_id`` may index it.

    The bot's token reads every file of every channel it is in, private ones too, so
    naming a file must not be a way to index what the caller cannot see: the file must
    be shared in this channel, be the caller's own, or be shared in a public channel
    (which every member of the Slack team can open).
    """
    if shared_in(info, channel_id) or (user_id and info.get("user") == user_id):
        return True
    shares = info.get("shares") or {}
    return bool(info.get("is_public") or shares.get("public") or info.get("channels"))


def file_ref(info: dict[str, Any], *, message_ts: str | None, permalink: str | None) -> FileRef:
    """A FileRef from a files.info ``file`` object."""
    return FileRef(
        platform=PLATFORM,
        file_id=str(info["id"]),
        name=str(info.get("name") or info.get("title") or info["id"]),
        size=info.get("size"),
        media_type=info.get("mimetype") or None,
        url=info.get("url_private_download") or info.get("url_private"),
        message_id=message_ts,
        permalink=permalink or info.get("permalink"),
    )


def file_id_in(text: str) -> str | None:
    """The file id in a Slack file link (or a bare ``F…`` id), if the text holds one."""
    stripped = text.strip().strip("<>").split("|", 1)[0].strip()
    if _BARE_FILE_ID.match(stripped):
        return stripped
    match = _FILE_LINK.search(stripped)
    if match is None:
        return None
    return match.group(1) or match.group(2)


def looks_like_html(data: bytes) -> bool:
    """Whether downloaded bytes are an HTML page (Slack's sign-in page) rather than a file."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html"))


def reaction_added(body: dict[str, Any], bot_user_id: str | None) -> ReactionAdded | None:
    """A ``reaction_added`` event on a message, as the core's event; None for the rest.

    Reactions on files or file comments, and the bot's own (its :eyes: while it works),
    are not for the core.  The reaction goes on by name, as Slack gives it (``+1``,
    ``thumbsdown``, ``+1::skin-tone-2``): the core decides which names are feedback.
    The reacted message's thread is not in the event; the core finds the answer by
    its ts in the channel.
    """
    event = body.get("event") or {}
    item = event.get("item") or {}
    user = event.get("user")
    if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
        return None
    if not user or user == bot_user_id:
        return None
    return ReactionAdded(
        event_id=str(
            body.get("event_id") or f"reaction:{item['ts']}:{user}:{event.get('reaction')}"
        ),
        conversation=conversation(team_of(body), str(item["channel"])),
        author=UserRef(PLATFORM, str(user)),
        message_id=str(item["ts"]),
        emoji=str(event.get("reaction") or ""),
    )
