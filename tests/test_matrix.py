"""The Matrix adapter end to end, against a real Synapse homeserver started by the tests.

Synapse lives in its own virtual environment (``make test`` creates ``.venv-synapse``);
``LIBRARIAN_SYNAPSE_PYTHON`` names another interpreter that has it.  People in the
rooms are matrix-nio clients; the bot runs in an App on real Postgres with real models.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import io
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import PAGES, make_pdf
from nio import (
    AsyncClient,
    JoinedMembersResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from adapters.matrix import MatrixAdapter
from adapters.matrix import translate as tr
from adapters.matrix.adapter import ENCRYPTION_NOTICE
from bot.app import App
from bot.cli.run import configured_adapters
from bot.config import load_settings
from bot.events import CommandInvoked, FileShared, MessageReceived, ReactionAdded

REPO = Path(__file__).resolve().parents[1]
SYNAPSE_PYTHON = Path(
    os.environ.get("LIBRARIAN_SYNAPSE_PYTHON", REPO / ".venv-synapse" / "bin" / "python")
)

pytestmark = pytest.mark.slow

# -- a real homeserver -----------------------------------------------------------------------

SYNAPSE_EXTRA_CONFIG = """
enable_registration: false
presence:
  enabled: false
trusted_key_servers: []
suppress_key_server_warning: true
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_joins_per_room: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
  per_issuer: {per_second: 1000, burst_count: 1000}
rc_room_creation: {per_second: 1000, burst_count: 1000}
rc_media_create: {per_second: 1000, burst_count: 1000}
rc_profile: {per_second: 1000, burst_count: 1000}
rc_admin_redaction: {per_second: 1000, burst_count: 1000}
"""


@dataclasses.dataclass
class Account:
    user_id: str
    access_token: str
    device_id: str
    password: str = ""


@dataclasses.dataclass
class Synapse:
    url: str
    shared_secret: str
    folder: Path
    admin: Account | None = None

    def register(self, name: str, *, admin: bool = False) -> Account:
        """A new account through the shared-secret admin registration API."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            nonce = http.get("/_synapse/admin/v1/register").json()["nonce"]
            password = secrets.token_hex(8)
            mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(b"\x00".join([nonce.encode(), name.encode(), password.encode()]))
            mac.update(b"\x00admin" if admin else b"\x00notadmin")
            response = http.post(
                "/_synapse/admin/v1/register",
                json={
                    "nonce": nonce,
                    "username": name,
                    "password": password,
                    "admin": admin,
                    "mac": mac.hexdigest(),
                },
            )
            response.raise_for_status()
            body = response.json()
        return Account(body["user_id"], body["access_token"], body["device_id"], password)

    def limit_messages(self, user_id: str, per_second: int, burst: int) -> None:
        """Give one account a low message rate limit (admin API), to meet M_LIMIT_EXCEEDED."""
        assert self.admin is not None
        response = httpx.post(
            f"{self.url}/_synapse/admin/v1/users/{user_id}/override_ratelimit",
            headers={"Authorization": f"Bearer {self.admin.access_token}"},
            json={"messages_per_second": per_second, "burst_count": burst},
            timeout=30,
        )
        response.raise_for_status()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """Synapse on 127.0.0.1 with SQLite, registration by shared secret, generous limits."""
    if not SYNAPSE_PYTHON.exists():
        pytest.skip(
            f"Synapse is not installed: {SYNAPSE_PYTHON} is missing (`make test` creates "
            ".venv-synapse; or set LIBRARIAN_SYNAPSE_PYTHON to a Python that has matrix-synapse)"
        )
    folder = tmp_path_factory.mktemp("synapse")
    config = folder / "homeserver.yaml"
    subprocess.run(
        [
            str(SYNAPSE_PYTHON),
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            "localhost",
            "--config-path",
            str(config),
            "--generate-config",
            "--report-stats=no",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    secret = secrets.token_hex(16)
    text = config.read_text()
    text = text.replace("port: 8008", f"port: {port}").replace("    - ::1\n", "")
    text = re.sub(
        r"(?m)^registration_shared_secret:.*$", f'registration_shared_secret: "{secret}"', text
    )
    config.write_text(text + SYNAPSE_EXTRA_CONFIG)
    log_config = folder / "localhost.log.config"
    if log_config.exists():  # keep the log quiet and in the folder
        log_config.write_text(log_config.read_text().replace("level: INFO", "level: WARNING"))
    out = (folder / "stdout.log").open("wb")
    proc = subprocess.Popen(
        [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "--config-path", str(config)],
        cwd=folder,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            out.close()
            pytest.fail(f"Synapse exited: {(folder / 'stdout.log').read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_matrix/client/versions", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Synapse did not answer within 90 s")
        time.sleep(0.2)
    server = Synapse(url, secret, folder)
    server.admin = server.register("admin", admin=True)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    out.close()


# -- people in rooms -------------------------------------------------------------------------


class Person:
    """A matrix-nio client for a human, remembering every event of its rooms."""

    def __init__(self, server: Synapse, account: Account) -> None:
        self.account = account
        self.user_id = account.user_id
        self.client = AsyncClient(server.url, account.user_id, device_id=account.device_id)
        self.client.access_token = account.access_token
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        first = await self.client.sync(timeout=0)
        assert isinstance(first, SyncResponse), first
        self._task = asyncio.create_task(self._listen(first.next_batch))

    async def _listen(self, token: str) -> None:
        room_filter = {"room": {"timeline": {"limit": 200}}, "presence": {"not_types": ["*"]}}
        while True:
            response = await self.client.sync(timeout=1000, since=token, sync_filter=room_filter)
            if not isinstance(response, SyncResponse):
                await asyncio.sleep(0.2)
                continue
            for room_id, info in response.rooms.join.items():
                self.events.setdefault(room_id, []).extend(e.source for e in info.timeline.events)
            token = response.next_batch
            self._changed.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def wait_for(
        self, room_id: str, check: Callable[[list[dict[str, Any]]], Any], timeout: float = 60
    ) -> Any:
        """Wait until ``check(events of the room)`` is truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = check(self.events.get(room_id, []))
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out; events in {room_id}: "
                    + "\n".join(_summary(e) for e in self.events.get(room_id, []))
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def create_room(self, *, invite: list[str] = (), initial_state: list[dict] = ()) -> str:
        response = await self.client.room_create(
            name="general", invite=list(invite), initial_state=list(initial_state)
        )
        assert isinstance(response, RoomCreateResponse), response
        return response.room_id

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)

    async def send(self, room_id: str, content: dict[str, Any], kind: str = "m.room.message"):
        response = await self.client.room_send(room_id, kind, content)
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    async def say(self, room_id: str, text: str, **extra: Any) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text, **extra})

    async def upload(self, room_id: str, data: bytes, name: str, mimetype: str) -> str:
        response, _ = await self.client.upload(
            io.BytesIO(data), content_type=mimetype, filename=name, filesize=len(data)
        )
        assert isinstance(response, UploadResponse), response
        return await self.send(
            room_id,
            {
                "msgtype": "m.file",
                "body": name,
                "url": response.content_uri,
                "info": {"size": len(data), "mimetype": mimetype},
            },
        )

    async def wait_joined(self, room_id: str, user_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = await self.client.joined_members(room_id)
            if isinstance(response, JoinedMembersResponse) and any(
                m.user_id == user_id for m in response.members
            ):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{user_id} did not join {room_id}")


def _summary(event: dict[str, Any]) -> str:
    content = event.get("content") or {}
    return f"{event.get('sender')} {event.get('type')} {content.get('body', '')[:100]!r}"


def bot_messages(events: list[dict], bot: str) -> list[dict]:
    """The bot's messages that are not edits."""
    return [
        e
        for e in events
        if e.get("sender") == bot
        and e.get("type") == "m.room.message"
        and not tr.is_edit(e.get("content") or {})
    ]


def replies_to(events: list[dict], bot: str, event_id: str) -> list[dict]:
    """The bot's messages answering ``event_id`` (in its thread, or replying to it)."""
    out = []
    for e in bot_messages(events, bot):
        rel = tr.relates_to(e.get("content") or {})
        if (rel.get("m.in_reply_to") or {}).get("event_id") == event_id:
            out.append(e)
    return out


def final_text(events: list[dict], message: dict) -> str:
    """A message's text after its last edit."""
    text = message["content"]["body"]
    for e in events:
        rel = tr.relates_to(e.get("content") or {})
        if rel.get("rel_type") == "m.replace" and rel.get("event_id") == message["event_id"]:
            text = e["content"]["m.new_content"]["body"]
    return text


def edits_of(events: list[dict], message_id: str) -> list[dict]:
    return [
        e
        for e in events
        if tr.relates_to(e.get("content") or {}).get("rel_type") == "m.replace"
        and tr.relates_to(e["content"]).get("event_id") == message_id
    ]


# -- the bot -----------------------------------------------------------------------------------


@dataclasses.dataclass
class RunningBot:
    app: App
    adapter: MatrixAdapter
    task: asyncio.Task

    async def stop(self) -> None:
        await self.adapter.stop()
        await asyncio.wait_for(self.task, 60)
        await self.app.close()


@pytest.fixture
def matrix_env(settings, synapse: Synapse, monkeypatch: pytest.MonkeyPatch):
    """A bot account, and settings that configure the Matrix adapter for it."""
    bot = synapse.register(f"librarian-{secrets.token_hex(3)}")
    # What an admin would set in Element: people address the bot by this name.
    httpx.put(
        f"{synapse.url}/_matrix/client/v3/profile/{bot.user_id}/displayname",
        headers={"Authorization": f"Bearer {bot.access_token}"},
        json={"displayname": "Librarian"},
        timeout=30,
    ).raise_for_status()
    monkeypatch.setenv("LIBRARIAN_MATRIX_HOMESERVER", synapse.url)
    monkeypatch.setenv("LIBRARIAN_MATRIX_USER_ID", bot.user_id)
    monkeypatch.setenv("LIBRARIAN_MATRIX_ACCESS_TOKEN", bot.access_token)
    return load_settings(), bot


async def start_bot(settings, **tweaks: Any) -> RunningBot:
    """`librarian run` in-process: the adapters chosen by the settings, in an App."""
    app = App.build(settings)
    adapters = configured_adapters(settings, app)
    assert [a.platform for a in adapters] == ["matrix"]
    adapter = adapters[0]
    assert isinstance(adapter, MatrixAdapter)
    for name, value in tweaks.items():
        setattr(adapter, name, value)
    task = asyncio.create_task(app.run_adapters([adapter]))
    return RunningBot(app, adapter, task)


@contextlib.asynccontextmanager
async def people(synapse: Synapse, *names: str):
    made = [Person(synapse, synapse.register(f"{n}-{secrets.token_hex(3)}")) for n in names]
    try:
        for person in made:
            await person.start()
        yield made
    finally:
        for person in made:
            await person.close()


def mention_pill(bot: str, name: str, question: str) -> dict[str, Any]:
    """What Element sends for a pill at the start of a message (without m.mentions)."""
    return {
        "msgtype": "m.text",
        "body": f"{name}: {question}",
        "format": "org.matrix.custom.html",
        "formatted_body": f'<a href="https://matrix.to/#/{bot}">{name}</a>: {question}',
    }


# -- the conversations -------------------------------------------------------------------------


async def test_a_shared_pdf_is_indexed_and_a_mention_is_answered_in_a_thread(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice") as (alice,):
            room = await alice.create_room(invite=[bot.user_id])
            await alice.wait_joined(room, bot.user_id)
            pdf = make_pdf(Path(settings.home).parent / "manual.pdf", PAGES).read_bytes()
            upload_id = await alice.upload(room, pdf, "manual.pdf", "application/pdf")
            indexed = await alice.wait_for(
                room, lambda ev: replies_to(ev, bot.user_id, upload_id), timeout=90
            )
            assert "Indexed manual.pdf: 3 pages" in indexed[0]["content"]["body"]

            question = "How long is the warranty of the Zephyr X200?"
            # A pill whose text is not the bot's name: only the link says who is meant.
            asked = await alice.send(room, mention_pill(bot.user_id, "the bot", question))

            def answered(events: list[dict]) -> Any:
                for reply in replies_to(events, bot.user_id, asked):
                    if "Sources:" in final_text(events, reply):
                        return reply
                return None

            reply = await alice.wait_for(room, answered, timeout=120)
            events = alice.events[room]
            rel = reply["content"]["m.relates_to"]
            assert rel["rel_type"] == "m.thread" and rel["event_id"] == asked
            assert rel["is_falling_back"] is True
            edits = edits_of(events, reply["event_id"])
            assert edits, "the answer was not streamed by edits"
            final = edits[-1]["content"]["m.new_content"]["body"]
            assert "Sources:" in final and "manual.pdf, p. 2" in final, final
            assert reply["content"]["msgtype"] == "m.notice"
            assert len(replies_to(events, bot.user_id, asked)) == 1
    finally:
        await running.stop()


def reaction_content(event_id: str, key: str) -> dict[str, Any]:
    """What Element sends for a reaction: an annotation of the event, keyed by the emoji."""
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


async def test_a_thumbs_up_on_the_answer_is_stored_with_the_question_and_its_sources(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    running = await start_bot(settings)
    store = running.app.store
    try:
        async with people(synapse, "alice", "bob") as (alice, bob):
            room = await alice.create_room(invite=[bot.user_id, bob.user_id])
            await bob.join(room)
            await alice.wait_joined(room, bot.user_id)
            pdf = make_pdf(Path(settings.home).parent / "manual.pdf", PAGES).read_bytes()
            upload_id = await alice.upload(room, pdf, "manual.pdf", "application/pdf")
            await alice.wait_for(
                room, lambda ev: replies_to(ev, bot.user_id, upload_id), timeout=90
            )
            question = "How long is the warranty of the Zephyr X200?"
            asked = await alice.send(room, mention_pill(bot.user_id, "Librarian", question))

            def answered(events: list[dict]) -> Any:
                for reply in replies_to(events, bot.user_id, asked):
                    if "Sources:" in final_text(events, reply):
                        return reply
                return None

            answer = await alice.wait_for(room, answered, timeout=120)

            # bob's 👍 on alice's question is about no answer; his 👍 on the answer is stored.
            await bob.send(room, reaction_content(asked, "👍"), "m.reaction")
            await bob.send(room, reaction_content(answer["event_id"], "👍"), "m.reaction")
            deadline = time.monotonic() + 30
            while not store.feedback_entries() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            (entry,) = store.feedback_entries()
            assert (entry.channel, entry.author, entry.verdict) == (
                f"matrix:{room}",
                f"matrix:{bob.user_id}",
                "good",
            )
            assert entry.question == question and entry.thread_id == asked
            assert entry.platform_message_id == answer["event_id"]
            assert entry.answer and entry.answer in final_text(alice.events[room], answer)
            assert (entry.sources[0]["document"], entry.sources[0]["pages"]) == (
                "manual.pdf",
                "p. 2",
            )

            # alice rates it in the answer's thread by command, with a note.
            rated = await alice.say(
                room,
                "!librarian feedback bad wrong page",
                **{
                    "m.relates_to": {
                        "rel_type": "m.thread",
                        "event_id": asked,
                        "is_falling_back": True,
                        "m.in_reply_to": {"event_id": answer["event_id"]},
                    }
                },
            )
            said = await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, rated))
            assert said[0]["content"]["body"].startswith("Thanks: recorded bad (wrong page)")
            assert sorted((e.author, e.verdict, e.note) for e in store.feedback_entries()) == [
                (f"matrix:{alice.user_id}", "bad", "wrong page"),
                (f"matrix:{bob.user_id}", "good", None),
            ]
    finally:
        await running.stop()


async def test_only_admins_may_set_retention(matrix_env, synapse: Synapse) -> None:
    settings, bot = matrix_env
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice", "bob") as (alice, bob):
            room = await alice.create_room(invite=[bot.user_id, bob.user_id])
            await bob.join(room)
            await alice.wait_joined(room, bot.user_id)

            refused = await bob.say(room, "!librarian retention 1d")
            reply = await bob.wait_for(room, lambda ev: replies_to(ev, bot.user_id, refused))
            assert "Refused" in reply[0]["content"]["body"]

            accepted = await alice.say(room, "!librarian retention 1d")  # the room's creator
            reply = await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, accepted))
            assert "is now 1d" in reply[0]["content"]["body"], reply[0]["content"]["body"]

            # Power level 50 makes bob an admin too; `/librarian` typed as text works as well.
            levels = await alice.client.room_get_state_event(room, "m.room.power_levels")
            assert isinstance(levels, RoomGetStateEventResponse)
            content = dict(levels.content)
            content["users"] = {**content.get("users", {}), bob.user_id: 50}
            await alice.client.room_put_state(room, "m.room.power_levels", content)
            promoted = await bob.say(room, "/librarian retention 2d")
            reply = await bob.wait_for(room, lambda ev: replies_to(ev, bot.user_id, promoted))
            assert "is now 2d" in reply[0]["content"]["body"], reply[0]["content"]["body"]

        binding = await running.app.dispatcher.binding(tr.conversation(room))
        assert binding.retention_seconds == 2 * 86400
    finally:
        await running.stop()


async def test_a_typed_librarian_ask_on_matrix_is_not_answered_for_the_whole_room(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice", "bob") as (alice, bob):
            room = await alice.create_room(invite=[bot.user_id, bob.user_id])
            await bob.join(room)
            await alice.wait_joined(room, bot.user_id)
            asked = await bob.say(room, "!librarian ask What is the launch code?")
            reply = await bob.wait_for(room, lambda ev: replies_to(ev, bot.user_id, asked))
            body = reply[0]["content"]["body"]
            assert "can't answer privately here" in body and "Mention me" in body
            # Nothing was searched or generated for it, and nothing is stored.
            binding = await running.app.dispatcher.binding(tr.conversation(room))
            assert running.app.store.message_count(binding.id) == 0
    finally:
        await running.stop()


async def test_a_revoked_matrix_token_does_not_stop_slack(
    matrix_env, synapse: Synapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's Matrix token is logged out while it runs beside Slack: Matrix is
    restarted, given up with the reason, and Slack answers all along."""
    from slack_emulator import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackEmulator

    from bot.supervisor import Supervisor

    _, bot = matrix_env
    slack = SlackEmulator()
    await slack.start()
    slack.add_user("UBOB", "bob")
    slack.add_channel("CGENERAL", "general")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("LIBRARIAN_SLACK_API_URL", slack.api_url)
    settings = load_settings()
    app = App.build(settings)
    app.supervisor = Supervisor(app.store, initial_backoff_s=0.5, max_restarts=1)
    adapters = configured_adapters(settings, app)
    assert [a.platform for a in adapters] == ["matrix", "slack"]
    adapters[0].sync_timeout_ms = 500  # notice the revocation at the next sync
    running = asyncio.create_task(app.run_adapters(adapters))
    try:
        await slack.wait_connected()
        await slack.wait_for(
            lambda: app.store.get_setting(f"matrix:{bot.user_id}:next_batch"), timeout=60
        )
        httpx.post(
            f"{synapse.url}/_matrix/client/v3/logout",
            headers={"Authorization": f"Bearer {bot.access_token}"},
            json={},
            timeout=30,
        ).raise_for_status()
        failed = await slack.wait_for(
            lambda: (
                app.supervisor.states["matrix"]["state"] == "failed"
                and app.supervisor.states["matrix"]
            ),
            timeout=90,
        )
        assert failed["restarts"] == 1 and "MatrixError" in failed["reason"]
        assert bot.access_token not in failed["reason"]
        assert not running.done() and app.supervisor.states["slack"]["state"] == "running"
        await slack.socket_send("slash_commands", slack.slash_command("CGENERAL", "UBOB", "status"))
        said = await slack.wait_for(
            lambda: [c.args["text"] for c in slack.calls_of("chat.postMessage")], timeout=30
        )
        # bob is in no LIBRARIAN_ADMINS: he sees each platform's state, not why.
        assert "Platforms: matrix failed; slack running" in said[-1], said[-1]
    finally:
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.stop()
        await asyncio.wait_for(running, 60)
        await app.close()
        await slack.close()


async def test_a_matrix_room_admin_cannot_bind_to_another_rooms_workspace(
    matrix_env, synapse: Synapse
) -> None:
    # Two ordinary users, each the admin of a room they created.  A room is a team of
    # its own: mallory's room may not read the workspace alice's room made.
    settings, bot = matrix_env
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice", "mallory") as (alice, mallory):
            room_a = await alice.create_room(invite=[bot.user_id])
            room_b = await mallory.create_room(invite=[bot.user_id])
            await alice.wait_joined(room_a, bot.user_id)
            await mallory.wait_joined(room_b, bot.user_id)

            async def command(person: Person, room: str, line: str) -> str:
                sent = await person.say(room, line)
                found = await person.wait_for(room, lambda ev: replies_to(ev, bot.user_id, sent))
                return found[0]["content"]["body"]

            reply = await command(alice, room_a, "!librarian workspace engineering")
            assert "now reads from workspace engineering (new)" in reply, reply
            pdf = make_pdf(Path(settings.home).parent / "plans.pdf", PAGES).read_bytes()
            upload = await alice.upload(room_a, pdf, "plans.pdf", "application/pdf")
            indexed = await alice.wait_for(
                room_a, lambda ev: replies_to(ev, bot.user_id, upload), timeout=90
            )
            assert "Indexed plans.pdf" in indexed[0]["content"]["body"]

            # The name is looked up within mallory's room: she gets an engineering of
            # her own, which tells her nothing of alice's.
            reply = await command(mallory, room_b, "!librarian workspace engineering")
            assert "now reads from workspace engineering (new)" in reply, reply
            reply = await command(mallory, room_b, "!librarian docs")
            assert "plans.pdf" not in reply and "No documents" in reply
            # Nor by the name of alice's room's own workspace, nor by naming her room.
            for name in (f"matrix:{room_a}", f"matrix:{room_a}/engineering"):
                reply = await command(mallory, room_b, f"!librarian workspace {name}")
                assert "reserved" in reply and "plans.pdf" not in reply

        app = running.app
        a = await app.dispatcher.binding(tr.conversation(room_a))
        b = await app.dispatcher.binding(tr.conversation(room_b))
        assert a.workspace.name == "engineering" and a.workspace.owner_team == f"matrix:{room_a}"
        assert b.workspace.name == "engineering" and b.workspace.owner_team == f"matrix:{room_b}"
        assert b.workspace.id != a.workspace.id
    finally:
        await running.stop()


async def test_matrix_password_login_works(matrix_env, synapse: Synapse, monkeypatch) -> None:
    # The access token of matrix_env logs in (as every other test here does); now the
    # password, twice: the second login reuses the device the first one made.
    _, bot = matrix_env
    monkeypatch.delenv("LIBRARIAN_MATRIX_ACCESS_TOKEN")
    monkeypatch.setenv("LIBRARIAN_MATRIX_PASSWORD", bot.password)
    settings = load_settings()
    assert settings.matrix_access_token is None and settings.matrix_password is not None
    devices: list[str] = []
    async with people(synapse, "alice") as (alice,):
        room = await alice.create_room(invite=[bot.user_id])
        for _attempt in range(2):
            running = await start_bot(settings)
            try:
                await alice.wait_joined(room, bot.user_id)
                sent = await alice.say(room, "!librarian help")
                found = await alice.wait_for(
                    room, lambda ev, sent=sent: replies_to(ev, bot.user_id, sent)
                )
                assert "Librarian commands" in found[0]["content"]["body"]
                assert not running.task.done()
                devices.append(running.adapter.client.device_id)
            finally:
                await running.stop()
    assert devices[0] and devices[0] == devices[1] and devices[0] != bot.device_id


async def test_a_restart_answers_what_came_while_down_and_nothing_twice(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    async with people(synapse, "alice") as (alice,):
        # A room the bot was in before it ever ran: its history is not answered.
        before = await alice.create_room(invite=[bot.user_id])
        bot_client = AsyncClient(synapse.url, bot.user_id)
        bot_client.access_token = bot.access_token
        await bot_client.join(before)
        await bot_client.close()
        ancient = await alice.say(before, "librarian: a question from before you ran?")

        running = await start_bot(settings)
        try:
            # A room with history from before the bot was invited: not answered either.
            room = await alice.create_room()
            old = await alice.say(room, "librarian: a question from before you came?")
            await alice.client.room_invite(room, bot.user_id)
            await alice.wait_joined(room, bot.user_id)
            first = await alice.say(room, "librarian: what is in the documents?")
            await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, first))
        finally:
            await running.stop()

        # While the bot is down: a mention, buried under more messages than one sync shows.
        missed = await alice.say(
            room, "what do the documents say?", **{"m.mentions": {"user_ids": [bot.user_id]}}
        )
        for n in range(6):
            await alice.say(room, f"chatter {n}")

        running = await start_bot(settings, timeline_limit=3)
        try:
            await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, missed))
            later = await alice.say(room, "@librarian and now?")
            assert not later.startswith("@librarian")
            await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, later), timeout=10)
        finally:
            await running.stop()
        await asyncio.sleep(0.5)
        events = alice.events[room]
        assert len(replies_to(events, bot.user_id, first)) == 1
        assert len(replies_to(events, bot.user_id, missed)) == 1
        assert replies_to(events, bot.user_id, old) == []
        assert replies_to(alice.events.get(before, []), bot.user_id, ancient) == []


async def test_a_burst_of_messages_gets_each_mention_answered_once(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    # The bot meets M_LIMIT_EXCEEDED: it must wait retry_after_ms and send again.
    synapse.limit_messages(bot.user_id, per_second=1, burst=1)
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice", "bob", "carol") as crowd:
            alice = crowd[0]
            room = await alice.create_room(invite=[bot.user_id, *(p.user_id for p in crowd[1:])])
            for person in crowd[1:]:
                await person.join(room)
            await alice.wait_joined(room, bot.user_id)
            for person in crowd[1:]:
                await alice.wait_joined(room, person.user_id)
            localpart = bot.user_id[1:].split(":")[0]
            forms = [
                lambda q: {
                    "msgtype": "m.text",
                    "body": q,
                    "m.mentions": {"user_ids": [bot.user_id]},
                },
                lambda q: mention_pill(bot.user_id, localpart, q),
                lambda q: {"msgtype": "m.text", "body": f"{localpart}, {q}"},
                lambda q: {"msgtype": "m.text", "body": f"@{localpart} {q}"},
            ]

            async def chatter(index: int, person: Person) -> list[tuple[str, bool]]:
                sent = []
                for n in range(index, 50, len(crowd)):
                    if n % 4 == 0:  # 13 mentions
                        question = f"question {n}: what is the price of model {n}?"
                        content = forms[(n // 4) % len(forms)](question)
                        sent.append((await person.send(room, content), True))
                    else:
                        text = f"message {n}: the librarian is quiet today"
                        sent.append((await person.say(room, text), False))
                return sent

            sent = [
                item
                for items in await asyncio.gather(*(chatter(i, p) for i, p in enumerate(crowd)))
                for item in items
            ]
            assert len(sent) == 50
            mentions = [event_id for event_id, mention in sent if mention]
            assert len(mentions) == 13

            def all_answered(events: list[dict]) -> bool:
                return all(replies_to(events, bot.user_id, m) for m in mentions)

            await alice.wait_for(room, all_answered, timeout=120)
            await asyncio.sleep(2)  # room for a duplicate to show up
            events = alice.events[room]
            for event_id in mentions:
                assert len(replies_to(events, bot.user_id, event_id)) == 1, event_id
            for event_id, mention in sent:
                if not mention:
                    assert replies_to(events, bot.user_id, event_id) == []
            assert len(bot_messages(events, bot.user_id)) == len(mentions)
    finally:
        await running.stop()
    assert running.adapter.rate_limited > 0, "the bot never met M_LIMIT_EXCEEDED"


async def test_an_encrypted_room_is_told_once_that_the_bot_cannot_read_it(
    matrix_env, synapse: Synapse
) -> None:
    settings, bot = matrix_env
    running = await start_bot(settings)
    try:
        async with people(synapse, "alice") as (alice,):
            encryption = {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
            room = await alice.create_room(invite=[bot.user_id], initial_state=[encryption])
            await alice.wait_joined(room, bot.user_id)
            ciphertext = {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
                "device_id": "ALICEDEVICE",
                "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
                "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
            }
            await alice.send(room, ciphertext, kind="m.room.encrypted")

            def told(events: list[dict]) -> list[dict]:
                return [
                    e
                    for e in bot_messages(events, bot.user_id)
                    if "encrypted" in e["content"]["body"]
                ]

            notices = await alice.wait_for(room, told)
            await alice.send(room, ciphertext, kind="m.room.encrypted")
            await asyncio.sleep(1.5)
            assert len(told(alice.events[room])) == 1
            assert notices[0]["content"]["body"] == ENCRYPTION_NOTICE
    finally:
        await running.stop()


# -- translation rules, without a server ---------------------------------------------------


BOT = tr.BotIdentity("@librarian:example.org", "Team Librarian")


def _message(content: dict[str, Any], sender: str = "@alice:example.org") -> dict[str, Any]:
    return {"type": "m.room.message", "sender": sender, "event_id": "$q", "content": content}


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ({"msgtype": "m.text", "body": "Team Librarian: what?"}, "what?"),
        ({"msgtype": "m.text", "body": "librarian, what?"}, "what?"),
        ({"msgtype": "m.text", "body": "@librarian what?"}, "what?"),
        ({"msgtype": "m.text", "body": "@librarian:example.org: what?"}, "what?"),
        (
            {
                "msgtype": "m.text",
                "body": "hey you, what?",
                "m.mentions": {"user_ids": ["@librarian:example.org"]},
            },
            "hey you, what?",
        ),
        (
            {
                "msgtype": "m.text",
                "body": "X: what?",
                "formatted_body": '<a href="https://matrix.to/#/%40librarian%3Aexample.org">X</a>'
                ": what?",
            },
            "what?",
        ),
        (
            {
                "msgtype": "m.text",
                "body": "so, what?",
                "formatted_body": 'so, <a href="https://matrix.to/#/@librarian:example.org">L</a>',
            },
            "so, what?",
        ),
    ],
)
def test_mentions_come_in_three_forms(content: dict[str, Any], text: str) -> None:
    event = tr.translate("!r:example.org", _message(content), BOT)
    assert isinstance(event, MessageReceived) and event.mentions_bot
    assert event.text == text
    assert event.conversation.thread_id == "$q"  # the answer starts a thread on it


def test_what_is_not_a_mention_or_not_for_the_bot() -> None:
    plain = tr.translate("!r:x", _message({"msgtype": "m.text", "body": "the librarian said"}), BOT)
    assert isinstance(plain, MessageReceived) and not plain.mentions_bot
    assert plain.conversation.thread_id is None
    own = _message({"msgtype": "m.text", "body": "librarian: x"}, sender=BOT.user_id)
    assert tr.translate("!r:x", own, BOT) is None
    notice = _message({"msgtype": "m.notice", "body": "librarian: x"})
    assert tr.translate("!r:x", notice, BOT) is None
    edit = _message(
        {
            "msgtype": "m.text",
            "body": "* librarian: x",
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"},
        }
    )
    assert tr.translate("!r:x", edit, BOT) is None


def test_threads_replies_commands_and_files() -> None:
    in_thread = _message(
        {
            "msgtype": "m.text",
            "body": "librarian: and then?",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": "$root",
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": "$last"},
            },
        }
    )
    event = tr.translate("!r:x", in_thread, BOT)
    assert event.conversation.thread_id == "$root"
    reply = _message(
        {
            "msgtype": "m.text",
            "body": "> <@bob:x> earlier\n\nlibrarian: why?",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$earlier"}},
        }
    )
    event = tr.translate("!r:x", reply, BOT)
    assert event.mentions_bot and event.text == "why?"
    assert event.conversation.thread_id == "$earlier"
    command = tr.translate("!r:x", _message({"msgtype": "m.text", "body": "!Librarian docs"}), BOT)
    assert isinstance(command, CommandInvoked) and command.text == "docs"
    file_event = _message(
        {
            "msgtype": "m.file",
            "body": "notes.md",
            "url": "mxc://example.org/abc123",
            "info": {"size": 1234, "mimetype": "application/octet-stream"},
        }
    )
    shared = tr.translate("!r:x", file_event, BOT)
    assert isinstance(shared, FileShared)
    assert shared.file.size == 1234 and shared.file.name == "notes.md"
    image = _message(
        {
            "msgtype": "m.file",
            "body": "cat.gif",
            "url": "mxc://x/y",
            "info": {"mimetype": "image/gif"},
        }
    )
    assert tr.translate("!r:x", image, BOT) is None


def test_reactions_go_to_the_core_as_sent() -> None:
    annotation = {
        "type": "m.reaction",
        "sender": "@bob:example.org",
        "event_id": "$r",
        "content": reaction_content("$answer", "👍️"),
    }
    event = tr.translate("!r:x", annotation, BOT, sender_name="Bob")
    assert isinstance(event, ReactionAdded)
    assert (event.message_id, event.emoji, event.event_id) == ("$answer", "👍️", "$r")
    assert event.conversation == tr.conversation("!r:x")
    assert event.author.qualified == "matrix:@bob:example.org" and event.author.name == "Bob"
    assert tr.translate("!r:x", {**annotation, "sender": BOT.user_id}, BOT) is None
    not_annotation = {**annotation, "content": {"m.relates_to": {"event_id": "$a", "key": "x"}}}
    assert tr.translate("!r:x", not_annotation, BOT) is None


def test_outgoing_content_follows_the_spec() -> None:
    threaded = tr.message_content("hi", thread_root="$q", reply_to="$q")
    assert threaded["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$q",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$q"},
    }
    inside = tr.message_content("hi", thread_root="$root", reply_to="$q")
    assert inside["m.relates_to"]["is_falling_back"] is False
    edit = tr.edit_content("$a", "new text")
    assert edit["m.new_content"]["body"] == "new text"
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$a"}
    assert tr.may_invite("@a:example.org", [])
    assert tr.may_invite("@a:example.org", ["example.org"])
    assert tr.may_invite("@a:example.org", ["@a:example.org"])
    assert not tr.may_invite("@a:evil.org", ["example.org", "@b:evil.org"])


async def test_media_falls_back_to_the_legacy_endpoint(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        assert request.headers["Authorization"] == "Bearer tok"
        if "/client/v1/" in request.url.path:
            return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED"})
        return httpx.Response(200, content=b"# notes")

    class Nowhere:
        def get_setting(self, key: str) -> None:
            return None

        def set_setting(self, key: str, value: Any) -> None:
            pass

    adapter = MatrixAdapter(
        homeserver="http://hs.invalid",
        user_id="@b:x",
        access_token="tok",
        state=Nowhere(),
        http_transport=httpx.MockTransport(handler),
    )
    adapter.client.access_token = "tok"
    ref = tr.file_ref(
        "!r:x",
        _message({"msgtype": "m.file", "body": "n.md", "url": "mxc://x/abc", "info": {}}),
    )
    try:
        assert await adapter.fetch_file(ref) == b"# notes"
    finally:
        await adapter.client.close()
    assert seen == ["/_matrix/client/v1/media/download/x/abc", "/_matrix/media/v3/download/x/abc"]


# -- a connection that goes away ----------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of Synapse that can drop every connection at will."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = _free_port()
        self.server: asyncio.base_events.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Close every open connection and stop accepting: the homeserver is unreachable."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.links.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links.difference_update({writer, up_writer})


async def test_a_lost_connection_reconnects_and_nothing_is_lost(
    matrix_env, synapse: Synapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, bot = matrix_env
    proxy = CuttableProxy(int(synapse.url.rsplit(":", 1)[1]))
    await proxy.start()
    monkeypatch.setenv("LIBRARIAN_MATRIX_HOMESERVER", proxy.url)
    async with people(synapse, "alice") as (alice,):
        running = await start_bot(load_settings())
        try:
            room = await alice.create_room(invite=[bot.user_id])
            await alice.wait_joined(room, bot.user_id)
            first = await alice.say(room, "librarian: what is in the documents?")
            await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, first))

            # The network goes away mid-sync; a mention arrives while the bot cannot reach it.
            before = proxy.connections
            await proxy.cut()
            during = await alice.say(
                room, "what now?", **{"m.mentions": {"user_ids": [bot.user_id]}}
            )
            await asyncio.sleep(3)
            await proxy.start()  # the network is back
            await alice.wait_for(room, lambda ev: replies_to(ev, bot.user_id, during), timeout=90)
            assert proxy.connections > before  # it connected again by itself
            assert not running.task.done()  # and never stopped running
        finally:
            await running.stop()
            await proxy.cut()
        await asyncio.sleep(0.5)
        events = alice.events[room]
        assert len(replies_to(events, bot.user_id, first)) == 1
        assert len(replies_to(events, bot.user_id, during)) == 1
