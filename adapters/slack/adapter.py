"""The Slack adapter on slack-bolt's AsyncApp: Socket Mode or the HTTP Events API.

Every event, command and interaction is acknowledged at once (``ack()`` first); the
work (Web API look-ups, then the core's dispatcher) runs afterwards in a task of its
own, whose reference is kept until it ends.  Redeliveries carry the envelope's
``event_id``, which the dispatcher records in Postgres, so a retried event is handled
once (bolt does not skip retries by itself).

File shares arrive twice (a ``message`` with files and a ``file_shared`` event), so a
shared file's dedup key is ``file:<channel>:<file id>:<share ts>``: whichever comes
first indexes it, and sharing the file again (a new message) is a new event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.base import AdapterStore, Tasks, deliver, read_capped
from adapters.slack import translate
from bot.adapter import Adapter, EventSink
from bot.errors import ConfigError
from bot.events import (
    CommandInvoked,
    ConversationRef,
    Event,
    FileRef,
    FileRemoved,
    FileShared,
    MessageReceived,
    OutboundMessage,
    UserRef,
)
from bot.ingest.filetypes import ExtractionRefused, RefusalCode

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
COMMAND = "/librarian"
WORKING_REACTION = "eyes"
FILE_GONE_ERRORS = frozenset({"file_not_found", "file_deleted"})
_EPHEMERAL = "ephemeral:"
#: The event types the app subscribes to (deploy/slack-app-manifest.yaml lists them as
#: bot events; ``message`` as message.channels and message.groups).  Each has a listener:
#: bolt answers an event without one with 404, which Slack would retry.
EVENT_TYPES = ("app_mention", "message", "file_shared", "file_deleted", "reaction_added")


class _SkipTokenWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when it is set and a client is given."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


class _NotYours(Exception):
    """A file named in `/librarian upload` that the caller may not index here."""


class SlackAdapter(Adapter):
    """The bot as a Slack app: events and ``/librarian`` in, Web API calls out."""

    platform = translate.PLATFORM

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        mode: str = "",
        api_url: str = "https://slack.com/api/",
        http_host: str = "0.0.0.0",
        http_port: int = 3000,
        store: AdapterStore | None = None,
        max_file_mb: float | None = None,
        reconcile_interval_s: float = 3600.0,
        rate_limit_retries: int = 5,
        connection_retries: int = 3,
        ephemeral_settle_s: float = 1.5,
        admin_cache_s: float = 300.0,
    ) -> None:
        self.mode = mode or ("socket" if app_token else "http")
        if self.mode == "socket" and not app_token:
            raise ValueError("Slack Socket Mode needs an app-level token (xapp-…)")
        if self.mode == "http" and not signing_secret:
            raise ValueError("the Slack Events API over HTTP needs the app's signing secret")
        self.bot_token = bot_token
        self.app_token = app_token
        self.http_host = http_host
        self.http_port = http_port
        self.store = store
        self.max_file_mb = max_file_mb
        self.reconcile_interval_s = reconcile_interval_s
        self.ephemeral_settle_s = ephemeral_settle_s
        self.admin_cache_s = admin_cache_s
        # Nothing is lost on a 429: the client waits Retry-After and sends again.
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url if api_url.endswith("/") else api_url + "/",
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                AsyncConnectionErrorRetryHandler(max_retry_count=connection_retries),
            ],
        )
        bolt_log = logging.getLogger("adapters.slack.bolt")
        if not any(isinstance(f, _SkipTokenWarning) for f in bolt_log.filters):
            bolt_log.addFilter(_SkipTokenWarning())
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret or "",
            process_before_response=False,
            logger=bolt_log,
        )
        listeners = {
            "app_mention": self._on_app_mention,
            "message": self._on_message_event,
            "file_shared": self._on_file_shared,
            "file_deleted": self._on_file_deleted,
            "reaction_added": self._on_reaction_added,
        }
        for event_type, listener in listeners.items():
            self.app.event(event_type)(listener)
        self.app.command(COMMAND)(self._on_command)

        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self._sink: EventSink | None = None
        self._tasks = Tasks(self.platform)
        self._stopping = asyncio.Event()
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._channel_names: dict[str, str | None] = {}
        self._admins: dict[str, tuple[float, bool]] = {}
        # Ephemeral messages cannot be edited: their last text is posted once it settles.
        self._ephemeral: dict[str, dict[str, Any]] = {}
        self.bound_port: int | None = None

    @classmethod
    def from_settings(cls, settings: Any, store: AdapterStore | None = None) -> SlackAdapter:
        """An adapter configured by ``LIBRARIAN_SLACK_*`` (or ``SLACK_*``) settings."""

        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            bot_token=secret(settings.slack_bot_token) or "",
            app_token=secret(settings.slack_app_token),
            signing_secret=secret(settings.slack_signing_secret),
            mode=settings.slack_mode,
            api_url=settings.slack_api_url,
            http_host=settings.slack_http_host,
            http_port=settings.slack_http_port,
            store=store,
            max_file_mb=settings.max_file_mb,
            reconcile_interval_s=settings.slack_reconcile_minutes * 60.0,
        )

    # -- the adapter protocol ---------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Connect (Socket Mode, or serve the Events API) and deliver events until stopped."""
        self._sink = sink
        self._stopping.clear()
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            raise ConfigError(
                f"Slack: auth.test failed ({exc.response.get('error')}): check SLACK_BOT_TOKEN"
            ) from None
        self.bot_user_id = auth.get("user_id")
        self.team_id = auth.get("team_id")
        log.info(
            "slack: connected as %s in team %s (%s mode)", auth.get("user"), self.team_id, self.mode
        )
        try:
            if self.mode == "socket":
                self._socket = AsyncSocketModeHandler(
                    self.app, self.app_token, web_client=self.client
                )
                await self._socket.connect_async()
            else:
                await self._serve_http()
            reconcile = asyncio.create_task(self._reconcile_forever(), name="slack-reconcile")
            try:
                await self._stopping.wait()
            finally:
                reconcile.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reconcile
        finally:
            await self._disconnect()

    async def stop(self) -> None:
        """Stop receiving, let work in progress finish (briefly), and disconnect."""
        self._stopping.set()
        await self._disconnect()
        await self.drain(timeout=10.0)
        await self._tasks.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, message: OutboundMessage) -> str:
        """chat.postMessage (in the thread), or chat.postEphemeral for a private message."""
        conv = message.conversation
        thread = conv.thread_id or message.reply_to
        if message.private_to is not None:
            response = await self.client.chat_postEphemeral(
                channel=conv.channel_id,
                user=message.private_to.user_id,
                text=translate.escape(message.text),
                thread_ts=thread,
            )
            message_id = f"{_EPHEMERAL}{response.get('message_ts') or time.time()}"
            self._forget_old_ephemerals()
            self._ephemeral[message_id] = {
                "at": time.monotonic(),
                "conversation": conv,
                "user": message.private_to.user_id,
                "thread": thread,
                "text": message.text,
                "posted": message.text,
                "task": None,
            }
            return message_id
        response = await self.client.chat_postMessage(
            channel=conv.channel_id,
            text=translate.escape(message.text),
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """chat.update; an ephemeral message is re-posted once its text stops changing."""
        if message_id.startswith(_EPHEMERAL):
            self._settle_ephemeral(message_id, text)
            return
        await self.client.chat_update(
            channel=conversation.channel_id, ts=message_id, text=translate.escape(text)
        )

    async def fetch_file(self, ref: FileRef) -> bytes:
        """Download url_private_download with the bot token, refusing sign-in pages."""
        if not ref.url:
            raise ExtractionRefused(
                RefusalCode.BROKEN, f"Slack gave no download link for {ref.name}."
            )
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self.bot_token}"}
        async with self._http.get(ref.url, headers=headers) as response:
            if response.status >= 500 or response.status == 429:
                # Slack's file server is struggling: an error to try again, not a refusal.
                raise ConnectionError(
                    f"Slack's file server answered HTTP {response.status} for {ref.name}"
                )
            if response.status != 200:
                raise ExtractionRefused(
                    RefusalCode.BROKEN,
                    f"Slack would not hand over {ref.name} (HTTP {response.status}).",
                )
            data = await read_capped(
                response.content.iter_chunked(1 << 16), self.max_file_mb, ref.name
            )
            content_type = (response.content_type or "").lower()
        expected_html = (ref.media_type or "").lower() == "text/html" or ref.name.lower().endswith(
            (".html", ".htm")
        )
        if not expected_html and (content_type == "text/html" or translate.looks_like_html(data)):
            raise ExtractionRefused(
                RefusalCode.BROKEN,
                f"Slack sent a web page instead of {ref.name}: the app cannot read that file "
                "(it needs the files:read scope and access to the channel).",
            )
        return bytes(data)

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """A workspace owner or admin (users.info), cached for a few minutes."""
        cached = self._admins.get(user.user_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.admin_cache_s:
            return cached[1]
        try:
            response = await self.client.users_info(user=user.user_id)
        except SlackApiError as exc:
            log.warning("slack: users.info %s failed: %s", user.user_id, exc.response.get("error"))
            return False
        info = response.get("user") or {}
        admin = bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
        self._admins[user.user_id] = (now, admin)
        return admin

    async def working(
        self, conversation: ConversationRef, message_id: str | None, on: bool
    ) -> None:
        """An :eyes: reaction on the question while the bot works on it."""
        if not message_id or message_id.startswith(_EPHEMERAL):
            return
        try:
            if on:
                await self.client.reactions_add(
                    channel=conversation.channel_id, timestamp=message_id, name=WORKING_REACTION
                )
            else:
                await self.client.reactions_remove(
                    channel=conversation.channel_id, timestamp=message_id, name=WORKING_REACTION
                )
        except SlackApiError as exc:  # already_reacted, no_reaction, missing scope: cosmetic
            log.debug("slack: reaction %s failed: %s", on, exc.response.get("error"))

    # -- bolt listeners: acknowledge first, work afterwards ---------------------------------

    async def _on_app_mention(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._handle_mention(body), "slack-mention")

    async def _on_message_event(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._handle_message(body), "slack-message")

    async def _on_file_shared(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._handle_file_shared(body), "slack-file-shared")

    async def _on_file_deleted(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._handle_file_deleted(body), "slack-file-deleted")

    async def _on_reaction_added(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        event = translate.reaction_added(body, self.bot_user_id)
        if event is not None:
            self._spawn(self._deliver(event), "slack-reaction")

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._handle_command(command), "slack-command")

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        self._tasks.spawn(work, name)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the work started by events received so far (tests, shutdown)."""
        await self._tasks.drain(timeout)

    # -- translation (after the ack) --------------------------------------------------------

    async def _deliver(self, event: Event) -> None:
        await deliver(self._sink, event, "slack")

    async def _handle_mention(self, body: dict[str, Any]) -> None:
        event = body["event"]
        channel = event["channel"]
        ts = event["ts"]
        conv = translate.conversation(
            translate.team_of(body),
            channel,
            event.get("thread_ts") or ts,  # answers go in the question's thread
            await self._channel_name(channel),
        )
        await self._deliver(
            MessageReceived(
                event_id=body["event_id"],
                conversation=conv,
                author=UserRef(self.platform, event.get("user") or ""),
                text=translate.strip_mentions_of(event.get("text") or "", self.bot_user_id),
                mentions_bot=True,
                message_id=ts,
            )
        )

    async def _handle_message(self, body: dict[str, Any]) -> None:
        event = body["event"]
        team = translate.team_of(body)
        channel = event.get("channel") or ""
        for file_id in translate.removed_file_ids(event):
            await self._deliver(
                FileRemoved(
                    event_id=f"{body['event_id']}:{file_id}",
                    conversation=translate.conversation(team, channel),
                    file_id=file_id,
                )
            )
        if event.get("subtype") not in (None, "file_share", "thread_broadcast"):
            return
        if event.get("bot_id") or event.get("user") == self.bot_user_id:
            return
        for shared in translate.files_of(event):
            await self._file_shared(
                team,
                channel,
                event.get("user") or "",
                shared["id"],
                event.get("ts"),
                event.get("thread_ts"),
            )

    async def _handle_file_shared(self, body: dict[str, Any]) -> None:
        event = body["event"]
        file_id = event.get("file_id") or (event.get("file") or {}).get("id")
        channel = event.get("channel_id") or ""
        if not file_id or not channel:
            return
        await self._file_shared(
            translate.team_of(body), channel, event.get("user_id") or "", file_id, None, None
        )

    async def _file_shared(
        self,
        team: str,
        channel: str,
        user: str,
        file_id: str,
        message_ts: str | None,
        thread_ts: str | None,
    ) -> None:
        try:
            ref = await self.file_ref(file_id, channel, message_ts)
        except SlackApiError as exc:
            log.warning("slack: files.info %s failed: %s", file_id, exc.response.get("error"))
            return
        conv = translate.conversation(team, channel, thread_ts, await self._channel_name(channel))
        await self._deliver(
            FileShared(
                # One key for both ways a share arrives (message event and file_shared);
                # another share of the file (another message) is another event.
                event_id=f"file:{channel}:{file_id}:{ref.message_id or ''}",
                conversation=conv,
                author=UserRef(self.platform, user),
                file=ref,
            )
        )

    async def _handle_file_deleted(self, body: dict[str, Any]) -> None:
        event = body["event"]
        file_id = event.get("file_id") or (event.get("file") or {}).get("id")
        if not file_id:
            return
        channels = event.get("channel_ids") or [""]
        await self._deliver(
            FileRemoved(
                event_id=body["event_id"],
                conversation=translate.conversation(translate.team_of(body), channels[0]),
                file_id=file_id,
                everywhere=True,  # the file itself is deleted, in every channel
            )
        )

    async def _handle_command(self, command: dict[str, Any]) -> None:
        channel = command.get("channel_id") or ""
        user = command.get("user_id") or ""
        text = command.get("text") or ""
        name = await self._channel_name(channel, fallback=command.get("channel_name"))
        conv = translate.conversation(command.get("team_id"), channel, None, name)
        author = UserRef(self.platform, user, command.get("user_name"))
        files: tuple[FileRef, ...] = ()
        verb, _, rest = text.strip().partition(" ")
        if verb.lower() == "upload":
            try:
                files = await self._upload_files(rest, channel, user)
            except _NotYours as refused:
                await self.send(OutboundMessage(conv, str(refused), private_to=author))
                return
        await self._deliver(
            CommandInvoked(
                # Slash commands have no event id; the trigger id is unique per invocation.
                event_id=f"command:{command.get('trigger_id') or time.time_ns()}",
                conversation=conv,
                author=author,
                text=text,
                files=files,
            )
        )

    async def _upload_files(self, rest: str, channel: str, user: str) -> tuple[FileRef, ...]:
        """`/librarian upload [link]`: the linked file, or the user's latest file here."""
        try:
            file_id = translate.file_id_in(rest) if rest.strip() else None
            if file_id is None and not rest.strip():
                listed = await self.client.files_list(channel=channel, user=user, count=1)
                found = listed.get("files") or []
                file_id = found[0]["id"] if found else None
            if file_id is None:
                return ()
            info = (await self.client.files_info(file=file_id))["file"]
            if not translate.may_take_file(info, channel, user):
                log.info("slack: %s may not upload %s in %s (not visible)", user, file_id, channel)
                raise _NotYours(
                    f"I can't index {file_id}: it is not shared in this channel, not yours, "
                    "and not in a public channel. Share it here first."
                )
            return (await self.file_ref(file_id, channel, None, info=info),)
        except SlackApiError as exc:
            log.info("slack: upload look-up failed: %s", exc.response.get("error"))
            return ()

    # -- Web API look-ups -------------------------------------------------------------------

    async def file_ref(
        self,
        file_id: str,
        channel: str,
        message_ts: str | None,
        *,
        info: dict[str, Any] | None = None,
    ) -> FileRef:
        """files.info (name, size, download link) and the sharing message's permalink."""
        if info is None:
            info = (await self.client.files_info(file=file_id))["file"]
        message_ts = message_ts or translate.share_ts(info, channel)
        permalink = None
        if message_ts and channel:
            try:
                response = await self.client.chat_getPermalink(
                    channel=channel, message_ts=message_ts
                )
                permalink = response.get("permalink")
            except SlackApiError as exc:
                log.debug("slack: chat.getPermalink failed: %s", exc.response.get("error"))
        return translate.file_ref(info, message_ts=message_ts, permalink=permalink)

    async def _channel_name(self, channel: str, *, fallback: str | None = None) -> str | None:
        if not channel:
            return None
        if channel not in self._channel_names:
            try:
                response = await self.client.conversations_info(channel=channel)
                info = response.get("channel") or {}
                name = None if info.get("is_im") else info.get("name")
            except SlackApiError as exc:
                log.debug("slack: conversations.info failed: %s", exc.response.get("error"))
                name = None
            if name is None and fallback not in (None, "", "privategroup", "directmessage"):
                name = fallback
            self._channel_names[channel] = name
        return self._channel_names[channel]

    # -- ephemeral answers ------------------------------------------------------------------

    def _forget_old_ephemerals(self, max_age_s: float = 600.0) -> None:
        """Most ephemeral messages are never edited: keep their state ten minutes at most."""
        now = time.monotonic()
        for message_id, state in list(self._ephemeral.items()):
            if now - state["at"] > max_age_s and state["task"] is None:
                del self._ephemeral[message_id]

    def _settle_ephemeral(self, message_id: str, text: str) -> None:
        state = self._ephemeral.get(message_id)
        if state is None:
            return
        state["text"] = text
        if state["task"] is not None:
            state["task"].cancel()
        state["task"] = self._tasks.spawn(self._post_settled(message_id), "slack-ephemeral")

    async def _post_settled(self, message_id: str) -> None:
        await asyncio.sleep(self.ephemeral_settle_s)
        state = self._ephemeral.pop(message_id, None)
        if state is None or state["text"] == state["posted"]:
            return
        conv: ConversationRef = state["conversation"]
        await self.client.chat_postEphemeral(
            channel=conv.channel_id,
            user=state["user"],
            text=translate.escape(state["text"]),
            thread_ts=state["thread"],
        )

    # -- deleted files ----------------------------------------------------------------------

    async def reconcile(self) -> list[str]:
        """Forget documents whose Slack file no longer exists (files.info: file_not_found)."""
        if self.store is None:
            return []
        file_ids = await asyncio.to_thread(self.store.source_file_ids, self.platform)
        run = time.strftime("%Y%m%dT%H%M%S")
        gone: list[str] = []
        for file_id in file_ids:
            try:
                await self.client.files_info(file=file_id)
            except SlackApiError as exc:
                error = exc.response.get("error")
                if error not in FILE_GONE_ERRORS:
                    log.warning("slack: reconcile: files.info %s failed: %s", file_id, error)
                    continue
                gone.append(file_id)
                await self._deliver(
                    FileRemoved(
                        event_id=f"reconcile:{run}:{file_id}",
                        conversation=translate.conversation(self.team_id, ""),
                        file_id=file_id,
                        everywhere=True,  # files.info says the file no longer exists
                    )
                )
        if gone:
            log.info("slack: reconcile forgot the documents of %d deleted files", len(gone))
        return gone

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval_s)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slack: reconciliation of deleted files failed")

    # -- connections ------------------------------------------------------------------------

    def routes(self) -> Iterable[web.RouteDef]:
        """The Events API endpoint, for mounting on a web server."""
        return [web.post(EVENTS_PATH, self._http_events)]

    async def _http_events(self, request: web.Request) -> web.Response:
        # Bolt verifies the signature and the timestamp (401 otherwise), then acks.
        bolt_request = await to_bolt_request(request)
        bolt_response = await self.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def _serve_http(self) -> None:
        application = web.Application()
        application.add_routes(list(self.routes()))
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.http_host, self.http_port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.http_port
        log.info(
            "slack: Events API at http://%s:%s%s", self.http_host, self.bound_port, EVENTS_PATH
        )

    async def _disconnect(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close_async()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
