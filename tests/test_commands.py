"""The /librarian commands, as conversations in console channels.

alice is an admin (LIBRARIAN_ADMINS=console:alice), bob is not.  Real Postgres,
real models: the commands run exactly as they do in a chat.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from helpers import converse, make_pdf, say
from sqlalchemy import text
from typer.testing import CliRunner

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.cli import retention as retention_cli
from bot.events import ConversationRef
from bot.knowledge.texts import NOT_FOUND

GENERAL = ConversationRef("console", "", "general", None, "#general")
WARRANTY = "How long is the warranty of the Zephyr X200?"
BOREAL = [
    ["Boreal K9 product sheet.", "The Boreal K9 is a large dehumidifier for warehouses."],
    ["Pricing.", "The Boreal K9 costs 1,280 euros including VAT."],
]


@pytest.fixture(scope="session")
def chat_q8_0(shared_models: Path, packaged_chat_gguf: Path) -> Path:
    """The q8_0 level of the packaged SmolLM2 (Q4_1), built once with the quantize command.

    There is no F16 SmolLM2 in the packages, so this re-quantizes Q4_1 to Q8_0
    (``allow_requantize``): the 4-bit weights dequantized and stored in 8 bits.
    """
    from bot.inference.quantize import quantize

    target = shared_models / "SmolLM2-135M-Instruct-q8_0.gguf"
    if not target.is_file():
        quantize(packaged_chat_gguf, "q8_0", models_dir=shared_models, allow_requantize=True)
    return target


def audit(app: App, action: str | None = None) -> list[dict]:
    entries = app.store.audit_entries(200)
    return [e for e in entries if action is None or e["action"] == action]


def chunk_rows(app: App, document_id: int) -> int:
    with app.db.engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM chunks WHERE document_id = :d"), {"d": document_id}
        ).scalar_one()


@pytest.fixture
async def app(settings):
    app = App.build(settings)
    app.start_background()
    yield app
    await app.close()


async def test_help_docs_ask_and_status_for_everyone(app: App, tmp_path: Path) -> None:
    manual = make_pdf(tmp_path / "manual.pdf")
    reply = await say(app, f"/librarian upload {manual}", user="bob")
    assert "Indexed manual.pdf: 3 pages" in reply

    reply = await say(app, "/librarian help", user="bob")
    assert "forget <document name or #id>" in reply and "For admins:" in reply
    assert "retention [<N>d|<N>h|off]" in reply
    reply = await say(app, "/librarian help forget", user="bob")
    assert "(the uploader or an admin)" in reply and "uploader of a document or an admin" in reply
    reply = await say(app, "!librarian help retention", user="bob")
    assert "(admins only)" in reply
    reply = await say(app, "/librarian help nosuch", user="bob")
    assert "there is no command 'nosuch'" in reply and "Usage: /librarian help" in reply
    reply = await say(app, "/librarian frobnicate", user="bob")
    assert "I don't know the command 'frobnicate'" in reply

    reply = await say(app, "/librarian docs", user="bob")
    assert "#1 manual.pdf | ready | 3 p. |" in reply and "| console:bob |" in reply

    # ask: answered only to the asker, and kept out of the channel's shared history.
    reply = await say(app, f"/librarian ask {WARRANTY}", user="bob")
    assert reply.startswith("librarian (only you):"), reply
    assert "[1] manual.pdf, p. 2" in reply
    binding = await app.dispatcher.binding(GENERAL)
    assert app.store.recent_messages(binding.id, None) == []
    reply = await say(app, "/librarian ask", user="bob")
    assert "(only you)" in reply and "Usage: /librarian ask <question>" in reply

    reply = await say(app, "/librarian status", user="bob")
    assert "Status of #general (workspace console:general)" in reply
    assert "smollm2 (chat, Q4_1, 93.8 MiB" in reply
    assert "all-minilm-l6-v2 (embedding, F16" in reply
    assert "Memory: " in reply and "MiB resident" in reply
    assert "Team: console:\n" in reply
    assert "Queues: 0 documents of this workspace to index, 0 requests at the models" in reply
    assert "Documents: 1 (1 ready), " in reply and "chunks" in reply
    assert "Retention here: off" in reply
    # Discord shard settings name no shard of a process that does not run Discord.
    app.settings.discord_shard_count, app.settings.discord_shard_ids = 2, [1]
    assert "Discord shards" not in await say(app, "/librarian status", user="bob")
    reply = await say(app, "/librarian status please", user="bob")
    assert "Usage: /librarian status" in reply


async def test_forget_removes_everything_and_only_for_the_uploader_or_an_admin(
    app: App, tmp_path: Path
) -> None:
    manual = make_pdf(tmp_path / "manual.pdf")
    boreal = make_pdf(tmp_path / "boreal.pdf", BOREAL)
    out = await converse(app, [f"/librarian upload {manual}"], user="alice")
    assert "Indexed manual.pdf" in out.getvalue()
    out = await converse(app, [f"/librarian upload {boreal}"], user="bob")
    assert "Indexed boreal.pdf" in out.getvalue()
    # The same bytes in another channel's workspace: one stored file, two documents.
    out = await converse(app, [f"/librarian upload {manual}"], channel="random", user="bob")
    assert "Indexed manual.pdf" in out.getvalue()
    general = (await app.dispatcher.binding(GENERAL)).workspace
    [doc] = app.store.find_documents(general.id, "manual.pdf")
    assert app.files.exists(doc.sha256) and chunk_rows(app, doc.id) > 0

    reply = await say(app, "/librarian forget", user="bob")
    assert "say which document to forget" in reply
    assert "Usage: /librarian forget <document name or #id>" in reply
    reply = await say(app, "/librarian forget nothing-like-this.pdf", user="bob")
    assert "No document matches 'nothing-like-this.pdf'" in reply
    reply = await say(app, "/librarian forget .pdf", user="bob")
    assert "matches 2 documents" in reply

    # bob may not forget alice's document: refused, said why, audited.
    reply = await say(app, "/librarian forget manual.pdf", user="bob")
    assert "Refused: only the uploader of manual.pdf (console:alice) or an admin" in reply
    [refusal] = audit(app, "refused")
    assert refusal["actor"] == "console:bob" and refusal["target"] == "forget"
    assert chunk_rows(app, doc.id) > 0

    # bob forgets his own document; alice (an admin) forgets hers, by id.
    [own] = app.store.find_documents(general.id, "boreal.pdf")
    reply = await say(app, "/librarian forget boreal", user="bob")
    assert f"Forgot #{own.id} boreal.pdf from workspace console:general: 2 chunks" in reply
    assert "this workspace's copy of the file" in reply
    assert not app.files.exists(own.sha256)

    reply = await say(app, f"/librarian forget #{doc.id}", user="alice")
    assert f"Forgot #{doc.id} manual.pdf" in reply
    # The reply says nothing of the other copy (see test_hardening: no cross-team oracle).
    assert "another document" not in reply and "this workspace's copy of the file" in reply
    assert app.files.exists(doc.sha256)  # still used in #random's workspace

    # Gone from the chunk table, from retrieval, from docs and from answers.
    assert chunk_rows(app, doc.id) == 0 and chunk_rows(app, own.id) == 0
    assert app.store.get_document(doc.id) is None
    found = await app.retriever.search(general, [WARRANTY], k=50)
    assert found.hits == []
    out = await converse(app, ["/librarian docs", f"@librarian {WARRANTY}"], user="bob")
    assert "No documents in workspace console:general yet." in out.getvalue()
    assert NOT_FOUND in out.getvalue() and "manual.pdf" not in out.getvalue()
    forgets = audit(app, "forget")
    assert [(e["actor"], e["details"]["file"], e["details"]["file_deleted"]) for e in forgets] == [
        ("console:alice", "manual.pdf", False),
        ("console:bob", "boreal.pdf", True),
    ]

    # The last document with those bytes: now the stored file goes too.
    reply = await say(app, "/librarian forget manual.pdf", channel="random", user="alice")
    assert "Forgot #" in reply and "this workspace's copy of the file" in reply
    assert not app.files.exists(doc.sha256)


async def test_admin_commands_show_set_and_explain_their_usage(app: App, tmp_path: Path) -> None:
    binding = await app.dispatcher.binding(GENERAL)

    # retention
    reply = await say(app, "/librarian retention")
    assert "Retention in #general: off" in reply
    reply = await say(app, "/librarian retention 5x")
    assert "'5x' is not a duration" in reply
    assert "Usage: /librarian retention [<N>d|<N>h|off]" in reply
    reply = await say(app, "/librarian retention 7d")
    assert "Retention in #general is now 7d" in reply and "every 60 minutes" in reply
    assert (await app.dispatcher.binding(GENERAL)).retention_seconds == 7 * 86400
    reply = await say(app, "/librarian retention 12h")
    assert "is now 12h" in reply
    reply = await say(app, "/librarian retention off")
    assert "is now off" in reply
    assert (await app.dispatcher.binding(GENERAL)).retention_seconds is None

    # clear: the history of the channel, now
    out = await converse(app, ["@librarian What is the warranty?", "@librarian And the price?"])
    assert out.getvalue().count(NOT_FOUND) == 2
    assert len(app.store.recent_messages(binding.id, None)) == 4
    reply = await say(app, "/librarian clear")
    assert "Cleared the history of #general: 4 stored messages deleted." in reply
    assert app.store.recent_messages(binding.id, None) == []
    reply = await say(app, "/librarian clear everything")
    assert "clear takes no arguments" in reply

    # workspace: bind, create, share
    reply = await say(app, "/librarian workspace")
    assert "name the workspace for this channel" in reply
    assert "Usage: /librarian workspace <name>" in reply
    reply = await say(app, "/librarian workspace a b")
    assert "a workspace name is one word" in reply
    reply = await say(app, "/librarian workspace support")
    assert "#general now reads from workspace support (new)." in reply
    assert "/librarian workspace own binds back" in reply
    reply = await say(app, "/librarian workspace support", channel="helpdesk")
    assert "#helpdesk now reads from workspace support." in reply
    assert "It shares it with #general." in reply
    a = await app.dispatcher.binding(GENERAL)
    b = await app.dispatcher.binding(ConversationRef("console", "", "helpdesk"))
    assert a.workspace.id == b.workspace.id and a.workspace.name == "support"
    manual = make_pdf(tmp_path / "manual.pdf")
    await say(app, f"/librarian upload {manual}", channel="helpdesk")
    reply = await say(app, "/librarian docs")
    assert "manual.pdf | ready" in reply  # shared through the workspace

    # autoindex
    reply = await say(app, "/librarian autoindex")
    assert "Auto-indexing in #general is on." in reply
    reply = await say(app, "/librarian autoindex maybe")
    assert "'maybe' is neither on nor off" in reply
    assert "Usage: /librarian autoindex [on|off]" in reply
    reply = await say(app, "/librarian autoindex off")
    assert "is off: only /librarian upload indexes files here" in reply
    assert not (await app.dispatcher.binding(GENERAL)).auto_index

    # uploads: who may index files here
    reply = await say(app, "/librarian uploads")
    assert "In #general, everyone may upload files." in reply
    reply = await say(app, "/librarian uploads nobody")
    assert "neither everyone nor admins" in reply
    reply = await say(app, "/librarian uploads admins")
    assert "In #general, admins may now upload files." in reply
    boreal = make_pdf(tmp_path / "boreal.pdf", BOREAL)
    reply = await say(app, f"/librarian upload {boreal}", user="bob")
    assert "Refused: uploading is limited to admins in this channel." in reply
    reply = await say(app, f"/librarian upload {boreal}", user="alice")
    assert "Indexed boreal.pdf" in reply

    # settings
    reply = await say(app, "/librarian settings")
    assert "Settings of workspace support:" in reply
    for line in (f"{'chunk_tokens':<19} 200", f"{'chunk_overlap':<19} 40", f"{'top_k':<19} 4"):
        assert line in reply
    assert f"{'relevance_floor':<19} 0.25" in reply
    reply = await say(app, "/librarian settings top_k 5")
    assert "top_k of workspace support is now 5 (was 4)." in reply
    reply = await say(app, "/librarian settings chunk_size 300")
    assert "chunk_tokens of workspace support is now 300" in reply and "indexed ones keep" in reply
    reply = await say(app, "/librarian settings floor 0.3")
    assert "relevance_floor of workspace support is now 0.3" in reply
    ws = (await app.dispatcher.binding(GENERAL)).workspace
    assert (ws.top_k, ws.chunk_tokens, ws.relevance_floor) == (5, 300, 0.3)
    reply = await say(app, "/librarian settings top_k 500")
    assert "top_k must be between 1 and 50" in reply
    reply = await say(app, "/librarian settings top_k many")
    assert "top_k must be a whole number, not 'many'" in reply
    reply = await say(app, "/librarian settings overlap 300")
    assert "chunk_overlap must be smaller than chunk_tokens (300)" in reply
    reply = await say(app, "/librarian settings colour blue")
    assert "'colour' is not a setting" in reply
    reply = await say(app, "/librarian settings top_k")
    assert "Usage: /librarian settings [<name> <value>]" in reply

    # Every successful admin action is in the audit log, by alice.
    done = [(e["action"], e["actor"]) for e in reversed(audit(app)) if e["action"] != "upload"]
    assert [a for a, _ in done] == (
        ["retention"] * 3
        + ["clear", "workspace", "workspace", "autoindex", "uploads"]
        + ["refused"]
        + ["settings"] * 3
    )
    assert {actor for action, actor in done if action != "refused"} == {"console:alice"}


async def test_non_admins_are_refused_and_the_refusals_audited(app: App, tmp_path: Path) -> None:
    manual = make_pdf(tmp_path / "manual.pdf")
    await say(app, f"/librarian upload {manual}", user="alice")
    lines = [
        "/librarian retention",
        "/librarian retention 1d",
        "/librarian model q8_0",
        "/librarian model",
        "/librarian workspace secrets",
        "/librarian clear",
        "/librarian compare q4_1 q8_0 why?",
        "/librarian autoindex off",
        "/librarian uploads admins",
        "/librarian settings top_k 9",
        "/librarian forget manual.pdf",
    ]
    out = await converse(app, lines, user="bob")
    replies = [line for line in out.getvalue().splitlines() if line.startswith("librarian")]
    assert replies[:10] == ["librarian (only you): Refused: only admins may do that."] * 10
    assert "Refused: only the uploader of manual.pdf (console:alice) or an admin" in replies[10]
    refused = [e for e in reversed(audit(app, "refused"))]
    assert [(e["actor"], e["target"]) for e in refused] == [
        ("console:bob", name)
        for name in (
            "retention",
            "retention",
            "model",
            "model",
            "workspace",
            "clear",
            "compare",
            "autoindex",
            "uploads",
            "settings",
            "forget",
        )
    ]
    assert refused[1]["details"] == {
        "why": "only admins may do that",
        "channel": "console:general",
        # Typed text is free text: the audit log keeps its length and hash only.
        "args": {"length": 2, "sha256": hashlib.sha256(b"1d").hexdigest()},
    }
    # Nothing changed.
    binding = await app.dispatcher.binding(GENERAL)
    assert binding.retention_seconds is None and binding.auto_index
    assert binding.workspace.name == "console:general" and binding.workspace.top_k == 4
    assert binding.workspace.chat_model is None
    assert [d.file_name for d in app.store.list_documents(binding.workspace.id)] == ["manual.pdf"]


async def test_model_and_compare_two_quantization_levels(
    app: App, chat_q8_0: Path, tmp_path: Path
) -> None:
    manual = make_pdf(tmp_path / "manual.pdf")
    await say(app, f"/librarian upload {manual}")

    reply = await say(app, "/librarian model")
    assert "answers with smollm2 (Q4_1, " in reply and "the deployment's default" in reply
    reply = await say(app, "/librarian model q5_1")
    assert "I can't switch to q5_1" in reply
    assert "run `librarian models quantize smollm2 q5_1`" in reply
    reply = await say(app, "/librarian model no-such-model")
    assert "I can't switch to no-such-model: unknown model 'no-such-model'" in reply
    reply = await say(app, "/librarian model q8_0")
    size = f"{chat_q8_0.stat().st_size / 2**20:.1f} MiB"
    assert f"now answers with SmolLM2-135M-Instruct-q8_0 (Q8_0, {size})" in reply
    ws = (await app.dispatcher.binding(GENERAL)).workspace
    assert ws.chat_model == "SmolLM2-135M-Instruct-q8_0"
    out = await converse(app, [f"@librarian {WARRANTY}"])
    assert "[1] manual.pdf, p. 2" in out.getvalue()
    chat = [m for m in app.inference.loaded() if m["role"] == "chat"]
    assert [m["quant"] for m in chat] == ["Q8_0"]
    # Back to the default's own level, found through the deployment's default model.
    reply = await say(app, "/librarian model q4_1")
    assert "now answers with smollm2 (Q4_1" in reply

    # compare: usage errors first, then the same question by both levels.
    reply = await say(app, "/librarian compare q8_0")
    assert "give two quantization levels and a question" in reply
    assert "Usage: /librarian compare <level-a> <level-b> <question>" in reply
    reply = await say(app, "/librarian compare q4_1 q8_0")
    assert "give two quantization levels and a question" in reply
    reply = await say(app, "/librarian compare q4_1 best warranty?")
    assert "'best' is not a quantization level" in reply
    reply = await say(app, "/librarian compare q4_1 q5_1 What is the warranty?")
    assert "I can't compare those" in reply and "librarian models quantize" in reply

    reply = await say(app, f"/librarian compare q4_1 q8_0 {WARRANTY}")
    assert f"Comparing Q4_1 and Q8_0 of smollm2 on: {WARRANTY}" in reply
    first, second = reply.index("[q4_1] smollm2 (Q4_1)"), reply.index("[q8_0] ")
    assert first < second
    assert "SmolLM2-135M-Instruct-q8_0 (Q8_0)" in reply[second:]
    assert reply.count("tokens/s") == 2 and reply.count("memory: model file") == 2
    assert "model file 93.8 MiB" in reply and f"model file {size}" in reply
    assert "[1] manual.pdf, p. 2" in reply
    [entry] = audit(app, "compare")
    assert entry["details"]["levels"] == ["Q4_1", "Q8_0"]
    # compare leaves the channel's history alone
    binding = await app.dispatcher.binding(GENERAL)
    assert len(app.store.recent_messages(binding.id, None)) == 2  # the one question above
    models = [e["details"]["to"] for e in reversed(audit(app, "model"))]
    assert models == ["SmolLM2-135M-Instruct-q8_0", "smollm2"]


TEAM_A_DOCS = ConversationRef("console", "team-a", "docs", None, "#docs")
TEAM_B_DOCS = ConversationRef("console", "team-b", "docs", None, "#docs")


class TeamConsole(ConsoleAdapter):
    """A console channel in one team's space, whose platform roles make some users admins."""

    def __init__(self, *, space: str, role_admins: set[str], **kwargs) -> None:
        super().__init__(**kwargs)
        c = self.conversation
        self.conversation = ConversationRef(c.platform, space, c.channel_id, None, c.channel_name)
        self.role_admins = role_admins

    async def is_admin(self, user, conversation) -> bool:
        return user.user_id in self.role_admins or await super().is_admin(user, conversation)


async def in_team(app: App, team: str, user: str, line: str) -> str:
    out = io.StringIO()
    console = TeamConsole(
        space=team,
        role_admins={"carol"} if team == "team-a" else {"dave"},
        channel="docs",
        user=user,
        admins=app.settings.admins,
        stdin=io.StringIO(line + "\n"),
        stdout=out,
        interactive=False,
    )
    app.dispatcher.add_adapter(console)
    await console.start(app.dispatcher.handle)
    return out.getvalue()


async def test_a_platform_admin_cannot_join_another_teams_workspace(app: App) -> None:
    # carol and dave are admins by their own team's roles, not in LIBRARIAN_ADMINS.
    reply = await in_team(app, "team-a", "carol", "/librarian workspace hr")
    assert "#docs now reads from workspace hr (new)." in reply
    hr_a = (await app.dispatcher.binding(TEAM_A_DOCS)).workspace
    reply = await in_team(app, "team-b", "erin", "/librarian workspace hr")
    assert "Refused: only admins may do that." in reply
    # Names are looked up within the channel's team: team B's "hr" is another workspace.
    reply = await in_team(app, "team-b", "dave", "/librarian workspace hr")
    assert "#docs now reads from workspace hr (new)." in reply
    hr_b = (await app.dispatcher.binding(TEAM_B_DOCS)).workspace
    assert hr_b.id != hr_a.id and hr_b.owner_team == "console:team-b"
    # Naming team A's is for LIBRARIAN_ADMINS only, and refused before any lookup.
    reply = await in_team(app, "team-b", "dave", "/librarian workspace console:team-a/hr")
    assert "names with : or / are reserved" in reply and "Usage: /librarian workspace" in reply
    # A deployment admin may cross, naming the team.
    reply = await in_team(app, "team-b", "alice", "/librarian workspace console:team-a/hr")
    assert "#docs now reads from workspace console:team-a/hr. It shares it with #docs." in reply
    assert (await app.dispatcher.binding(TEAM_B_DOCS)).workspace.id == hr_a.id
    [crossed] = [e for e in audit(app, "workspace") if e["actor"] == "console:alice"]
    assert crossed["details"]["team"] == "console:team-a"
    reply = await in_team(app, "team-b", "alice", "/librarian status")
    assert "Team: console:team-b (the workspace is team console:team-a's)" in reply
    # Back to team B's own "hr", by its plain name.
    reply = await in_team(app, "team-b", "dave", "/librarian workspace hr")
    assert "#docs now reads from workspace hr." in reply
    assert (await app.dispatcher.binding(TEAM_B_DOCS)).workspace.id == hr_b.id
    reply = await in_team(app, "team-b", "dave", "/librarian workspace team-b-notes")
    assert "(new)" in reply
    # The operator's listing names each workspace as LIBRARIAN_ADMINS would type it.
    listing = CliRunner().invoke(retention_cli.app, ["list", "--json"])
    assert listing.exit_code == 0, listing.output
    rows = {r["channel"]: r for r in json.loads(listing.output)}
    assert rows["console:team-a/docs"]["team"] == "console:team-a"
    assert rows["console:team-a/docs"]["workspace_ref"] == "console:team-a/hr"
    assert rows["console:team-b/docs"]["workspace_ref"] == "console:team-b/team-b-notes"
