"""Pure translation between Matrix events (their JSON) and the core's vocabulary.

Nothing here does I/O or imports matrix-nio: every function takes and returns plain
dicts and strings, so the rules (what counts as a mention, which thread an answer
goes to, how an edit looks) can be read and tested on their own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from adapters.base import command_text
from bot.events import (
    CommandInvoked,
    ConversationRef,
    FileRef,
    FileShared,
    MessageReceived,
    ReactionAdded,
    UserRef,
)
from bot.ingest.filetypes import may_download

PLATFORM = "matrix"
# The bot speaks in notices: bots must never answer notices, so two bots cannot loop.
BOT_MSGTYPE = "m.notice"
TEXT_MSGTYPES = frozenset({"m.text", "m.emote"})

_PILL = re.compile(r"""href\s*=\s*["']https://matrix\.to/#/([^"'?/]+)""", re.IGNORECASE)
_LEADING_PILL = re.compile(
    r"""\s*<a\s+href\s*=\s*["']https://matrix\.to/#/([^"'?/]+)["'][^>]*>(.*?)</a>""",
    re.IGNORECASE | re.DOTALL,
)
_MXC = re.compile(r"^mxc://([A-Za-z0-9.:\-\[\]]+)/([A-Za-z0-9_\-]+)$")


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is on the homeserver: what a mention of it looks like."""

    user_id: str
    display_name: str | None = None

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0] if self.user_id.startswith("@") else ""

    def names(self) -> list[str]:
        """Names people put at the start of a message to address the bot, longest first."""
        found = {self.user_id, self.localpart}
        if self.display_name:
            found.add(self.display_name)
        return sorted((n for n in found if n), key=len, reverse=True)


def server_name(matrix_id: str) -> str:
    """The server part of a user or room id: ``@alice:example.org`` -> ``example.org``."""
    return matrix_id.split(":", 1)[1] if ":" in matrix_id else ""


def conversation(room_id: str, thread_id: str | None = None, name: str | None = None):
    """The core's name for a room (room ids are global, so there is no space)."""
    return ConversationRef(PLATFORM, "", room_id, thread_id, name)


def permalink(room_id: str, event_id: str) -> str:
    """A matrix.to link to an event, for citations."""
    return f"https://matrix.to/#/{quote(room_id, safe='!:')}/{quote(event_id, safe='$:')}"


# -- relations ---------------------------------------------------------------------------------


def relates_to(content: dict[str, Any]) -> dict[str, Any]:
    rel = content.get("m.relates_to")
    return rel if isinstance(rel, dict) else {}


def thread_root_of(content: dict[str, Any]) -> str | None:
    """The root of the thread an event is in (``m.thread``), if any."""
    rel = relates_to(content)
    if rel.get("rel_type") == "m.thread" and isinstance(rel.get("event_id"), str):
        return rel["event_id"]
    return None


def reply_target_of(content: dict[str, Any]) -> str | None:
    """The event a rich reply answers (``m.in_reply_to``), outside threads' fallbacks."""
    rel = relates_to(content)
    if rel.get("rel_type") == "m.thread" and rel.get("is_falling_back", False):
        return None
    reply = rel.get("m.in_reply_to")
    if isinstance(reply, dict) and isinstance(reply.get("event_id"), str):
        return reply["event_id"]
    return None


def is_edit(content: dict[str, Any]) -> bool:
    return relates_to(content).get("rel_type") == "m.replace"


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted ``> <@user:server> ...`` lines older clients put before a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])


# -- mentions ----------------------------------------------------------------------------------


def mentioned_ids(content: dict[str, Any]) -> set[str]:
    """User ids the event mentions: ``m.mentions`` and pills in ``formatted_body``."""
    ids: set[str] = set()
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict) and isinstance(mentions.get("user_ids"), list):
        ids.update(u for u in mentions["user_ids"] if isinstance(u, str))
    formatted = content.get("formatted_body")
    if isinstance(formatted, str):
        ids.update(unquote(m) for m in _PILL.findall(formatted))
    return ids


def leading_pill_name(content: dict[str, Any], bot: BotIdentity) -> str | None:
    """The text of a pill to the bot that starts ``formatted_body`` (what the body starts with)."""
    formatted = content.get("formatted_body")
    if not isinstance(formatted, str):
        return None
    match = _LEADING_PILL.match(formatted)
    if match and unquote(match.group(1)) == bot.user_id:
        return html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip() or None
    return None


def strip_leading_mention(
    body: str, bot: BotIdentity, extra_names: tuple[str, ...] = ()
) -> tuple[str, bool]:
    """``"Librarian: what is X?"`` -> ``("what is X?", True)``.

    A name counts at the start of the body as ``@name`` or ``name:`` / ``name,`` (what a
    pill looks like in the plain body, and what people type), not as a bare word: "the
    librarian said" is not a question to the bot.
    """
    text = body.lstrip()
    lowered = text.casefold()
    names = sorted({*bot.names(), *(n for n in extra_names if n)}, key=len, reverse=True)
    for name in names:
        for at in ("@", ""):
            candidate = (at + name).casefold()
            if not lowered.startswith(candidate):
                continue
            rest = text[len(candidate) :]
            if rest[:1] in (":", ","):
                return rest[1:].strip(), True
            if at and (not rest or rest[:1].isspace()):
                return rest.strip(), True
    return body.strip(), False


# -- incoming events ---------------------------------------------------------------------------


def file_ref(room_id: str, event: dict[str, Any]) -> FileRef | None:
    """A FileRef for an ``m.file`` event carrying a kind of file Librarian reads."""
    content = event.get("content") or {}
    url = content.get("url")
    if not isinstance(url, str) or parse_mxc(url) is None:
        return None  # an encrypted file ("file" instead of "url"), or nothing to fetch
    name = content.get("filename") or content.get("body") or "file"
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    media_type = info.get("mimetype") if isinstance(info.get("mimetype"), str) else None
    size = info.get("size")
    if not may_download(name, media_type):
        return None
    return FileRef(
        platform=PLATFORM,
        file_id=url,
        name=name,
        size=size if isinstance(size, int) and size >= 0 else None,
        media_type=media_type,
        url=url,
        message_id=event.get("event_id"),
        permalink=permalink(room_id, event["event_id"]) if event.get("event_id") else None,
    )


def reaction(
    room_id: str, event: dict[str, Any], bot: BotIdentity, *, sender_name: str | None = None
) -> ReactionAdded | None:
    """An ``m.reaction`` (an ``m.annotation`` of another event) as the core's event.

    The key goes on as sent (an emoji, possibly with a skin tone or a variation
    selector): the core decides which keys are feedback.  The bot's own reactions are
    not for it.  The conversation is the room: the core finds the reacted answer by
    its event id in the room, whatever thread it is in.
    """
    if event.get("type") != "m.reaction" or event.get("sender") == bot.user_id:
        return None
    event_id, sender = event.get("event_id"), event.get("sender")
    content = event.get("content")
    if (
        not isinstance(event_id, str)
        or not isinstance(sender, str)
        or not isinstance(content, dict)
    ):
        return None
    rel = relates_to(content)
    target, key = rel.get("event_id"), rel.get("key")
    if rel.get("rel_type") != "m.annotation" or not isinstance(target, str):
        return None
    if not isinstance(key, str) or not key:
        return None
    return ReactionAdded(
        event_id, conversation(room_id), UserRef(PLATFORM, sender, sender_name), target, key
    )


def translate(
    room_id: str,
    event: dict[str, Any],
    bot: BotIdentity,
    *,
    room_name: str | None = None,
    sender_name: str | None = None,
) -> MessageReceived | CommandInvoked | FileShared | ReactionAdded | None:
    """A timeline event as a core event; None for what the bot ignores.

    Ignored: anything but ``m.room.message`` and ``m.reaction``, the bot's own events,
    notices (other bots), edits, and files it cannot index.  The thread is the
    ``m.thread`` root, or the event a rich reply answers (the adapter resolves that one
    to its thread's root), or, for a question outside any thread, the question itself:
    its answer starts a thread.
    """
    if event.get("type") == "m.reaction":
        return reaction(room_id, event, bot, sender_name=sender_name)
    if event.get("type") != "m.room.message" or event.get("sender") == bot.user_id:
        return None
    content = event.get("content")
    event_id = event.get("event_id")
    sender = event.get("sender")
    if not isinstance(content, dict) or not isinstance(event_id, str) or not sender:
        return None
    if is_edit(content):
        return None
    msgtype = content.get("msgtype")
    author = UserRef(PLATFORM, sender, sender_name)
    thread = thread_root_of(content) or reply_target_of(content)
    where = conversation(room_id, thread, room_name)

    if msgtype == "m.file":
        ref = file_ref(room_id, event)
        if ref is None:
            return None
        caption = content.get("body") if content.get("filename") else None
        if isinstance(caption, str) and caption.strip() and caption != ref.name:
            pill = leading_pill_name(content, bot)
            text, named = strip_leading_mention(caption, bot, (pill,) if pill else ())
            mentioned = named or bot.user_id in mentioned_ids(content)
            if mentioned and thread is None:
                where = where.in_thread(event_id)
            return MessageReceived(
                event_id, where, author, text, mentioned, message_id=event_id, files=(ref,)
            )
        return FileShared(event_id, where, author, ref)

    if msgtype not in TEXT_MSGTYPES:
        return None
    body = content.get("body")
    if not isinstance(body, str):
        return None
    if relates_to(content).get("m.in_reply_to"):
        body = strip_reply_fallback(body)
    command = command_text(body)
    if command is not None:
        return CommandInvoked(event_id, where, author, command, message_id=event_id)
    pill = leading_pill_name(content, bot)
    text, named = strip_leading_mention(body, bot, (pill,) if pill else ())
    mentioned = named or bot.user_id in mentioned_ids(content)
    if mentioned and thread is None:
        where = where.in_thread(event_id)  # the answer starts a thread on the question
    return MessageReceived(event_id, where, author, text, mentioned, message_id=event_id)


def membership_change(event: dict[str, Any]) -> tuple[str, str] | None:
    """(user id, new membership) for a membership event that changes it (not a rename)."""
    if event.get("type") != "m.room.member" or not isinstance(event.get("state_key"), str):
        return None
    content = event.get("content") or {}
    membership = content.get("membership")
    unsigned = event.get("unsigned") or {}
    prev = (unsigned.get("prev_content") or {}).get("membership")
    if not isinstance(membership, str) or membership == prev:
        return None
    return event["state_key"], membership


# -- outgoing content ------------------------------------------------------------------------


def message_content(
    text: str, *, thread_root: str | None = None, reply_to: str | None = None
) -> dict[str, Any]:
    """A notice, in a thread (with its reply fallback, per the spec) or as a rich reply."""
    content: dict[str, Any] = {"msgtype": BOT_MSGTYPE, "body": text, "m.mentions": {}}
    if thread_root:
        target = reply_to or thread_root
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            # A real reply to an event inside the thread is not a fallback; a reply to the
            # root (or to nothing in particular) is only there for thread-unaware clients.
            "is_falling_back": target == thread_root,
            "m.in_reply_to": {"event_id": target},
        }
    elif reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def edit_content(event_id: str, text: str) -> dict[str, Any]:
    """An ``m.replace`` edit giving a message the new text ``text``."""
    return {
        "msgtype": BOT_MSGTYPE,
        "body": f"* {text}",
        "m.mentions": {},
        "m.new_content": {"msgtype": BOT_MSGTYPE, "body": text, "m.mentions": {}},
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


# -- media -------------------------------------------------------------------------------------


def parse_mxc(uri: str) -> tuple[str, str] | None:
    """``mxc://server/media`` -> (server, media id); None if it is not a valid mxc URI."""
    match = _MXC.match(uri)
    return (match.group(1), match.group(2)) if match else None


def media_download_urls(homeserver: str, uri: str) -> list[str]:
    """Where to download a media item: the authenticated endpoint, then the legacy one."""
    parsed = parse_mxc(uri)
    if parsed is None:
        raise ValueError(f"not an mxc:// URI: {uri!r}")
    server, media_id = (quote(part, safe="") for part in parsed)
    base = homeserver.rstrip("/")
    return [
        f"{base}/_matrix/client/v1/media/download/{server}/{media_id}",
        f"{base}/_matrix/media/v3/download/{server}/{media_id}?allow_redirect=true",
    ]


# -- invitations -------------------------------------------------------------------------------


def inviter(invite_state: list[dict[str, Any]], bot_user_id: str) -> str | None:
    """Who invited the bot, from a room's ``invite_state``."""
    for event in invite_state:
        if (
            event.get("type") == "m.room.member"
            and event.get("state_key") == bot_user_id
            and (event.get("content") or {}).get("membership") == "invite"
        ):
            sender = event.get("sender")
            return sender if isinstance(sender, str) else None
    return None


def may_invite(user_id: str | None, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether an invitation from ``user_id`` is accepted (empty ``allowed``: everyone).

    Entries are user ids (``@alice:example.org``) or server names (``example.org``).
    """
    if not allowed:
        return True
    if not user_id:
        return False
    server = server_name(user_id)
    return any(
        entry == user_id or (not entry.startswith("@") and entry == server) for entry in allowed
    )
