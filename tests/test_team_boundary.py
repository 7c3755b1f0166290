"""The team boundary, attacked: nothing of one team reaches another's channels.

Every attempt goes through the real dispatcher, commands, store and models, with
platform-neutral events from a small in-test adapter whose platform roles make some
users admins (as Slack team admins, Discord guild managers, Matrix room admins are).
alice is in LIBRARIAN_ADMINS (console:alice); nobody else is.

Team A ("victim") has a secret document in its channel's own workspace and in a
named workspace, and an orphaned workspace a rebind left behind.  Team B's admin
("mallory") tries everything a chat user can type.  A leak is any reply in team B
naming team A's document, its text or its id, or any change to team A's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import make_pdf
from old_schema import write_channels_and_documents
from sqlalchemy import text
from typer.testing import CliRunner

from bot.adapter import Adapter
from bot.app import App
from bot.cli import retention as retention_cli
from bot.events import (
    CommandInvoked,
    ConversationRef,
    FileRef,
    FileShared,
    MessageReceived,
    OutboundMessage,
    UserRef,
)
from bot.retention import run_retention
from bot.store import migrate
from bot.store.database import open_database
from bot.store.repo import WorkspaceDefaults, channel_spec
from bot.supervisor import Supervisor
from bot.teams import channel_team

SECRET_PAGES = [
    ["Nightjar programme, board only.", "The Nightjar launch code is Quokka-4471."],
    ["Chapter 2: Budget.", "The Nightjar budget is 93 million crowns."],
]
# Words only the secret document holds (questions may name "Nightjar", and the bot
# may repeat a question's words).
SECRET_WORDS = ("quokka", "4471", "93 million", "crowns")
MANUAL_PAGES = [
    ["Zephyr X200 product manual.", "The Zephyr X200 is a compact air purifier."],
    ["Chapter 2: Warranty.", "The Zephyr X200 comes with a warranty period of 5 years."],
]

_ids = itertools.count(1)


@dataclass
class Sent:
    """A message the bot posted, with its latest text."""

    conversation: ConversationRef
    text: str
    private_to: UserRef | None


@dataclass
class TeamAdapter(Adapter):
    """An adapter for one platform whose admins (by the platform's roles) are given."""

    platform: str
    role_admins: set[str]
    files: dict[str, bytes] = field(default_factory=dict)
    sent: dict[str, Sent] = field(default_factory=dict)
    edit_interval_s: float = 0.0

    async def start(self, sink) -> None:  # events are handed to the dispatcher directly
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> str:
        message_id = f"m{next(_ids)}"
        self.sent[message_id] = Sent(message.conversation, message.text, message.private_to)
        return message_id

    async def edit(self, conversation: ConversationRef, message_id: str, text_: str) -> None:
        self.sent[message_id].text = text_

    async def fetch_file(self, ref: FileRef) -> bytes:
        return self.files[ref.file_id]

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        return user.user_id in self.role_admins


@dataclass(frozen=True)
class Place:
    """A channel of a team on a platform."""

    platform: str
    space: str
    channel: str

    @property
    def conversation(self) -> ConversationRef:
        return ConversationRef(self.platform, self.space, self.channel, None, f"#{self.channel}")

    @property
    def spec(self) -> str:
        return channel_spec(self.platform, self.space, self.channel)


def places(platform: str) -> tuple[Place, Place, Place]:
    """Team A's channel, team A's second (not yet seen) channel, team B's channel."""
    if platform == "matrix":  # every room is a team of its own
        return (
            Place("matrix", "", "!victim:hs"),
            Place("matrix", "", "!victim2:hs"),
            Place("matrix", "", "!mallory:hs"),
        )
    space_a, space_b = {"slack": ("TA", "TB"), "discord": ("111", "222")}.get(
        platform, ("team-a", "team-b")
    )
    return (
        Place(platform, space_a, "CA1"),
        Place(platform, space_a, "CA2"),
        Place(platform, space_b, "CB1"),
    )


class World:
    """The app, one adapter per platform, and helpers to act as someone somewhere."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.adapters: dict[str, TeamAdapter] = {}

    def adapter(self, platform: str) -> TeamAdapter:
        if platform not in self.adapters:
            # victor and mallory are admins by their platform's roles (of their own team:
            # the test never asks the adapter about a team they are not in).
            adapter = TeamAdapter(platform, {"victor", "mallory"})
            self.adapters[platform] = adapter
            self.app.dispatcher.add_adapter(adapter)
        return self.adapters[platform]

    async def _handle(self, place: Place, event) -> list[Sent]:
        adapter = self.adapter(place.platform)
        before = set(adapter.sent)
        await self.app.dispatcher.handle(event)
        return [m for k, m in adapter.sent.items() if k not in before]

    async def command(
        self, place: Place, user: str, line: str, files: Iterable[FileRef] = ()
    ) -> str:
        event = CommandInvoked(
            f"e{next(_ids)}",
            place.conversation,
            UserRef(place.platform, user),
            line,
            files=tuple(files),
            message_id=f"q{next(_ids)}",
        )
        return "\n".join(m.text for m in await self._handle(place, event))

    async def mention(
        self, place: Place, user: str, question: str, thread: str | None = None
    ) -> str:
        event = MessageReceived(
            f"e{next(_ids)}",
            place.conversation.in_thread(thread),
            UserRef(place.platform, user),
            question,
            mentions_bot=True,
            message_id=f"q{next(_ids)}",
        )
        return "\n".join(m.text for m in await self._handle(place, event))

    def file(self, place: Place, name: str, data: bytes) -> FileRef:
        file_id = f"F{next(_ids)}"
        self.adapter(place.platform).files[file_id] = data
        return FileRef(place.platform, file_id, name, len(data), "application/pdf")

    async def share(self, place: Place, user: str, name: str, data: bytes) -> str:
        ref = self.file(place, name, data)
        event = FileShared(f"e{next(_ids)}", place.conversation, UserRef(place.platform, user), ref)
        return "\n".join(m.text for m in await self._handle(place, event))

    async def upload(self, place: Place, user: str, name: str, data: bytes) -> str:
        return await self.command(place, user, "upload", [self.file(place, name, data)])


@pytest.fixture
async def world(settings):
    app = App.build(settings)
    app.start_background()
    yield World(app)
    await app.close()


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("pdfs")
    return {
        "secret": make_pdf(folder / "secret.pdf", SECRET_PAGES).read_bytes(),
        "manual": make_pdf(folder / "manual.pdf", MANUAL_PAGES).read_bytes(),
    }


def assert_no_leak(reply: str, typed: str, secret_ids: Iterable[int], what: str) -> None:
    """No word of the secret, its file name or its ids (beyond what was typed) in ``reply``."""
    lowered = reply.replace(typed, "").lower()
    for word in SECRET_WORDS + ("secret-plan",):
        assert word not in lowered, f"{what}: {word!r} leaked in {reply!r}"
    for doc_id in secret_ids:
        assert f"#{doc_id} " not in reply, f"{what}: document #{doc_id} named in {reply!r}"


# -- one test per hole (each fails on the code before this change) ------------------------------


async def test_an_admin_of_one_guild_cannot_pre_create_another_guilds_channel_workspace(
    world: World, pdfs: dict[str, bytes]
) -> None:
    victim, victim_new, mallory = places("discord")
    # Mallory, a manager of guild 222, names the workspace guild 111's channel CA2 will get.
    reply = await world.command(mallory, "mallory", f"workspace {victim_new.spec}")
    assert "reserved" in reply and "now reads" not in reply
    # CA2 appears later; its uploads go to its own workspace, which mallory cannot read.
    assert "Indexed" in await world.upload(victim_new, "victor", "secret-plan.pdf", pdfs["secret"])
    reply = await world.command(mallory, "mallory", "docs")
    assert "secret-plan" not in reply
    ws = (await world.app.dispatcher.binding(victim_new.conversation)).workspace
    assert ws.own and ws.owner_team == "discord:111"
    assert [b.channel_id for b in world.app.store.channels_of_workspace(ws.id)] == ["CA2"]


async def test_binding_to_an_orphaned_workspace_of_another_team_is_refused(
    world: World, pdfs: dict[str, bytes]
) -> None:
    victim, _, mallory = places("slack")
    assert "(new)" in await world.command(victim, "victor", "workspace finance")
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    # The victim moves on; "finance" keeps its documents and has no channel left.
    assert "now reads from workspace" in await world.command(victim, "victor", "workspace own")
    finance = world.app.store.workspace_by_name("finance", team="slack:TA")
    assert finance is not None and world.app.store.channels_of_workspace(finance.id) == []
    # Mallory's "finance" is a new one of her own team's, not the orphan.
    reply = await world.command(mallory, "mallory", "workspace finance")
    assert "now reads from workspace finance (new)." in reply
    binding = await world.app.dispatcher.binding(mallory.conversation)
    assert binding.workspace.id != finance.id
    assert "secret-plan" not in await world.command(mallory, "mallory", "docs")
    # Nor can she name it with its team.
    reply = await world.command(mallory, "mallory", "workspace slack:TA/finance")
    assert "reserved" in reply and "now reads" not in reply
    # The team that owns it may go back; a deployment admin may cross, naming the team.
    assert "now reads from workspace finance." in await world.command(
        victim, "victor", "workspace finance"
    )
    world.app.settings.admins.append("slack:alice")  # LIBRARIAN_ADMINS
    assert "now reads from workspace slack:TA/finance." in await world.command(
        mallory, "alice", "workspace slack:TA/finance"
    )


async def test_an_auto_indexed_share_respects_uploads_admins(
    world: World, pdfs: dict[str, bytes]
) -> None:
    victim, _, _ = places("console")
    assert "admins may now upload" in await world.command(victim, "victor", "uploads admins")
    # bob is no admin: his share is not indexed (nor downloaded), as his upload is not.
    assert await world.share(victim, "bob", "manual.pdf", pdfs["manual"]) == ""
    ws = (await world.app.dispatcher.binding(victim.conversation)).workspace
    assert world.app.store.list_documents(ws.id) == []
    assert "Refused: uploading is limited to admins" in await world.upload(
        victim, "bob", "manual.pdf", pdfs["manual"]
    )
    # A file on bob's message is not indexed either; an admin's share is.
    event = MessageReceived(
        f"e{next(_ids)}",
        victim.conversation,
        UserRef("console", "bob"),
        "here it is",
        mentions_bot=False,
        files=(world.file(victim, "manual.pdf", pdfs["manual"]),),
    )
    await world.app.dispatcher.handle(event)
    assert world.app.store.list_documents(ws.id) == []
    assert "Indexed manual.pdf" in await world.share(victim, "victor", "manual.pdf", pdfs["manual"])


async def test_model_from_chat_refuses_a_url_and_a_host_path(
    world: World, settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    victim, _, _ = places("slack")
    outside = tmp_path / "elsewhere" / "stolen.gguf"
    outside.parent.mkdir()
    outside.symlink_to(world.app.registry.resolve("smollm2", "chat").path)
    for ref in (
        "http://attacker.example:8080/v1",
        "https://attacker.example/v1#gpt",
        str(outside),
        "~/../../etc/passwd",
        "../elsewhere/stolen.gguf",
        "/etc/passwd",
    ):
        reply = await world.command(victim, "victor", f"model {ref}")
        assert "now answers" not in reply, (ref, reply)
        assert (
            await world.app.dispatcher.binding(victim.conversation)
        ).workspace.chat_model is None
    # Registry names still work, and so do servers the operator named in configuration.
    assert "now answers with smollm2" in await world.command(victim, "victor", "model smollm2")
    world.app.settings.remote_models = {"big": "http://127.0.0.1:9/v1#llama"}
    reply = await world.command(victim, "victor", "model big")
    assert "now answers with the remote model big" in reply
    ws = (await world.app.dispatcher.binding(victim.conversation)).workspace
    assert ws.chat_model == "remote:big"
    assert "the remote model big" in await world.command(victim, "victor", "model")


async def test_forget_removes_the_answers_that_quoted_the_document(
    world: World, pdfs: dict[str, bytes]
) -> None:
    victim, _, _ = places("console")
    app = world.app
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    assert "Indexed" in await world.upload(victim, "victor", "manual.pdf", pdfs["manual"])
    binding = await app.dispatcher.binding(victim.conversation)
    warranty = "How long is the Zephyr X200 warranty?"
    await world.mention(victim, "bob", "What is the Nightjar launch code?")
    # The next answer here has the first in its history (and may repeat it); one in
    # another thread has not.
    await world.mention(victim, "bob", warranty)
    await world.mention(victim, "bob", warranty, thread="t2")
    history = app.store.recent_messages(binding.id, None)
    assert [m.role for m in history] == ["user", "assistant"] * 2
    assert history[1].cited_chunk_ids
    assert len(app.store.recent_messages(binding.id, "t2")) == 2

    def vocabulary() -> set[str]:
        with app.db.engine.connect() as conn:
            return set(
                conn.execute(
                    text("SELECT lexeme FROM keyword_terms WHERE workspace_id = :w"),
                    {"w": binding.workspace.id},
                ).scalars()
            )

    assert {"nightjar", "quokka"} <= vocabulary()
    [secret] = app.store.find_documents(binding.workspace.id, "secret-plan.pdf")
    reply = await world.command(victim, "victor", f"forget #{secret.id}")
    assert f"Forgot #{secret.id} secret-plan.pdf" in reply
    # The question about it, the answer quoting it and the turn answered with that in
    # its history are gone; the other thread stays.
    assert app.store.recent_messages(binding.id, None) == []
    left = app.store.recent_messages(binding.id, "t2")
    assert [m.text for m in left if m.role == "user"] == [warranty]
    assert not any(w in m.text.lower() for m in left for w in SECRET_WORDS)
    # Its vocabulary is gone from the keyword statistics (no row with df 0 remains).
    assert not {"nightjar", "quokka"} & vocabulary()
    with app.db.engine.connect() as conn:
        zero = conn.execute(text("SELECT count(*) FROM keyword_terms WHERE df <= 0")).scalar()
    assert zero == 0


@pytest.fixture(scope="session")
def chat_q8_0(shared_models: Path, packaged_chat_gguf: Path) -> Path:
    """The q8_0 level of the packaged SmolLM2 (as in test_commands.py: one file, made once)."""
    from bot.inference.quantize import quantize

    target = shared_models / "SmolLM2-135M-Instruct-q8_0.gguf"
    if not target.is_file():
        quantize(packaged_chat_gguf, "q8_0", models_dir=shared_models, allow_requantize=True)
    return target


async def test_the_audit_log_keeps_no_free_text_and_is_pruned_after_90_days(
    world: World, pdfs: dict[str, bytes], chat_q8_0: Path
) -> None:
    victim, _, _ = places("console")
    app = world.app
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    secret_question = "What is the Nightjar launch code, is it Quokka-4471?"
    # A refused command's arguments and a compare question are free text.
    await world.command(victim, "bob", f"retention {secret_question}")
    await world.command(victim, "victor", f"compare q4_1 q8_0 {secret_question}")
    entries = app.store.audit_entries(50)
    assert {"refused", "compare", "upload"} <= {e["action"] for e in entries}
    for entry in entries:
        assert "nightjar" not in str(entry).lower() and "quokka" not in str(entry).lower()
    [refused] = [e for e in entries if e["action"] == "refused"]
    assert refused["details"]["args"]["length"] == len(secret_question)
    assert len(refused["details"]["args"]["sha256"]) == 64

    # Entries older than the audit retention (90 days by default) go with the next run.
    assert app.settings.audit_retention_days == 90
    with app.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET at = now() - interval '91 days'"))
        conn.execute(
            text(
                "INSERT INTO audit_log (actor, action, at) "
                "VALUES ('console:x', 'recent', now() - interval '89 days')"
            )
        )
    await app.scheduler.retention_job()
    actions = [e["action"] for e in app.store.audit_entries(50)]
    assert "refused" not in actions and "recent" in actions
    assert "retention_run" in actions  # the run's own entry, just written
    run_retention(app.store, audit_days=1)
    assert "recent" not in [e["action"] for e in app.store.audit_entries(50)]


PLATFORMS = ["slack", "discord", "matrix", "console"]


# -- the workspace-name oracle and status (issue 16's leftovers) -------------------------------


def team_of(place: Place) -> str:
    """The team id of a test channel, as bot.teams names it."""
    return channel_team(place.platform, place.space, place.channel)


def shown(reply: str, name: str) -> str:
    """A reply with the typed name and any numbers blanked, to compare two replies."""
    return re.sub(r"\d+", "N", reply.replace(name, "NAME"))


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_platform_admin_cannot_tell_which_workspace_names_another_team_uses(
    world: World, pdfs: dict[str, bytes], platform: str
) -> None:
    victim, _, mallory = places(platform)
    taken = ["finance", "hr", "Board.minutes"]
    team_a = set()
    for name in taken:
        assert "(new)" in await world.command(victim, "victor", f"workspace {name}")
        assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
        team_a.add((await world.app.dispatcher.binding(victim.conversation)).workspace.id)
    store = world.app.store
    # Mallory (an admin of team B) and erin (no admin) type each name team A uses and a
    # name nobody uses: the replies are the same, word for word.
    for name, fresh in zip(taken, ["budget", "payroll", "Lunch.menu"], strict=True):
        for who in ("mallory", "erin"):
            replies = []
            for typed in (fresh, name):
                replies.append(
                    shown(await world.command(mallory, who, f"workspace {typed}"), typed)
                )
                binding = await world.app.dispatcher.binding(mallory.conversation)
                assert binding.workspace.id not in team_a, (who, typed)
                await world.command(mallory, who, "workspace own")
            assert replies[0] == replies[1], (who, name, replies)
    # Mallory's "finance" (made above) is team B's own, empty; team A's is untouched.
    reply = await world.command(mallory, "mallory", "workspace finance")
    assert "now reads from workspace finance." in reply, reply
    assert "secret-plan" not in await world.command(mallory, "mallory", "docs")
    mine = (await world.app.dispatcher.binding(mallory.conversation)).workspace
    assert mine.owner_team == team_of(mallory) and mine.id not in team_a
    for ws in team_a:
        assert [d.file_name for d in store.list_documents(ws)] == ["secret-plan.pdf"]
    assert "now reads from workspace finance." in await world.command(
        victim, "victor", "workspace finance"
    )


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_another_teams_workspace_name_does_not_block_this_team(
    world: World, pdfs: dict[str, bytes], platform: str
) -> None:
    victim, victim_new, mallory = places(platform)
    # Team B takes "finance" first; team A still gets a "finance" of its own.
    assert "(new)" in await world.command(mallory, "mallory", "workspace finance")
    assert "Indexed" in await world.upload(mallory, "mallory", "manual.pdf", pdfs["manual"])
    reply = await world.command(victim, "victor", "workspace finance")
    assert "now reads from workspace finance (new)." in reply, reply
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    if platform != "matrix":  # a second channel of team A finds team A's "finance"
        reply = await world.command(victim_new, "victor", "workspace finance")
        assert "now reads from workspace finance. It shares it with #CA1." in reply, reply
    docs_a = await world.command(victim, "victor", "docs")
    docs_b = await world.command(mallory, "mallory", "docs")
    assert "secret-plan.pdf" in docs_a and "manual.pdf" not in docs_a
    assert "manual.pdf" in docs_b and "secret-plan" not in docs_b
    assert "Quokka-4471" not in await world.mention(
        mallory, "mallory", "What is the Nightjar launch code?"
    )


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_only_a_deployment_admin_crosses_teams_and_only_by_naming_the_team(
    world: World, pdfs: dict[str, bytes], platform: str
) -> None:
    victim, _, mallory = places(platform)
    assert "(new)" in await world.command(victim, "victor", "workspace finance")
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    team_a = team_of(victim)
    # A platform admin typing team A's team gets the same refusal for a workspace that
    # exists and one that does not, before anything is looked up.
    held = shown(await world.command(mallory, "mallory", f"workspace {team_a}/finance"), "finance")
    nothing = shown(await world.command(mallory, "mallory", f"workspace {team_a}/nosuch"), "nosuch")
    assert "reserved" in held and held == nothing
    assert "secret-plan" not in await world.command(mallory, "mallory", "docs")
    # LIBRARIAN_ADMINS: a plain name is looked up in the channel's own team, as for
    # anyone; another team's workspace is named <team>/<name>.
    world.app.settings.admins.append(f"{platform}:alice")
    assert "now reads from workspace finance (new)." in await world.command(
        mallory, "alice", "workspace finance"
    )
    assert "secret-plan" not in await world.command(mallory, "alice", "docs")
    reply = await world.command(mallory, "alice", f"workspace {team_a}/nosuch")
    assert f"team {team_a} has no workspace named nosuch" in reply
    reply = await world.command(mallory, "alice", f"workspace {team_a}/finance")
    assert f"now reads from workspace {team_a}/finance." in reply, reply
    assert "secret-plan.pdf" in await world.command(mallory, "alice", "docs")
    # The cross is audited with the owning team.
    [entry] = [
        e
        for e in world.app.store.audit_entries(50)
        if e["action"] == "workspace"
        and e["details"].get("team") == team_a
        and e["actor"] == f"{platform}:alice"
    ]
    assert entry["details"]["to"] == "finance"


async def test_rooms_declared_one_team_share_names_and_other_rooms_stay_out(
    settings, pdfs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import load_settings

    monkeypatch.setenv("LIBRARIAN_MATRIX_TEAMS", "eng=!e1:hs,!e2:hs")
    app = App.build(load_settings())
    app.start_background()
    world = World(app)
    try:
        e1, e2, mallory = (Place("matrix", "", r) for r in ("!e1:hs", "!e2:hs", "!m:hs"))
        # Before the declaration, room !e2 made "notes" as a team of its own.
        app.store.bind("matrix", "", "!e2:hs", "notes", WorkspaceDefaults.from_settings(settings))
        reply = await world.command(e1, "victor", "workspace handbook")
        assert "now reads from workspace handbook (new)." in reply, reply
        assert "Indexed" in await world.upload(e1, "victor", "secret-plan.pdf", pdfs["secret"])
        handbook = (await app.dispatcher.binding(e1.conversation)).workspace
        assert handbook.owner_team == "matrix:team:eng"
        # The other declared room finds it by its name; a room outside gets its own.
        reply = await world.command(e2, "victor", "workspace handbook")
        assert "now reads from workspace handbook. It shares it with #!e1:hs." in reply, reply
        reply = await world.command(mallory, "mallory", "workspace handbook")
        assert "now reads from workspace handbook (new)." in reply, reply
        assert "secret-plan" not in await world.command(mallory, "mallory", "docs")
        # A room declared later keeps what it made as a room of its own.
        reply = await world.command(e2, "victor", "workspace notes")
        assert "now reads from workspace notes." in reply, reply
        # A deployment admin names the declared team to cross.
        app.settings.admins.append("matrix:alice")
        reply = await world.command(mallory, "alice", "workspace matrix:team:eng/handbook")
        assert "now reads from workspace matrix:team:eng/handbook." in reply, reply
        assert "secret-plan.pdf" in await world.command(mallory, "alice", "docs")
    finally:
        await app.close()


class FailingAdapter:
    """A platform whose connection keeps failing, with an error naming one team's channel."""

    platform = "discord"

    async def start(self, sink) -> None:
        raise RuntimeError("403 Forbidden (50001): Missing Access to #secret-plan of guild 111")

    async def stop(self) -> None:
        return None


async def test_status_in_one_team_shows_no_platform_failure_reason(world: World) -> None:
    _, _, mallory = places("slack")
    supervisor = Supervisor(world.app.store, initial_backoff_s=600)
    running = asyncio.create_task(supervisor.run(FailingAdapter(), world.app.dispatcher.handle))
    try:
        for _ in range(200):
            if supervisor.states.get("discord", {}).get("state") == "restarting":
                break
            await asyncio.sleep(0.05)
        for who in ("mallory", "erin"):
            reply = await world.command(mallory, who, "status")
            assert "Platforms: discord restarting in " in reply, reply
            assert "secret-plan" not in reply and "Forbidden" not in reply, reply
        # LIBRARIAN_ADMINS see why (and the operator does, in `librarian status`).
        world.app.settings.admins.append("slack:alice")
        reply = await world.command(mallory, "alice", "status")
        assert "Missing Access to #secret-plan" in reply, reply
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_status_does_not_count_another_teams_documents_waiting_to_be_indexed(
    settings, pdfs: dict[str, bytes]
) -> None:
    # A gateway of a split deployment: files are queued here and wait for a worker.
    app = App.build(settings)
    world = World(app)
    victim, _, mallory = places("slack")
    sharing = asyncio.create_task(world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"]))
    try:
        for _ in range(200):
            if app.store.ingest_queue_depth() == 1:
                break
            await asyncio.sleep(0.05)
        assert app.store.ingest_queue_depth() == 1
        reply = await world.command(mallory, "mallory", "status")
        assert "Queues: 0 documents of this workspace to index" in reply, reply
        assert "in all" not in reply
        reply = await world.command(victim, "victor", "status")
        assert "Queues: 1 document of this workspace to index" in reply, reply
        app.settings.admins.append("slack:alice")
        reply = await world.command(mallory, "alice", "status")
        assert "Queues: 0 documents of this workspace (1 in all) to index" in reply, reply
    finally:
        sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sharing
        await app.close()


async def test_a_workspace_of_no_team_from_before_0009_is_reached_only_by_a_deployment_admin(
    settings,
) -> None:
    """A home at schema 0008 with a workspace no channel was bound to: migration 0009
    could not tell whose it is (NULL owner_team), so no team's name finds it; only
    LIBRARIAN_ADMINS reach it, as ``no-team/<name>``, and binding leaves it of no team."""
    db = open_database(settings)
    try:
        migrate.upgrade(db, "0008")
        with db.engine.begin() as conn:
            handbook = conn.execute(
                text(
                    "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, "
                    "relevance_floor) VALUES ('handbook', 200, 40, 4, 0.25) RETURNING id"
                )
            ).scalar_one()
            write_channels_and_documents(conn, {"handbook": handbook}, [])
    finally:
        db.close()
    app = App.build(settings)  # brings the home's database to the newest schema
    try:
        world = World(app)
        victim, _, mallory = places("slack")
        assert app.store.workspace(handbook).owner_team is None
        # A platform admin: the plain name makes a new workspace for her team, and the
        # no-team form is refused like any other name with a "/".
        reply = await world.command(mallory, "mallory", "workspace handbook")
        assert "now reads from workspace handbook (new)." in reply, reply
        assert "doc of handbook" not in await world.command(mallory, "mallory", "docs")
        reply = await world.command(mallory, "mallory", "workspace no-team/handbook")
        assert "reserved" in reply and "no-team/<name>" in reply and "now reads" not in reply
        binding = await app.dispatcher.binding(mallory.conversation)
        assert binding.workspace.id != handbook
        assert "no team" not in await world.command(mallory, "mallory", "status")
        # A deployment admin finds it in status, names it with no-team; a name of no team
        # that is not there is said so; the team part must still be a team or no-team.
        app.settings.admins.append("slack:alice")
        reply = await world.command(victim, "alice", "status")
        assert (
            "  Workspaces of no team: handbook (bind with /librarian workspace no-team/<name>)"
            in reply.splitlines()
        ), reply
        reply = await world.command(victim, "alice", "workspace no-team/nosuch")
        assert "no workspace of no team is named nosuch" in reply, reply
        reply = await world.command(victim, "alice", "workspace noteam/handbook")
        assert "reserved" in reply and "now reads" not in reply, reply
        reply = await world.command(victim, "alice", "workspace no-team/handbook")
        assert "#CA1 now reads from workspace no-team/handbook." in reply, reply
        assert "doc of handbook.pdf" in await world.command(victim, "victor", "docs")
        assert app.store.workspace(handbook).owner_team is None  # still nobody's
        # The operator's listing names it as LIBRARIAN_ADMINS type it.
        listing = CliRunner().invoke(retention_cli.app, ["list", "--json"])
        assert listing.exit_code == 0, listing.output
        [row] = [r for r in json.loads(listing.output) if r["channel"] == victim.spec]
        assert (row["team"], row["workspace_ref"]) == (None, "no-team/handbook")
        reply = await world.command(victim, "alice", "workspace no-team/handbook")
        assert "already reads from workspace handbook" in reply, reply
        # Leaving it, the reply says how to come back, in the form only alice may type.
        reply = await world.command(victim, "victor", "workspace own")
        assert "/librarian workspace no-team/handbook binds back to them." in reply, reply
        reply = await world.command(victim, "victor", "workspace no-team/handbook")
        assert "reserved" in reply and "now reads" not in reply, reply
        [entry] = [
            e
            for e in app.store.audit_entries(50)
            if e["action"] == "workspace" and e["details"].get("workspace_id") == handbook
        ]
        assert entry["actor"] == "slack:alice" and entry["details"]["team"] is None
    finally:
        await app.close()


# -- the adversarial suite: every platform, every way in ----------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_cross_team_attempts_leak_nothing(
    world: World, pdfs: dict[str, bytes], platform: str
) -> None:
    app = world.app
    victim, victim_new, mallory = places(platform)
    # Team A: a secret in the channel's own workspace, in "finance", and in an orphan.
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    own_a = (await app.dispatcher.binding(victim.conversation)).workspace
    assert "(new)" in await world.command(victim, "victor", "workspace finance")
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    assert "(new)" in await world.command(victim, "victor", "workspace finance-archive")
    assert "Indexed" in await world.upload(victim, "victor", "secret-plan.pdf", pdfs["secret"])
    assert "finance" in await world.command(victim, "victor", "workspace finance")
    store = app.store
    team_a = {own_a.id, store.workspace_by_name("finance", team=team_of(victim)).id}
    team_a.add(store.workspace_by_name("finance-archive", team=team_of(victim)).id)
    secret_ids = [d.id for ws in team_a for d in store.list_documents(ws)]
    assert len(secret_ids) == 3
    # Team B: its own document, so that retrieval in B has something to rank.
    assert "Indexed" in await world.upload(mallory, "mallory", "manual.pdf", pdfs["manual"])

    def snapshot() -> tuple:
        bindings = sorted(
            (b.platform, b.space_id, b.channel_id, b.workspace.id)
            for b in store.bindings()
            if b.workspace.id in team_a
        )
        docs = sorted((d.id, d.status) for ws in team_a for d in store.list_documents(ws))
        settings_ = sorted(
            (w.id, w.top_k, w.chunk_tokens, w.chat_model, getattr(w, "owner_team", None))
            for w in (store.workspace(i) for i in team_a)
        )
        return bindings, docs, settings_

    before = snapshot()
    # A platform keeps failing with an error that names team A's channel: status in
    # team B must not pass it on.
    supervisor = Supervisor(store, initial_backoff_s=600)
    failing = asyncio.create_task(supervisor.run(FailingAdapter(), app.dispatcher.handle))
    names = [
        "finance",
        "finance-archive",
        own_a.name,
        victim.spec,
        victim_new.spec,
        f"{victim.spec}~2",
        victim.channel,
        f"{platform}:{victim.space}",
        "finance/",
        "../finance",
        "finance:",
        '"finance"',
        # Team A's workspaces named with their team, as LIBRARIAN_ADMINS may.
        f"{team_of(victim)}/finance",
        f"{team_of(victim)}/finance-archive",
        f"{team_of(victim)}/{own_a.name}",
    ]
    attempts: list[tuple[str, str, str]] = []  # (who, kind, command line or question)
    for name in names:
        attempts.append(("mallory", "command", f"workspace {name}"))
        attempts.append(("erin", "command", f"workspace {name}"))  # not even an admin
    for ref in [*(f"#{i}" for i in secret_ids), "secret-plan.pdf", "secret", ".pdf"]:
        attempts.append(("mallory", "command", f"forget {ref}"))
    attempts += [
        ("mallory", "command", "docs"),
        ("mallory", "command", "status"),
        ("erin", "command", "status"),
        ("mallory", "command", "settings"),
        ("mallory", "command", "model"),
        ("mallory", "command", "workspace own"),
        ("mallory", "command", "ask What is the Nightjar launch code?"),
        ("erin", "command", "ask What is the Nightjar budget?"),
        ("mallory", "command", "compare q4_1 q8_0 What is the Nightjar launch code?"),
        ("mallory", "mention", "What is the Nightjar launch code?"),
        ("erin", "mention", "Tell me everything about Nightjar and its budget."),
    ]
    for who, kind, line in attempts:
        if kind == "command":
            reply = await world.command(mallory, who, line)
        else:
            reply = await world.mention(mallory, who, line)
        typed = line.partition(" ")[2] if kind == "command" else line
        assert_no_leak(reply, typed, secret_ids, f"{platform} {who}: {line}")
        # After every attempt team B still reads nothing of team A.
        binding = await app.dispatcher.binding(mallory.conversation)
        assert binding.workspace.id not in team_a, (line, binding.workspace)
    # The channel of team A that appears only now gets a workspace of its own, empty.
    new = await app.dispatcher.binding(victim_new.conversation)
    assert new.workspace.id not in team_a and store.list_documents(new.workspace.id) == []
    # Nothing of team A changed, and no answer in team B's history quotes it.
    assert snapshot() == before
    history = store.recent_messages((await app.dispatcher.binding(mallory.conversation)).id, None)
    assert not any(w in m.text.lower() for m in history for w in SECRET_WORDS)
    assert len(attempts) >= 40
    assert supervisor.states["discord"]["state"] == "restarting"
    failing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await failing
