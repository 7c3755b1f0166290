"""The Matrix adapter: matrix-nio's AsyncClient, a sync loop, and the adapter protocol.

How it keeps its place: after every sync whose events have all been handled by the
dispatcher, the sync token (``next_batch``) is stored in Postgres (``settings``), and
the dispatcher records every event id it handles (``processed_events``).  A restart
resumes from the stored token: events handled before are skipped by the dispatcher,
events that arrived while the bot was down are answered.  On the very first start
(no token) one initial sync gives the position and its history is not answered.

Events of one room are started in timeline order; a file waits for the files before
it to be indexed, and a question waits for the files shared before it.  Rooms run
side by side.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
from collections.abc import Iterable
from typing import Any, Protocol

import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    ProfileGetDisplayNameResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from adapters.base import Tasks, deliver, read_capped
from adapters.matrix import translate as tr
from bot.adapter import Adapter, EventSink
from bot.errors import LibrarianError
from bot.events import (
    ConversationRef,
    Event,
    FileRef,
    FileShared,
    MessageReceived,
    OutboundMessage,
    ReactionAdded,
    UserRef,
)

log = logging.getLogger(__name__)

ENCRYPTION_NOTICE = (
    "This room is end-to-end encrypted, and I cannot read encrypted messages: I will not "
    "see questions or files here. Ask me in an unencrypted room instead."
)
MAX_BACKFILL_EVENTS = 1000
TYPING_TIMEOUT_MS = 30_000


class MatrixError(LibrarianError):
    """The homeserver refused something the bot cannot do without."""


class KeyValueStore(Protocol):
    """Where the adapter keeps its place (bot.store.repo.Store implements it)."""

    def get_setting(self, key: str) -> Any: ...

    def set_setting(self, key: str, value: Any) -> None: ...


@dataclasses.dataclass
class _Batch:
    """One sync's events being handled, and the token to store once they all are."""

    token: str
    tasks: list[asyncio.Task]


class MatrixAdapter(Adapter):
    """A Matrix account that answers in rooms it is invited to."""

    platform = tr.PLATFORM
    # Every message in a room is seen by all its members: `ask` says so instead of
    # answering what was meant to be private for everyone.
    private_replies = False

    def __init__(
        self,
        *,
        homeserver: str,
        user_id: str,
        state: KeyValueStore,
        access_token: str | None = None,
        password: str | None = None,
        admin_power_level: int = 50,
        autojoin: Iterable[str] = (),
        max_file_mb: float | None = None,
        device_name: str = "Librarian",
        sync_timeout_ms: int = 30_000,
        timeline_limit: int = 50,
        stop_grace_s: float = 10.0,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not (access_token or password):
            raise MatrixError("Matrix: set LIBRARIAN_MATRIX_ACCESS_TOKEN or ..._PASSWORD")
        self.homeserver = homeserver.rstrip("/")
        self.user_id = user_id
        self.state = state
        self.access_token = access_token
        self.password = password
        self.admin_power_level = admin_power_level
        self.autojoin = tuple(autojoin)
        self.max_file_mb = max_file_mb
        self.device_name = device_name
        self.sync_timeout_ms = sync_timeout_ms
        self.timeline_limit = timeline_limit
        self.stop_grace_s = stop_grace_s
        self.http_transport = http_transport
        self.client = AsyncClient(
            self.homeserver,
            user_id,
            config=AsyncClientConfig(
                encryption_enabled=False,
                store_sync_tokens=False,
                max_limit_exceeded=None,  # M_LIMIT_EXCEEDED: wait retry_after_ms, retry
                max_timeouts=None,  # a lost connection: retry with backoff, forever
                backoff_factor=0.5,
                max_timeout_retry_wait_time=30,
                request_timeout=60,
            ),
        )
        # nio waits out M_LIMIT_EXCEEDED itself and tells its response callbacks: counted here.
        self.rate_limited = 0
        self.client.add_response_callback(self._on_error_response, ErrorResponse)
        self.bot = tr.BotIdentity(user_id)
        self._sink: EventSink | None = None
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._started = False
        self._sync_task: asyncio.Task | None = None
        self._committer: asyncio.Task | None = None
        self._typist: asyncio.Task | None = None
        self._batches: collections.deque[_Batch] = collections.deque()
        self._batch_added = asyncio.Event()
        self._inflight = Tasks("matrix")  # event handling and invites under way
        self._barriers: dict[str, asyncio.Task] = {}  # room -> last file being indexed
        self._typing: collections.Counter[str] = collections.Counter()
        self._roots: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._creators: dict[str, frozenset[str]] = {}
        self._told_encrypted: set[str] = set()
        self._joining: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Any, state: KeyValueStore) -> MatrixAdapter:
        """The adapter configured by LIBRARIAN_MATRIX_* settings."""
        token = settings.matrix_access_token
        password = settings.matrix_password
        return cls(
            homeserver=settings.matrix_homeserver,
            user_id=settings.matrix_user_id,
            state=state,
            access_token=token.get_secret_value() if token else None,
            password=password.get_secret_value() if password else None,
            admin_power_level=settings.matrix_admin_power_level,
            autojoin=settings.matrix_autojoin,
            max_file_mb=settings.max_file_mb,
        )

    # -- state keys ---------------------------------------------------------------------------

    @property
    def _token_key(self) -> str:
        return f"matrix:{self.user_id}:next_batch"

    @property
    def _device_key(self) -> str:
        return f"matrix:{self.user_id}:device_id"

    def _told_key(self, room_id: str) -> str:
        return f"matrix:{self.user_id}:encryption_notice:{room_id}"

    async def _get(self, key: str) -> Any:
        return await asyncio.to_thread(self.state.get_setting, key)

    async def _set(self, key: str, value: Any) -> None:
        await asyncio.to_thread(self.state.set_setting, key, value)

    # -- the adapter protocol -------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Log in, then sync until ``stop``: every new event goes to ``sink``.

        May be called again after it raised (the supervisor restarts a failed adapter):
        the previous run's shutdown left the stop flags set and the client closed
        (matrix-nio opens a new HTTP session on the next request).
        """
        self._sink = sink
        self._started = True
        self._stopping.clear()
        self._closed.clear()
        try:
            await self._log_in()
            self._committer = asyncio.create_task(self._commit_loop(), name="matrix-commit")
            self._typist = asyncio.create_task(self._typing_loop(), name="matrix-typing")
            self._sync_task = asyncio.create_task(self._sync_loop(), name="matrix-sync")
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            if not self._stopping.is_set() and self._sync_task.cancelled():
                raise asyncio.CancelledError
        finally:
            await self._shut_down()

    async def stop(self) -> None:
        """Stop syncing, let events being handled finish (briefly), store the position."""
        self._stopping.set()
        if self._sync_task is not None:
            self._sync_task.cancel()
        if self._started:
            await self._closed.wait()
        else:
            await self.client.close()

    async def send(self, message: OutboundMessage) -> str:
        """Post a notice: in the conversation's thread, or as a reply; return its event id."""
        room_id = message.conversation.channel_id
        root = message.conversation.thread_id
        content = tr.message_content(message.text, thread_root=root, reply_to=message.reply_to)
        response = await self._ok(
            self.client.room_send(room_id, "m.room.message", content), RoomSendResponse
        )
        if root:
            self._remember_root(response.event_id, root)
        return response.event_id

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Replace a message's text with an ``m.replace`` edit."""
        await self._ok(
            self.client.room_send(
                conversation.channel_id, "m.room.message", tr.edit_content(message_id, text)
            ),
            RoomSendResponse,
        )

    async def fetch_file(self, ref: FileRef) -> bytes:
        """Download media: the authenticated endpoint first, the legacy one for old servers."""
        assert ref.url is not None
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        last = ""
        async with httpx.AsyncClient(
            transport=self.http_transport, timeout=60, follow_redirects=True
        ) as http:
            for url in tr.media_download_urls(self.homeserver, ref.url):
                for _ in range(5):
                    async with http.stream("GET", url, headers=headers) as response:
                        if response.status_code == 429:
                            await asyncio.sleep(_retry_after(await response.aread()))
                            continue
                        if response.status_code in (400, 404, 405):
                            last = f"{response.status_code} from {url.split('?')[0]}"
                            break  # an older server: try the legacy endpoint
                        response.raise_for_status()
                        return await read_capped(response.aiter_bytes(), self.max_file_mb, ref.name)
        raise MatrixError(f"could not download {ref.name} ({last or 'rate limited'})")

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """A room creator (room version 12 and later), or power level >= the configured one."""
        room_id = conversation.channel_id
        if user.user_id in await self._room_creators(room_id):
            return True
        response = await self.client.room_get_state_event(room_id, "m.room.power_levels")
        if not isinstance(response, RoomGetStateEventResponse):
            log.warning("no power levels for %s: %s", room_id, response)
            return False
        content = response.content or {}
        users = content.get("users") if isinstance(content.get("users"), dict) else {}
        try:
            level = int(users.get(user.user_id, content.get("users_default", 0)))
        except (TypeError, ValueError):
            return False
        return level >= self.admin_power_level

    async def working(
        self, conversation: ConversationRef, message_id: str | None, on: bool
    ) -> None:
        """Show a typing notice in the room while an answer is being written."""
        room_id = conversation.channel_id
        self._typing[room_id] += 1 if on else -1
        count = self._typing[room_id]
        if count <= 0:
            del self._typing[room_id]
        if (on and count == 1) or (not on and count <= 0):
            await self._type(room_id, on)

    # -- logging in -----------------------------------------------------------------------------

    async def _log_in(self) -> None:
        if self.access_token:
            self.client.access_token = self.access_token
            self.client.user_id = self.user_id
            who = await self.client.whoami()
            if not isinstance(who, WhoamiResponse):
                raise MatrixError(f"Matrix: the access token was refused ({_describe(who)})")
            if who.user_id != self.user_id:
                raise MatrixError(
                    f"Matrix: the access token belongs to {who.user_id}, "
                    f"not LIBRARIAN_MATRIX_USER_ID={self.user_id}"
                )
            self.client.device_id = who.device_id or ""
        else:
            device = await self._get(self._device_key)
            # matrix-nio's login() takes no device id: it sends the client's own, so the
            # device of the last login is reused (no new device, no lost sync filter).
            if device:
                self.client.device_id = device
            response = await self.client.login(self.password, device_name=self.device_name)
            if not isinstance(response, LoginResponse):
                raise MatrixError(f"Matrix: login as {self.user_id} failed ({_describe(response)})")
            if response.device_id != device:
                await self._set(self._device_key, response.device_id)
        name = await self.client.get_displayname(self.user_id)
        if isinstance(name, ProfileGetDisplayNameResponse) and name.displayname:
            self.bot = tr.BotIdentity(self.user_id, name.displayname)
        log.info("matrix: logged in as %s (%s)", self.user_id, self.bot.display_name)

    # -- syncing --------------------------------------------------------------------------------

    def _filter(self) -> dict[str, Any]:
        none = {"not_types": ["*"]}
        return {
            "presence": none,
            "account_data": none,
            "room": {
                "timeline": {"limit": self.timeline_limit},
                "state": {"lazy_load_members": True},
                "ephemeral": none,
                "account_data": none,
            },
        }

    async def _sync_loop(self) -> None:
        token = await self._get(self._token_key)
        if token is None:
            # First start: the position of now; the rooms' history is not answered.
            first = await self._sync(None, timeout_ms=0)
            await self._handle_sync(first, None, dispatch=False)
            await self._set(self._token_key, first.next_batch)
            token = first.next_batch
        while not self._stopping.is_set():
            response = await self._sync(token, timeout_ms=self.sync_timeout_ms)
            tasks = await self._handle_sync(response, token, dispatch=True)
            self._batches.append(_Batch(response.next_batch, tasks))
            self._batch_added.set()
            token = response.next_batch

    async def _sync(self, since: str | None, *, timeout_ms: int) -> SyncResponse:
        """One sync; waits out rate limits and outages (with backoff) until it succeeds."""
        delay = 1.0
        while True:
            try:
                response = await self.client.sync(
                    timeout=timeout_ms, since=since, sync_filter=self._filter()
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nio retries connection errors; anything else lands here
                log.warning("matrix sync failed (%s); retrying in %.0f s", exc, delay)
                response = None
            if isinstance(response, SyncResponse):
                return response
            if isinstance(response, ErrorResponse):
                if response.status_code in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN") and not (
                    response.soft_logout and self.password
                ):
                    raise MatrixError(f"Matrix: the homeserver refused to sync ({response})")
                if response.soft_logout and self.password:
                    await self._log_in()
                if response.retry_after_ms:
                    await asyncio.sleep(response.retry_after_ms / 1000)
                    continue
                log.warning("matrix sync error %s; retrying in %.0f s", response, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 60.0)

    async def _handle_sync(
        self, response: SyncResponse, since: str | None, *, dispatch: bool
    ) -> list[asyncio.Task]:
        """Join invited rooms and start handling each new event; return the started tasks."""
        for room_id, invite in response.rooms.invite.items():
            states = [_source(e) for e in invite.invite_state]
            if room_id not in self._joining:
                self._joining.add(room_id)
                self._inflight.spawn(
                    self._answer_invite(room_id, states), f"matrix-invite-{room_id}"
                )
        tasks: list[asyncio.Task] = []
        for room_id, info in response.rooms.join.items():
            events = [_source(e) for e in info.timeline.events]
            if dispatch and info.timeline.limited and info.timeline.prev_batch and since:
                events = await self._backfill(room_id, info.timeline.prev_batch, since) + events
            states = [_source(e) for e in info.state]
            if any(e.get("type") == "m.room.encryption" for e in states + events):
                await self._tell_encrypted(room_id)
            if not dispatch:
                continue
            # Events before the bot's own join (history it can see) are not for it.
            start = 0
            for index, event in enumerate(events):
                change = tr.membership_change(event)
                if change == (self.user_id, "join"):
                    start = index + 1
            for event in events[start:]:
                self._note_thread(event)
                if event.get("type") == "m.room.encrypted":
                    await self._tell_encrypted(room_id)
                    continue
                translated = await self._translate(room_id, event)
                if translated is not None:
                    tasks.append(self._schedule(room_id, translated))
        return tasks

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[dict]:
        """Events a limited timeline left out between the last sync and this one."""
        events: list[dict] = []
        start = prev_batch
        while len(events) < MAX_BACKFILL_EVENTS:
            response = await self.client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back, limit=100
            )
            if not isinstance(response, RoomMessagesResponse) or not response.chunk:
                break
            events.extend(_source(e) for e in response.chunk)
            if not response.end or response.end == start:
                break
            start = response.end
        log.info("matrix: fetched %d events a limited sync left out in %s", len(events), room_id)
        return list(reversed(events))

    async def _translate(self, room_id: str, event: dict[str, Any]) -> Event | None:
        room = self.client.rooms.get(room_id)
        sender = event.get("sender")
        translated = tr.translate(
            room_id,
            event,
            self.bot,
            room_name=room.display_name if room else None,
            sender_name=room.user_name(sender) if room and isinstance(sender, str) else None,
        )
        if translated is None or isinstance(translated, FileShared | ReactionAdded):
            return translated
        content = event.get("content") or {}
        target = None if tr.thread_root_of(content) else tr.reply_target_of(content)
        if target:  # a rich reply: answer in the thread of the message it replies to
            root = await self._thread_root(room_id, target)
            if root != target:
                translated = dataclasses.replace(
                    translated, conversation=translated.conversation.in_thread(root)
                )
        return translated

    def _schedule(self, room_id: str, event: Event) -> asyncio.Task:
        barrier = self._barriers.get(room_id)
        is_file = isinstance(event, FileShared) or (
            isinstance(event, MessageReceived) and bool(event.files)
        )

        async def run() -> None:
            if barrier is not None and not barrier.done():
                await asyncio.wait([barrier])
            await deliver(self._sink, event, "matrix")

        task = self._inflight.spawn(run(), f"matrix-event-{event.event_id}")
        if is_file:
            self._barriers[room_id] = task
        return task

    async def _commit_loop(self) -> None:
        """Store each sync's token once every event it brought has been handled."""
        while True:
            while not self._batches:
                self._batch_added.clear()
                await self._batch_added.wait()
            batch = self._batches[0]
            if batch.tasks:
                await asyncio.wait(batch.tasks)
            self._batches.popleft()
            await self._set(self._token_key, batch.token)

    async def _shut_down(self) -> None:
        self._stopping.set()
        try:
            await self._inflight.drain(timeout=self.stop_grace_s)
            await self._inflight.cancel()
            for task in (self._committer, self._typist):
                if task is not None and not task.done():
                    task.cancel()
            for task in (self._committer, self._typist):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            # The position after the last sync whose events were all handled.
            token = None
            while self._batches and all(
                t.done() and not t.cancelled() for t in self._batches[0].tasks
            ):
                token = self._batches.popleft().token
            if token is not None:
                await self._set(self._token_key, token)
            for room_id in list(self._typing):
                with contextlib.suppress(Exception):
                    await self._type(room_id, False)
            self._typing.clear()
        finally:
            await self.client.close()
            self._closed.set()

    # -- rooms ----------------------------------------------------------------------------------

    async def _answer_invite(self, room_id: str, invite_state: list[dict[str, Any]]) -> None:
        who = tr.inviter(invite_state, self.user_id)
        try:
            if not tr.may_invite(who, self.autojoin):
                log.info("matrix: declining the invitation of %s to %s", who, room_id)
                await self.client.room_leave(room_id)
                return
            for attempt in range(5):
                response = await self.client.join(room_id)
                if isinstance(response, JoinResponse):
                    log.info("matrix: joined %s (invited by %s)", room_id, who)
                    return
                log.warning("matrix: could not join %s: %s", room_id, response)
                await asyncio.sleep(2**attempt)
        finally:
            self._joining.discard(room_id)

    async def _tell_encrypted(self, room_id: str) -> None:
        """Say once per room that encrypted messages are beyond the bot."""
        if room_id in self._told_encrypted:
            return
        self._told_encrypted.add(room_id)
        if await self._get(self._told_key(room_id)):
            return
        try:
            await self._ok(
                self.client.room_send(
                    room_id, "m.room.message", tr.message_content(ENCRYPTION_NOTICE)
                ),
                RoomSendResponse,
            )
            await self._set(self._told_key(room_id), True)
        except Exception:
            log.exception("matrix: could not tell %s that it is encrypted", room_id)

    async def _room_creators(self, room_id: str) -> frozenset[str]:
        """Creators of a room of version 12 or later (they outrank every power level)."""
        if room_id in self._creators:
            return self._creators[room_id]
        creators: frozenset[str] = frozenset()
        response = await self.client.room_get_state(room_id)
        if isinstance(response, RoomGetStateResponse):
            for event in response.events:
                if event.get("type") == "m.room.create" and event.get("state_key") == "":
                    content = event.get("content") or {}
                    if _creators_have_power(str(content.get("room_version", "1"))):
                        extra = content.get("additional_creators") or []
                        creators = frozenset([event.get("sender", ""), *extra]) - {""}
            self._creators[room_id] = creators
        return creators

    def _note_thread(self, event: dict[str, Any]) -> None:
        root = tr.thread_root_of(event.get("content") or {})
        if root and isinstance(event.get("event_id"), str):
            self._remember_root(event["event_id"], root)

    def _remember_root(self, event_id: str, root: str) -> None:
        self._roots[event_id] = root
        while len(self._roots) > 10_000:
            self._roots.popitem(last=False)

    async def _thread_root(self, room_id: str, event_id: str) -> str:
        """The thread an event is in (its root), or the event itself if it is in none."""
        if event_id in self._roots:
            return self._roots[event_id]
        response = await self.client.room_get_event(room_id, event_id)
        root = event_id
        if isinstance(response, RoomGetEventResponse):
            rel = tr.relates_to(_source(response.event).get("content") or {})
            target = rel.get("event_id")
            if isinstance(target, str) and rel.get("rel_type") == "m.thread":
                root = target
            elif isinstance(target, str) and rel.get("rel_type") == "m.replace":
                root = await self._thread_root(room_id, target)  # an edit: its original's
        self._remember_root(event_id, root)
        return root

    # -- typing ---------------------------------------------------------------------------------

    async def _type(self, room_id: str, on: bool) -> None:
        try:
            await self.client.room_typing(room_id, typing_state=on, timeout=TYPING_TIMEOUT_MS)
        except Exception:
            log.debug("matrix: typing notice failed in %s", room_id, exc_info=True)

    async def _typing_loop(self) -> None:
        """Renew typing notices for answers that take longer than their timeout."""
        while True:
            await asyncio.sleep(TYPING_TIMEOUT_MS / 1000 * 0.8)
            for room_id in list(self._typing):
                await self._type(room_id, True)

    async def _on_error_response(self, response: ErrorResponse) -> None:
        if response.status_code == "M_LIMIT_EXCEEDED" or response.retry_after_ms:
            self.rate_limited += 1
            log.info("matrix: rate limited; retrying after %s ms", response.retry_after_ms)

    # -- responses ------------------------------------------------------------------------------

    async def _ok(self, call: Any, expected: type) -> Any:
        """Await a nio call; raise MatrixError for an error response.

        nio itself waits out M_LIMIT_EXCEEDED (``retry_after_ms``) and retries lost
        connections with backoff (see the client's config), so an error here is final.
        """
        response = await call
        if not isinstance(response, expected):
            raise MatrixError(f"Matrix: {_describe(response)}")
        return response


def _source(event: Any) -> dict[str, Any]:
    source = getattr(event, "source", event)
    return source if isinstance(source, dict) else {}


def _describe(response: Any) -> str:
    if isinstance(response, ErrorResponse):
        return f"{response.status_code}: {response.message}"
    return str(response)


def _retry_after(body: bytes) -> float:
    import json

    try:
        return max(0.1, float(json.loads(body).get("retry_after_ms", 1000)) / 1000)
    except (ValueError, TypeError, AttributeError):
        return 1.0


def _creators_have_power(room_version: str) -> bool:
    """Room versions 12+ (and the hydra test versions) give creators unlimited power."""
    if room_version.isdigit():
        return int(room_version) >= 12
    return "hydra" in room_version
