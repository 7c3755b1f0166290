"""A local Slack that speaks the wire protocol the real slack-bolt / slack_sdk clients use.

On 127.0.0.1 it serves:

* the Web API methods the bot calls, under ``<url>/api/`` (the clients' ``base_url``),
  recording every call (method, arguments, HTTP status) in ``calls``;
* Socket Mode: ``apps.connections.open`` hands out ``ws://…/socket``, where the
  emulator says ``hello``, sends envelopes and waits for their ``envelope_id`` acks;
* file downloads (``url_private_download``), only with the bot token; without it,
  Slack's HTML sign-in page (as the real one does);

and it plays Slack towards an Events API endpoint: signed (HMAC-SHA256, ``v0``)
event callbacks and slash commands, with ``X-Slack-Retry-Num`` on redeliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TEAM = "T0EMU"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
BOT_TOKEN = "xoxb-emulated-bot-token"
APP_TOKEN = "xapp-emulated-app-token"
SIGNING_SECRET = "emulated-signing-secret"

# The bot scope each Web API method needs (conversations.info: channels:read for a
# public channel, groups:read for a private one).
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "users.info": "users:read",
    "files.info": "files:read",
    "files.list": "files:read",
    "conversations.info": "channels:read",
}

LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Slack</title></head>"
    b"<body>Sign in to your workspace</body></html>"
)


@dataclass
class Call:
    """One Web API request the bot made."""

    method: str
    args: dict[str, Any]
    status: int
    at: float
    token: str | None


@dataclass
class StoredFile:
    id: str
    name: str
    data: bytes
    mimetype: str
    user: str
    channel: str
    ts: str
    created: int
    serve_login_page: bool = False
    # Further shares of the same file: channel -> ts of the message sharing it there.
    more_shares: dict[str, str] = field(default_factory=dict)
    # The next this many downloads answer 503 (Slack's file server having a bad moment).
    download_failures: int = 0


@dataclass
class Failure:
    status: int
    retry_after: int | None = None
    body: dict[str, Any] = field(default_factory=dict)


class SlackEmulator:
    """Start with ``await emulator.start()``; ``api_url`` is the bot's Web API root."""

    def __init__(self, signing_secret: str = SIGNING_SECRET) -> None:
        self.signing_secret = signing_secret
        self.calls: list[Call] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.files: dict[str, StoredFile] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.failures: dict[str, list[Failure]] = {}
        # The bot token's scopes (None: every scope); a method needing another one fails
        # with missing_scope, as on Slack.
        self.scopes: set[str] | None = None
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{key}/{name}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # -- the workspace's contents -----------------------------------------------------------

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def add_user(self, user_id: str, name: str, *, admin: bool = False, owner: bool = False):
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM,
            "name": name,
            "real_name": name.title(),
            "is_admin": admin,
            "is_owner": owner,
            "is_primary_owner": False,
            "is_bot": False,
        }

    def add_channel(self, channel_id: str, name: str, *, private: bool = False) -> None:
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "is_channel": not private,
            "is_group": private,
            "is_private": private,
        }

    def share_file(
        self,
        channel: str,
        user: str,
        name: str,
        data: bytes,
        mimetype: str = "application/pdf",
        *,
        serve_login_page: bool = False,
    ) -> StoredFile:
        """A user uploads a file into a channel (the message that shares it gets a ts)."""
        file_id = f"F{next(self._ids):08d}"
        stored = StoredFile(
            file_id,
            name,
            data,
            mimetype,
            user,
            channel,
            self.next_ts(),
            int(time.time()),
            serve_login_page,
        )
        self.files[file_id] = stored
        return stored

    def share_again(self, stored: StoredFile, channel: str) -> str:
        """The file is shared in another channel too (one file id, two sharing messages)."""
        ts = self.next_ts()
        stored.more_shares[channel] = ts
        return ts

    def file_object(self, stored: StoredFile) -> dict[str, Any]:
        """A files.info ``file`` object."""
        download = f"{self.url}/files-pri/{TEAM}-{stored.id}/{urllib.parse.quote(stored.name)}"
        return {
            "id": stored.id,
            "created": stored.created,
            "timestamp": stored.created,
            "name": stored.name,
            "title": stored.name,
            "mimetype": stored.mimetype,
            "filetype": stored.name.rsplit(".", 1)[-1],
            "user": stored.user,
            "size": len(stored.data),
            "url_private": download,
            "url_private_download": download + "?download=1",
            "permalink": f"https://emulated.slack.com/files/{stored.user}/{stored.id}/{stored.name}",
            **self._sharing(stored),
        }

    def _sharing(self, stored: StoredFile) -> dict[str, Any]:
        """Where files.info says a file is shared: a private channel is a "group"."""
        if self.channels.get(stored.channel, {}).get("is_private"):
            share = {stored.channel: [{"ts": stored.ts, "channel_name": "x"}]}
            return {
                "channels": [],
                "groups": [stored.channel],
                "is_public": False,
                "shares": {"private": share},
            }
        shares = {stored.channel: stored.ts, **stored.more_shares}
        return {
            "channels": list(shares),
            "is_public": True,
            "shares": {
                "public": {c: [{"ts": ts, "channel_name": "x"}] for c, ts in shares.items()}
            },
        }

    def file_message(self, stored: StoredFile, channel: str | None = None) -> dict[str, Any]:
        """The message event that shares a file (in ``channel``: a further share of it)."""
        channel = channel or stored.channel
        ts = stored.ts if channel == stored.channel else stored.more_shares[channel]
        return {
            "type": "message",
            "subtype": "file_share",
            "channel": channel,
            "user": stored.user,
            "text": "",
            "ts": ts,
            "event_ts": ts,
            "channel_type": "channel",
            "files": [{k: v for k, v in self.file_object(stored).items() if k not in ("shares",)}],
        }

    def fail_next(self, method: str, status: int, *, retry_after: int | None = None) -> None:
        """The next call of ``method`` fails with this HTTP status (429: rate limited)."""
        body = {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}
        self.failures.setdefault(method, []).append(Failure(status, retry_after, body))

    # -- what the bot did -------------------------------------------------------------------

    def calls_of(self, method: str, *, ok_only: bool = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot posted (their latest text), in order."""
        out = [m for m in self.messages.values() if m.get("bot")]
        return [m for m in out if channel is None or m["channel"] == channel]

    async def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.05) -> Any:
        """Poll until ``predicate()`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(interval)

    # -- the Web API ------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :]
        failures = self.failures.get(method)
        if failures:
            failure = failures.pop(0)
            self.calls.append(Call(method, args, failure.status, time.monotonic(), token))
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return web.json_response(failure.body, status=failure.status, headers=headers)
        self.calls.append(Call(method, args, 200, time.monotonic(), token))
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        needed = METHOD_SCOPES.get(method)
        if self.scopes is not None and needed and needed not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(args)
        return web.json_response({"ok": True, **result} if "error" not in result else result)

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://emulated.slack.com/",
            "team": "Emulated",
            "user": "librarian",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={uuid.uuid4()}"}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        ts = self.next_ts()
        message = {
            "channel": channel,
            "ts": ts,
            "text": args.get("text", ""),
            "thread_ts": args.get("thread_ts"),
            "user": BOT_USER,
            "bot": True,
            "edits": [],
        }
        self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": {"text": message["text"], "ts": ts}}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (args.get("channel"), args.get("ts"))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message["edits"].append(args.get("text", ""))
        message["text"] = args.get("text", "")
        return {"channel": key[0], "ts": key[1], "text": message["text"]}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"message_ts": self.next_ts()}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), str(args.get("message_ts", ""))
        return {
            "channel": channel,
            "permalink": f"https://emulated.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(args.get("user", ""))
        return {"user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(args.get("channel", ""))
        return {"channel": channel} if channel else {"ok": False, "error": "channel_not_found"}

    def _m_files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(args.get("file", ""))
        if stored is None:
            return {"ok": False, "error": "file_not_found"}
        return {"file": self.file_object(stored)}

    def _m_files_list(self, args: dict[str, Any]) -> dict[str, Any]:
        found = [
            f
            for f in self.files.values()
            if (not args.get("channel") or f.channel == args["channel"])
            and (not args.get("user") or f.user == args["user"])
        ]
        found.sort(key=lambda f: (f.created, f.ts), reverse=True)
        count = int(args.get("count") or 100)
        return {"files": [self.file_object(f) for f in found[:count]]}

    # -- downloads --------------------------------------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["key"].split("-", 1)[-1]
        stored = self.files.get(file_id)
        self.calls.append(Call("download", {"file": file_id}, 200, time.monotonic(), None))
        authorized = request.headers.get("Authorization") == f"Bearer {BOT_TOKEN}"
        if stored is None:
            return web.Response(status=404, text="not found")
        if stored.download_failures > 0:
            stored.download_failures -= 1
            self.calls[-1].status = 503
            return web.Response(status=503, text="service unavailable")
        if (
            not authorized
            or stored.serve_login_page
            or "files:read" not in (self.scopes if self.scopes is not None else {"files:read"})
        ):
            return web.Response(body=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=stored.data, content_type=stored.mimetype)

    # -- Socket Mode ------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "emulator"},
                    "connection_info": {"app_id": "AEMU"},
                }
            )
        )
        self._connected.set()
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                envelope_id = data.get("envelope_id")
                if envelope_id:
                    self.acks[envelope_id] = data
                    waiter = self._ack_waiters.pop(envelope_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(data)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._connected.clear()
        return ws

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def socket_send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 3.0,
    ) -> tuple[dict[str, Any], float]:
        """Send one envelope; return its ack and how long the ack took (seconds)."""
        await self.wait_connected()
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[envelope_id] = waiter
        started = time.monotonic()
        await self._sockets[-1].send_str(json.dumps(envelope))
        ack = await asyncio.wait_for(waiter, timeout)
        return ack, time.monotonic() - started

    # -- payloads ---------------------------------------------------------------------------

    def event_callback(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": "AEMU",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": TEAM,
                    "user_id": BOT_USER,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }

    def mention(self, channel: str, user: str, question: str, **extra: Any) -> dict[str, Any]:
        ts = self.next_ts()
        return {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER}> {question}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            **extra,
        }

    def reaction(
        self, channel: str, user: str, ts: str, name: str, *, item_user: str | None = None
    ) -> dict[str, Any]:
        """A ``reaction_added`` event: ``user`` reacts with ``name`` to the message ``ts``.

        As Slack sends it: the emoji's short name (``+1``, with ``::skin-tone-N`` for a
        skin tone), the reacted message as ``item`` (no thread), and ``item_user``, the
        message's author (the bot's, for a message the bot posted).  Slack no longer
        sends reaction events for files and file comments.
        """
        posted = self.messages.get((channel, ts))
        event: dict[str, Any] = {
            "type": "reaction_added",
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": channel, "ts": ts, "channel_type": "channel"},
            "event_ts": self.next_ts(),
        }
        author = item_user or (posted["user"] if posted else None)
        if author:  # absent for messages no user wrote (incoming webhooks)
            event["item_user"] = author
        return event

    def slash_command(self, channel: str, user: str, text: str) -> dict[str, str]:
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "emulated",
            "channel_id": channel,
            "channel_name": self.channels.get(channel, {}).get("name", "privategroup"),
            "user_id": user,
            "user_name": self.users.get(user, {}).get("name", user),
            "command": "/librarian",
            "text": text,
            "api_app_id": "AEMU",
            "response_url": f"{self.url}/commands/{uuid.uuid4().hex}",
            "trigger_id": f"{next(self._ids)}.{uuid.uuid4().hex[:12]}",
        }

    # -- the Events API, towards the bot ----------------------------------------------------

    def sign(self, body: str, timestamp: int) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return f"v0={digest}"

    async def post(
        self,
        url: str,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str, float]:
        """POST a signed request as Slack does; return status, body and seconds taken."""
        assert self._session is not None
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature or self.sign(body, ts),
        }
        if retry_num:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        started = time.monotonic()
        async with self._session.post(url, data=body.encode(), headers=headers) as response:
            text = await response.text()
            return response.status, text, time.monotonic() - started

    async def post_event(self, url: str, callback: dict[str, Any], **kw: Any):
        return await self.post(url, json.dumps(callback), "application/json", **kw)

    async def post_command(self, url: str, command: dict[str, str], **kw: Any):
        body = urllib.parse.urlencode(command)
        return await self.post(url, body, "application/x-www-form-urlencoded", **kw)
