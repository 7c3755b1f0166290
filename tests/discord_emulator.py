"""A small Discord, on loopback, that speaks the wire protocol discord.py 2.x uses.

The REST API lives at ``{base}/api/v10`` (point ``discord.http.Route.BASE`` there) and
the gateway websocket at ``{base}/gateway`` (``DiscordWebSocket.DEFAULT_GATEWAY``).
It holds one guild with two text channels (``add_guild`` adds more), three people and
the bot, and it keeps:

- ``calls``: every REST request the bot made (method, path, query, JSON body, time);
- ``gateway_log``: every gateway frame the bot sent (op, and the data that matters);
- ``messages``: every message in every channel, as Discord would store it.

The gateway does HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats (each ACKed),
zlib-stream compression when asked for (discord.py asks), RESUME with replay of the
events the client missed, then RESUMED.  Sharding is Discord's: ``GET /gateway/bot``
recommends ``shard_count`` shards; an IDENTIFY with ``shard: [id, count]`` opens a
session of that shard (an id outside the count is closed with 4010, a shard of more
than ``max_guilds_per_shard`` guilds with 4011, "sharding required"), whose READY and
GUILD_CREATEs name only its guilds; a guild's events go to the sessions of shard
``(guild_id >> 22) % count``, direct messages' to shard 0, as Discord routes them.
Every session keeps its own sequence and replay buffer.  IDENTIFYs are held to
Discord's session start limit (``max_concurrency`` per 5 s): one too early gets an
Invalid Session (op 9), and the client identifies again later.  Messages without a
mention of the bot lose their content and attachments when the client did not ask for
the privileged MESSAGE_CONTENT intent, as on Discord.  Interactions follow Discord's rules: a
callback within 3 s, follow-ups through the interaction webhook, and the first
follow-up after a deferral replaces the "thinking" message and keeps the deferral's
visibility.  Every channel has a message bucket of ``bucket_limit`` requests per
``bucket_window_s`` (announced in X-RateLimit headers); going past it is a 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
MESSAGE_LIMIT = 2000
EPHEMERAL = 1 << 6

# Permission bits.
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | READ_MESSAGE_HISTORY
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
MESSAGE_CONTENT_INTENT = 1 << 15
GUILD_MESSAGE_REACTIONS_INTENT = 1 << 10
# Gateway events a client receives only with the intent that covers them.
EVENT_INTENTS = {
    "MESSAGE_REACTION_ADD": GUILD_MESSAGE_REACTIONS_INTENT,
    "MESSAGE_REACTION_REMOVE": GUILD_MESSAGE_REACTIONS_INTENT,
}


# Discord's session start limit window (max_concurrency IDENTIFYs per window), less
# a little for the time an IDENTIFY takes to arrive.
IDENTIFY_WINDOW_S = 4.9
# Fields of a guild that only GUILD_CREATE carries, not GET /guilds/{id}.
GUILD_CREATE_ONLY = (
    "joined_at",
    "large",
    "unavailable",
    "member_count",
    "members",
    "voice_states",
    "channels",
    "threads",
    "presences",
    "stage_instances",
    "guild_scheduled_events",
    "soundboard_sounds",
)


@dataclass
class Call:
    """One REST request the bot made."""

    method: str
    path: str  # below /api/v10, e.g. /channels/1/messages
    query: dict[str, str]
    body: Any
    at: float


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    compressor: Any = None  # zlib compressobj when the client asked for zlib-stream
    session_id: str | None = None


@dataclass
class Session:
    """One gateway session: the shard it identified as, its events, its live connection."""

    session_id: str
    shard: tuple[int, int]  # (id, count); an IDENTIFY without a shard is (0, 1)
    intents: int
    events: list[tuple[int, str, dict]] = field(default_factory=list)  # (seq, type, data)
    seq: int = 0
    conn: _Connection | None = None
    replay_from: int | None = None  # redeliver from this seq on the next RESUME
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def covers(self, guild_id: str | None) -> bool:
        """Whether Discord sends this guild's events (None: a DM's) to this session."""
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id


def shard_of(guild_id: str | None, count: int) -> int:
    """The shard Discord sends a guild's events to; direct messages go to shard 0."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % count


@dataclass
class _Interaction:
    id: str
    token: str
    channel_id: str
    user_id: str
    dispatched_at: float
    callback: dict | None = None
    callback_at: float | None = None
    original_id: str | None = None  # the deferred "thinking" message
    original_used: bool = False
    followups: list[str] = field(default_factory=list)


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response typed exactly ``application/json``, as Discord sends (and discord.py
    checks: with a charset parameter it would take the body for text)."""
    response = web.Response(text=json.dumps(data), status=status, headers=headers)
    response.content_type = "application/json"
    response.charset = None
    return response


class DiscordEmulator:
    """Discord's REST API and gateway for one bot, on 127.0.0.1."""

    def __init__(self, token: str = "emulated-bot-token", *, heartbeat_ms: int = 1000) -> None:
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot = self._user(self.app_id, "Librarian", bot=True)
        self.owner = self._user(self.snowflake(), "owner")
        self.users = {
            "alice": self._user(self.snowflake(), "alice"),  # a moderator (Manage Server)
            "bob": self._user(self.snowflake(), "bob"),  # no role
            "carol": self._user(self.snowflake(), "carol"),  # Manage Channels
        }
        # user id -> role ids, in every guild (each guild has its own roles of these names).
        self.member_roles: dict[str, list[str]] = {
            u["id"]: [] for u in (*self.users.values(), self.owner, self.bot)
        }
        self.guilds: dict[str, dict] = {}  # guild id -> {"id", "name", "roles"}
        self.channels: dict[str, dict] = {}
        self.channel_ids: dict[str, str] = {}  # channel name -> id (names unique here)
        self.guild_id = self.add_guild("Test guild", ("general", "random"))
        self.roles = self.guilds[self.guild_id]["roles"]
        self.dm_channels: dict[str, str] = {}  # user id -> the bot's DM channel with them
        self.closed_dms: set[str] = set()  # user ids who take no DMs (error 50007)
        self.messages: dict[str, dict] = {}
        self.attachments: dict[str, tuple[bytes, str]] = {}  # id -> (bytes, content type)
        self.commands: dict[str, list[dict]] = {}  # guild id -> synced commands
        self.interactions: dict[str, _Interaction] = {}
        self.calls: list[Call] = []
        self.gateway_log: list[dict] = []
        self.rate_limited: list[Call] = []  # requests answered 429
        self.bucket_limit = 5
        self.bucket_window_s = 5.0
        self._buckets: dict[str, list[float]] = {}
        # Gateway state: the sessions (one per IDENTIFY), by id, in the order they began.
        self.sessions: dict[str, Session] = {}
        self.shard_count = 1  # what GET /gateway/bot recommends
        # A session covering more guilds than this is closed with 4011 (Discord: 2,500).
        self.max_guilds_per_shard = 2500
        self.max_concurrency = 1  # IDENTIFYs per 5 s (GET /gateway/bot says so too)
        self._identified_at: dict[int, float] = {}  # rate-limit key -> last IDENTIFY
        self.connections = 0
        self.ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/attachments/{channel}/{attachment}/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for session in self.sessions.values():
            if session.conn is not None:
                await session.conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # -- ids and payloads ----------------------------------------------------------------

    def snowflake(self, *, shard: tuple[int, int] | None = None) -> str:
        """A new id; with ``shard=(id, count)``, one whose guild would be on that shard.

        (A guild's shard comes from its id's timestamp, so such an id is dated up to
        ``count`` milliseconds earlier.)
        """
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if shard is not None:
            shard_id, count = shard
            ms -= (ms - shard_id) % count
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    def add_guild(
        self, name: str, channels: tuple[str, ...], *, shard: tuple[int, int] | None = None
    ) -> str:
        """A guild the bot is in, with text channels of these (new) names; its id.

        The three people are members with the same roles as in the first guild.  A bot
        already connected is not told (add guilds before it connects).
        """
        gid = self.snowflake(shard=shard)
        roles = {
            "everyone": {"id": gid, "permissions": EVERYONE_PERMISSIONS},
            "moderators": {"id": self.snowflake(), "permissions": MANAGE_GUILD},
            "channel-keepers": {"id": self.snowflake(), "permissions": MANAGE_CHANNELS},
        }
        self.guilds[gid] = {"id": gid, "name": name, "roles": roles}
        self.member_roles[self.users["alice"]["id"]].append(roles["moderators"]["id"])
        self.member_roles[self.users["carol"]["id"]].append(roles["channel-keepers"]["id"])
        for position, channel in enumerate(channels):
            if channel in self.channel_ids:
                raise ValueError(f"a channel is already named {channel}")
            cid = self.snowflake()
            self.channels[cid] = {
                "id": cid,
                "type": 0,
                "guild_id": gid,
                "name": channel,
                "position": position,
                "parent_id": None,
                "topic": None,
                "nsfw": False,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "permission_overwrites": [],
            }
            self.channel_ids[channel] = cid
        return gid

    def guild_of(self, channel_id: str) -> str | None:
        """The guild of a channel or thread; None for a direct message channel."""
        return self.channels[channel_id].get("guild_id")

    @staticmethod
    def _user(uid: str, name: str, *, bot: bool = False) -> dict:
        return {
            "id": uid,
            "username": name,
            "global_name": name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
        }

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat()

    def member(self, user: dict, *, with_user: bool = True, guild_id: str | None = None) -> dict:
        guild = self.guilds[guild_id or self.guild_id]
        data = {
            "roles": [
                r for r in self.member_roles.get(user["id"], []) if r in self._role_ids(guild)
            ],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
        }
        if with_user:
            data["user"] = user
        return data

    @staticmethod
    def _role_ids(guild: dict) -> set[str]:
        return {r["id"] for r in guild["roles"].values()}

    def permissions_of(self, user_id: str, guild_id: str | None = None) -> int:
        if user_id == self.owner["id"]:
            return (1 << 53) - 1
        roles = self.guilds[guild_id or self.guild_id]["roles"]
        value = roles["everyone"]["permissions"]
        for role in roles.values():
            if role["id"] in self.member_roles.get(user_id, []):
                value |= role["permissions"]
        return value

    def guild_payload(self, guild_id: str | None = None) -> dict:
        guild = self.guilds[guild_id or self.guild_id]
        roles = [
            {
                "id": r["id"],
                "name": "@everyone" if name == "everyone" else name,
                "permissions": str(r["permissions"]),
                "position": i,
                "color": 0,
                "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for i, (name, r) in enumerate(guild["roles"].items())
        ]
        return {
            "id": guild["id"],
            "name": guild["name"],
            "icon": None,
            "owner_id": self.owner["id"],
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [c for c in self.channels.values() if c.get("guild_id") == guild["id"]],
            "threads": [],
            # Without the GUILD_MEMBERS intent Discord sends only the bot's own member.
            "members": [self.member(self.bot, guild_id=guild["id"])],
            "member_count": len(self.users) + 2,
            "voice_states": [],
            "presences": [],
            "large": False,
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "verification_level": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "explicit_content_filter": 0,
            "default_message_notifications": 0,
            "afk_timeout": 300,
            "application_id": None,
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _channel_of(self, channel_id: str) -> dict:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Unknown Channel", "code": 10003}),
                content_type="application/json",
            ) from None

    def _message(
        self,
        channel_id: str,
        author: dict,
        content: str,
        *,
        mentions: list[dict] | None = None,
        attachments: list[dict] | None = None,
        reference: str | None = None,
        flags: int = 0,
        webhook_id: str | None = None,
        interaction_user: dict | None = None,
    ) -> dict:
        mid = self.snowflake()
        gid = self.guild_of(channel_id)
        message = {
            "id": mid,
            "channel_id": channel_id,
            "guild_id": gid,
            "author": author,
            "content": content,
            "timestamp": self._now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                {**m, "member": self.member(m, with_user=False, guild_id=gid)}
                for m in mentions or []
            ],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": [],
            "reactions": [],
            "pinned": False,
            "type": 19 if reference else 0,
            "flags": flags,
            "components": [],
        }
        if webhook_id:
            message["webhook_id"] = webhook_id
            message["application_id"] = self.app_id
            message["type"] = 20
        if interaction_user is not None:
            message["interaction_metadata"] = {
                "id": self.snowflake(),
                "type": 2,
                "user": interaction_user,
                "authorizing_integration_owners": {"0": gid},
                "name": "librarian",
            }
        if not webhook_id:
            message["member"] = self.member(author, with_user=False, guild_id=gid)
        if reference:
            referenced = self.messages.get(reference)
            message["message_reference"] = {
                "type": 0,
                "message_id": reference,
                "channel_id": channel_id,
                "guild_id": gid,
            }
            message["referenced_message"] = referenced
        self.messages[mid] = message
        self.channels[channel_id]["last_message_id"] = mid
        return message

    # -- what the people in the guild do -------------------------------------------------

    async def post(
        self,
        user: str,
        channel: str,
        text: str,
        *,
        mention_bot: bool = False,
        files: list[tuple[str, bytes, str]] = (),
        reply_to: str | None = None,
    ) -> dict:
        """``user`` writes in ``channel`` (a name or a thread/channel id); returns the message."""
        channel_id = self.channel_ids.get(channel, channel)
        author = self.users[user]
        content = f"<@{self.bot['id']}> {text}" if mention_bot else text
        mentions = [self.bot] if mention_bot else []
        if (
            reply_to
            and self.messages.get(reply_to, {}).get("author", {}).get("id") == self.bot["id"]
        ):
            mentions = [self.bot]  # a reply pings the author it answers
        attachments = []
        for name, data, content_type in files:
            aid = self.snowflake()
            self.attachments[aid] = (data, content_type)
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{name}"
            attachments.append(
                {
                    "id": aid,
                    "filename": name,
                    "size": len(data),
                    "url": url,
                    "proxy_url": url,
                    "content_type": content_type,
                }
            )
        message = self._message(
            channel_id,
            author,
            content,
            mentions=mentions,
            attachments=attachments,
            reference=reply_to,
        )
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def react(self, user: str, message_id: str, emoji: str) -> dict:
        """``user`` adds the unicode ``emoji`` to a message; returns the gateway payload.

        As Discord sends MESSAGE_REACTION_ADD: the channel (a thread's own id for a
        message in a thread), the reactor as a guild member, the message's author id,
        and the emoji with a null id (a unicode emoji).  Clients without the Guild
        Message Reactions intent are not sent it.
        """
        message = self.messages[message_id]
        author = self.users[user]
        gid = message["guild_id"]
        payload = {
            "user_id": author["id"],
            "type": 0,
            "message_id": message_id,
            "message_author_id": message["author"]["id"],
            "member": self.member(author, guild_id=gid),
            "emoji": {"id": None, "name": emoji},
            "channel_id": message["channel_id"],
            "guild_id": gid,
            "burst": False,
            "burst_colors": [],
        }
        for reaction in message["reactions"]:
            if reaction["emoji"]["name"] == emoji:
                reaction["count"] += 1
                break
        else:
            message["reactions"].append(
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": 1,
                    "count_details": {"burst": 0, "normal": 1},
                    "burst_colors": [],
                    "me": False,
                    "me_burst": False,
                    "burst_me": False,
                    "burst_count": 0,
                }
            )
        await self.dispatch("MESSAGE_REACTION_ADD", payload)
        return payload

    async def slash(
        self,
        user: str,
        channel: str,
        subcommand: str,
        options: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> _Interaction:
        """``user`` runs ``/librarian <subcommand>`` with options, as the Discord client does.

        The command must have been synced to the guild; option types come from there.
        """
        channel_id = self.channel_ids.get(channel, channel)
        gid = self.guild_of(channel_id)
        assert gid is not None, "slash commands are run in a guild here"
        synced = {c["name"]: c for c in self.commands.get(gid, [])}
        if "librarian" not in synced:
            raise AssertionError(f"/librarian is not synced to the guild: {list(synced)}")
        group = synced["librarian"]
        sub = next((o for o in group.get("options", []) if o["name"] == subcommand), None)
        if sub is None:
            raise AssertionError(f"no subcommand {subcommand}")
        types = {o["name"]: o["type"] for o in sub.get("options", [])}
        values = []
        resolved: dict[str, dict] = {}
        for name, value in (options or {}).items():
            values.append({"name": name, "type": types[name], "value": value})
        for name, (filename, data, content_type) in (files or {}).items():
            aid = self.snowflake()
            self.attachments[aid] = (data, content_type)
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{filename}"
            resolved[aid] = {
                "id": aid,
                "filename": filename,
                "size": len(data),
                "url": url,
                "proxy_url": url,
                "content_type": content_type,
                "ephemeral": True,
            }
            values.append({"name": name, "type": types[name], "value": aid})
        author = self.users[user]
        member = self.member(author, guild_id=gid)
        member["permissions"] = str(self.permissions_of(author["id"], gid))
        iid = self.snowflake()
        token = secrets.token_urlsafe(24)
        data = {
            "id": group["id"],
            "name": "librarian",
            "type": 1,
            "guild_id": gid,
            "options": [{"name": subcommand, "type": 1, "options": values}],
        }
        if resolved:
            data["resolved"] = {"attachments": resolved}
        payload = {
            "id": iid,
            "application_id": self.app_id,
            "type": 2,
            "token": token,
            "version": 1,
            "guild_id": gid,
            "guild": {"id": gid, "locale": "en-US", "features": []},
            "channel_id": channel_id,
            "channel": self.channels[channel_id],
            "member": member,
            "data": data,
            "app_permissions": str(EVERYONE_PERMISSIONS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": gid},
            "context": 0,
            "attachment_size_limit": 26214400,
        }
        interaction = _Interaction(iid, token, channel_id, author["id"], time.monotonic())
        self.interactions[iid] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # -- gateway ---------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a guild's event to the sessions of its shard (a DM's to shard 0's).

        Each session queues it (for a RESUME) and sends it if its bot is connected.
        """
        guild_id = data.get("guild_id")
        for session in list(self.sessions.values()):
            if session.covers(guild_id):
                await self._emit(session, event, data)

    async def _emit(self, session: Session, event: str, data: dict) -> None:
        """One session's next event.  An event of an intent it did not ask for is not
        part of it."""
        needed = EVENT_INTENTS.get(event)
        if needed is not None and not session.intents & needed:
            return
        session.seq += 1
        session.events.append((session.seq, event, data))
        if session.conn is not None:
            await self._send_event(session, session.conn, session.seq, event, data)

    def session(self, shard_id: int = 0) -> Session:
        """The newest session of a shard (shard 0: also an unsharded bot's)."""
        found = [s for s in self.sessions.values() if s.shard[0] == shard_id]
        assert found, f"no session of shard {shard_id}"
        return found[-1]

    def received(self, session: Session, event: str) -> list[dict]:
        """The events of one type a session was sent (or holds for its RESUME)."""
        return [data for _, name, data in session.events if name == event]

    def _filtered(self, session: Session, event: str, data: dict) -> dict:
        """What a client without the MESSAGE_CONTENT intent receives."""
        if event != "MESSAGE_CREATE" or session.intents & MESSAGE_CONTENT_INTENT:
            return data
        if data["author"]["id"] == self.bot["id"]:
            return data
        if any(m["id"] == self.bot["id"] for m in data.get("mentions", [])):
            return data
        return {**data, "content": "", "attachments": [], "embeds": [], "components": []}

    async def _send_event(
        self, session: Session, conn: _Connection, seq: int, event: str, data: dict
    ) -> None:
        payload = {"op": 0, "s": seq, "t": event, "d": self._filtered(session, event, data)}
        await self._send(conn, payload)

    async def _send(self, conn: _Connection, payload: dict) -> None:
        text = json.dumps(payload)
        if conn.ws.closed:
            return
        try:
            if conn.compressor is not None:
                data = conn.compressor.compress(text.encode()) + conn.compressor.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await conn.ws.send_bytes(data)
            else:
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    async def drop(self, session: Session | None = None) -> None:
        """A session's connection (by default the one connected) dies without a close
        frame (a network failure)."""
        if session is None:
            [session] = [s for s in self.sessions.values() if s.conn is not None]
        conn, session.conn = session.conn, None
        assert conn is not None, "the bot is not connected"
        session.resumed.clear()
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            await ws.close(code=4012, message=b"Invalid API version")
            return ws
        compress = request.query.get("compress")
        compressor = zlib.compressobj() if compress == "zlib-stream" else None
        conn = _Connection(ws, request, compressor)
        await self._send(
            conn, {"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": self.heartbeat_ms}}
        )
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                await self._on_frame(conn, payload)
        finally:
            session = self.sessions.get(conn.session_id or "")
            if session is not None and session.conn is conn:
                session.conn = None
        return ws

    async def _on_frame(self, conn: _Connection, payload: dict) -> None:
        op, data = payload.get("op"), payload.get("d")
        entry: dict[str, Any] = {"op": op, "at": time.monotonic()}
        if op == 1:
            entry["seq"] = data
            await self._send(conn, {"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            entry.update(
                intents=data.get("intents"),
                token_ok=data.get("token") == self.token,
                shard=data.get("shard"),
            )
            self.gateway_log.append(entry)
            if data.get("token") != self.token:
                await conn.ws.close(code=4004, message=b"Authentication failed.")
                return
            if not self._may_identify(data.get("shard")):
                entry["refused"] = "identify rate"
                await self._send(conn, {"op": 9, "s": None, "t": None, "d": False})
                return
            await self._identify(conn, data)
            return
        elif op == 6:
            entry.update(session_id=data.get("session_id"), seq=data.get("seq"))
            self.gateway_log.append(entry)
            await self._resume(conn, data)
            return
        self.gateway_log.append(entry)

    def _may_identify(self, shard: list[int] | None) -> bool:
        """Discord's session start limit: ``max_concurrency`` IDENTIFYs per 5 s, one per
        rate-limit key (shard id % max_concurrency); past it, an Invalid Session (op 9)."""
        key = (shard[0] if shard else 0) % self.max_concurrency
        now = time.monotonic()
        last = self._identified_at.get(key)
        if last is not None and now - last < IDENTIFY_WINDOW_S:
            return False
        self._identified_at[key] = now
        return True

    async def _identify(self, conn: _Connection, data: dict) -> None:
        shard = data.get("shard")
        if shard is None:
            shard_id, count = 0, 1
        else:
            shard_id, count = shard
            if not (isinstance(count, int) and isinstance(shard_id, int) and 0 <= shard_id < count):
                await conn.ws.close(code=4010, message=b"Invalid shard.")
                return
        if sum(1 for gid in self.guilds if shard_of(gid, count) == shard_id) > (
            self.max_guilds_per_shard
        ):
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return
        session = Session(secrets.token_hex(16), (shard_id, count), data.get("intents") or 0)
        self.sessions[session.session_id] = session
        conn.session_id = session.session_id
        session.conn = conn
        guilds = [gid for gid in self.guilds if session.covers(gid)]
        ready = {
            "v": 10,
            "user": {**self.bot, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": gid, "unavailable": True} for gid in guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "private_channels": [],
            "relationships": [],
            "application": {"id": self.app_id, "flags": 1 << 19},
            "session_type": "normal",
        }
        if shard is not None:
            ready["shard"] = [shard_id, count]
        await self._emit(session, "READY", ready)
        for gid in guilds:
            await self._emit(session, "GUILD_CREATE", self.guild_payload(gid))
        self.ready.set()

    async def _resume(self, conn: _Connection, data: dict) -> None:
        session = self.sessions.get(data.get("session_id") or "")
        if data.get("token") != self.token or session is None:
            await self._send(conn, {"op": 9, "s": None, "t": None, "d": False})
            return
        since = int(data.get("seq") or 0) + 1
        if session.replay_from is not None:
            since = min(since, session.replay_from)
            session.replay_from = None
        conn.session_id = session.session_id
        session.conn = conn
        for seq, event, payload in list(session.events):
            if seq >= since and event not in ("READY", "GUILD_CREATE"):
                await self._send_event(session, conn, seq, event, payload)
        await self._emit(session, "RESUMED", {})
        session.resumed.set()

    # -- REST ------------------------------------------------------------------------------

    async def _attachment(self, request: web.Request) -> web.Response:
        found = self.attachments.get(request.match_info["attachment"])
        if found is None:
            raise web.HTTPNotFound()
        self.calls.append(Call("GET", request.path, dict(request.query), None, time.monotonic()))
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    async def _body(self, request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            return json.loads(form.get("payload_json", "{}"))  # type: ignore[arg-type]
        return await request.json()

    def _bucket(self, method: str, path: str) -> str | None:
        match = re.match(r"/channels/(\d+)/messages", path)
        if match and method in ("POST", "PATCH", "DELETE"):
            return f"messages:{match.group(1)}"
        match = re.match(r"/webhooks/\d+/([^/]+)", path)
        if match:
            return f"webhook:{match.group(1)}"
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await self._body(request)
        call = Call(request.method, path, dict(request.query), body, time.monotonic())
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        webhook = path.startswith(("/webhooks/", "/interactions/"))
        if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        headers: dict[str, str] = {}
        bucket = self._bucket(request.method, path)
        if bucket is not None:
            now = time.monotonic()
            recent = [t for t in self._buckets.get(bucket, []) if now - t < self.bucket_window_s]
            if len(recent) >= self.bucket_limit:
                self.rate_limited.append(call)
                retry = self.bucket_window_s - (now - recent[0])
                return _json(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": retry,
                        "global": False,
                    },
                    status=429,
                    headers={"Retry-After": f"{retry:.3f}", "X-RateLimit-Scope": "user"},
                )
            recent.append(now)
            self._buckets[bucket] = recent
            reset_after = self.bucket_window_s - (now - recent[0])
            headers = {
                "X-RateLimit-Limit": str(self.bucket_limit),
                "X-RateLimit-Remaining": str(self.bucket_limit - len(recent)),
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Bucket": bucket,
            }
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                result = await handler(request, body, *match.groups())
                if isinstance(result, web.StreamResponse):
                    return result
                if result is None:
                    return web.Response(status=204, headers=headers)
                return _json(result, headers=headers)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/gateway", self._get_gateway),
            ("GET", r"/gateway/bot", self._gateway_bot),
            ("GET", r"/users/@me", self._me),
            ("POST", r"/users/@me/channels", self._create_dm),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._sync_commands),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("POST", r"/channels/(\d+)/messages", self._create_message),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._create_thread),
            ("POST", r"/channels/(\d+)/typing", self._typing),
            ("GET", r"/guilds/(\d+)", self._get_guild),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._get_member),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._edit_webhook),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._delete_webhook),
        ]

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return _json({"message": message, "code": code}, status=status)

    def _too_long(self, body: dict | None) -> web.Response | None:
        content = (body or {}).get("content") or ""
        if len(content) > MESSAGE_LIMIT:
            return _json(
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "content": {
                            "_errors": [
                                {
                                    "code": "BASE_TYPE_MAX_LENGTH",
                                    "message": "Must be 2000 or fewer in length.",
                                }
                            ]
                        }
                    },
                },
                status=400,
            )
        return None

    async def _get_gateway(self, request, body) -> dict:
        return {"url": self.gateway_url}

    async def _gateway_bot(self, request, body) -> dict:
        """GET /gateway/bot: where to connect, the recommended shards, identify limits."""
        return {
            "url": self.gateway_url,
            "shards": self.shard_count,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - len(self.sessions),
                "reset_after": 86_400_000,
                "max_concurrency": self.max_concurrency,
            },
        }

    async def _me(self, request, body) -> dict:
        return {**self.bot, "verified": True, "mfa_enabled": False, "email": None}

    async def _application(self, request, body) -> dict:
        return {
            "id": self.app_id,
            "name": "Librarian",
            "icon": None,
            "description": "",
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": self.owner,
            "verify_key": "0" * 64,
            "flags": 1 << 19,
            "summary": "",
            "team": None,
        }

    async def _sync_commands(self, request, body, app_id, guild_id) -> list[dict]:
        synced = []
        for command in body:
            synced.append(
                {
                    **command,
                    "id": self.snowflake(),
                    "application_id": app_id,
                    "guild_id": guild_id,
                    "version": self.snowflake(),
                    "default_member_permissions": command.get("default_member_permissions"),
                }
            )
        self.commands[guild_id] = synced
        return synced

    async def _get_commands(self, request, body, app_id, guild_id) -> list[dict]:
        return self.commands.get(guild_id, [])

    async def _get_channel(self, request, body, channel_id) -> dict:
        return self._channel_of(channel_id)

    async def _create_dm(self, request, body):
        """POST /users/@me/channels: the bot's DM channel with a user (type 1, no guild)."""
        user = self._user_by_id(str(body["recipient_id"]))
        cid = self.dm_channels.get(user["id"])
        if cid is None:
            cid = self.dm_channels[user["id"]] = self.snowflake()
            self.channels[cid] = {
                "id": cid,
                "type": 1,
                "last_message_id": None,
                "recipients": [user],
                "flags": 0,
            }
        return self.channels[cid]

    def dm_messages(self, user: str) -> list[dict]:
        """What the bot sent ``user`` (a name in ``users``) by direct message."""
        cid = self.dm_channels.get(self.users[user]["id"])
        return self.bot_messages(cid) if cid else []

    async def _create_message(self, request, body, channel_id):
        channel = self._channel_of(channel_id)
        if channel["type"] == 1:
            if channel["recipients"][0]["id"] in self.closed_dms:
                return self._error(403, 50007, "Cannot send messages to this user")
            if (error := self._too_long(body)) is not None:
                return error
            message = self._message(channel_id, self.bot, body.get("content") or "")
            del message["guild_id"], message["member"]
            # A DM's MESSAGE_CREATE needs the Direct Messages intent, which the bot does
            # not ask for: nothing is dispatched.
            return message
        if (error := self._too_long(body)) is not None:
            return error
        reference = (body.get("message_reference") or {}).get("message_id")
        reference = str(reference) if reference is not None else None
        message = self._message(
            channel_id, self.bot, body.get("content") or "", reference=reference
        )
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def _get_message(self, request, body, channel_id, message_id):
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return self._error(404, 10008, "Unknown Message")
        return message

    async def _edit_message(self, request, body, channel_id, message_id):
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return self._error(404, 10008, "Unknown Message")
        if message["author"]["id"] != self.bot["id"]:
            return self._error(403, 50005, "Cannot edit a message authored by another user")
        if (error := self._too_long(body)) is not None:
            return error
        if "content" in body:
            message["content"] = body["content"]
        message["edited_timestamp"] = self._now()
        return message

    async def _delete_message(self, request, body, channel_id, message_id):
        message = self.messages.pop(message_id, None)
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        await self.dispatch(
            "MESSAGE_DELETE",
            {"id": message_id, "channel_id": channel_id, "guild_id": message.get("guild_id")},
        )
        return None

    async def _create_thread(self, request, body, channel_id, message_id):
        parent = self._channel_of(channel_id)
        if message_id not in self.messages:
            return self._error(404, 10008, "Unknown Message")
        if message_id in self.channels:
            return self._error(400, 160004, "A thread has already been created for this message")
        thread = {
            "id": message_id,  # a thread started from a message has the message's id
            "type": 11,
            "guild_id": parent["guild_id"],
            "parent_id": parent["id"],
            "owner_id": self.bot["id"],
            "name": body["name"],
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": self._now(),
                "locked": False,
                "create_timestamp": self._now(),
            },
            "member": {
                "id": message_id,
                "user_id": self.bot["id"],
                "join_timestamp": self._now(),
                "flags": 0,
            },
        }
        self.channels[message_id] = thread
        self.messages[message_id]["thread"] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    async def _typing(self, request, body, channel_id):
        self._channel_of(channel_id)
        return None

    async def _get_guild(self, request, body, guild_id):
        """GET /guilds/{id}: the guild with its roles, without channels or members."""
        if guild_id not in self.guilds:
            return self._error(404, 10004, "Unknown Guild")
        payload = self.guild_payload(guild_id)
        for gateway_only in GUILD_CREATE_ONLY:
            payload.pop(gateway_only, None)
        return payload

    async def _get_member(self, request, body, guild_id, user_id):
        user = next((u for u in self.users.values() if u["id"] == user_id), None)
        if user is None:
            return self._error(404, 10007, "Unknown Member")
        if guild_id not in self.guilds:
            return self._error(404, 10004, "Unknown Guild")
        return self.member(user, guild_id=guild_id)

    async def _callback(self, request, body, interaction_id, token):
        interaction = self.interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            return self._error(404, 10062, "Unknown interaction")
        if interaction.callback is not None:
            return self._error(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - interaction.dispatched_at > 3.0:
            return self._error(404, 10062, "Unknown interaction")
        interaction.callback = body
        interaction.callback_at = time.monotonic()
        flags = (body.get("data") or {}).get("flags", 0)
        original = self._message(
            interaction.channel_id,
            self.bot,
            "",
            flags=flags | 128,  # LOADING
            webhook_id=self.app_id,
            interaction_user=self._user_by_id(interaction.user_id),
        )
        interaction.original_id = original["id"]
        return {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_id": original["id"],
                "response_message_loading": True,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": body["type"]},
        }

    def _user_by_id(self, user_id: str) -> dict:
        return next(u for u in self.users.values() if u["id"] == user_id)

    def _interaction_by_token(self, token: str) -> _Interaction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _followup(self, request, body, app_id, token):
        interaction = self._interaction_by_token(token)
        if interaction is None or app_id != self.app_id:
            return self._error(404, 10015, "Unknown Webhook")
        if (error := self._too_long(body)) is not None:
            return error
        if interaction.original_id is not None and not interaction.original_used:
            # The first follow-up replaces the "thinking" message and keeps its visibility.
            interaction.original_used = True
            message = self.messages[interaction.original_id]
            message["content"] = body.get("content") or ""
            message["flags"] = message["flags"] & ~128
        else:
            message = self._message(
                interaction.channel_id,
                self.bot,
                body.get("content") or "",
                flags=body.get("flags", 0) & EPHEMERAL,
                webhook_id=self.app_id,
                interaction_user=self._user_by_id(interaction.user_id),
            )
        interaction.followups.append(message["id"])
        return message

    async def _edit_webhook(self, request, body, app_id, token, message_id):
        interaction = self._interaction_by_token(token)
        if interaction is None:
            return self._error(404, 10015, "Unknown Webhook")
        if message_id == "@original":
            message_id = interaction.original_id or ""
            interaction.original_used = True
        message = self.messages.get(message_id)
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        if (error := self._too_long(body)) is not None:
            return error
        if "content" in body:
            message["content"] = body["content"]
        message["flags"] = message["flags"] & ~128
        message["edited_timestamp"] = self._now()
        return message

    async def _delete_webhook(self, request, body, app_id, token, message_id):
        interaction = self._interaction_by_token(token)
        if interaction is None:
            return self._error(404, 10015, "Unknown Webhook")
        if message_id == "@original":
            message_id = interaction.original_id or ""
            interaction.original_used = True
        if self.messages.pop(message_id, None) is None:
            return self._error(404, 10008, "Unknown Message")
        return None

    # -- for assertions ---------------------------------------------------------------------

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    def bot_messages(self, channel_id: str) -> list[dict]:
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == channel_id and m["author"]["id"] == self.bot["id"]
        ]

    async def wait_for(self, predicate, timeout: float = 60.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after each REST call, and every 0.1 s)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the bot")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(0.1, remaining))


def point_discord_py_at(emu: DiscordEmulator, monkeypatch: Any) -> None:
    """Send discord.py's REST calls and gateway connection to ``emu`` for this test
    (its base URL and default gateway are module constants)."""
    import discord
    import yarl

    monkeypatch.setattr(discord.http.Route, "BASE", emu.api_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(emu.gateway_url)
    )
