"""The `/librarian` command set: one parser and one set of handlers for every platform.

One unit although long (over 600 lines): it is the command set, each handler under
its declaration (``bot.command_spec``), and ``COMMANDS`` lists them in help's order;
the shared pieces (context, services, settings rules) serve all of them.

Adapters turn a slash command, or a message starting with ``/librarian`` or
``!librarian``, into a ``CommandInvoked``; the dispatcher parses it with the command's
declaration, which refuses non-admins an admin command (said and audited) and turns
what was typed into the handler's arguments, and runs the handler.  A
handler raises ``UsageError`` for wrong arguments (the dispatcher replies with the
command's usage line), refuses through ``CommandContext.refuse`` (said and audited),
and audits the admin actions that succeed.

Handlers get what they use on their context (``CommandServices``: settings, store,
ingestion, answerer, model registry, and the conversation actions the dispatcher
owns because they go through adapters), never the dispatcher itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.command_spec import (
    FILE,
    Command,
    UsageError,
    argument,
    by_name,
    command,
    help_for,
    help_list,
    words,
)
from bot.config import Settings, describe_discord_shards
from bot.errors import LibrarianError
from bot.events import CommandInvoked
from bot.feedback import rate_latest, verdict_of_word
from bot.inference.pool import describe_servers
from bot.ingest.filetypes import ExtractionRefused, count_label
from bot.knowledge.reply import format_citations
from bot.memory import rss_bytes
from bot.retention import DurationError, describe_retention, format_duration, parse_duration
from bot.store.records import Binding, Document, Workspace
from bot.store.repo import NoSuchWorkspace, channel_spec
from bot.supervisor import describe_state, recorded_states
from bot.teams import NO_TEAM, TEAM_SEPARATOR, is_team_part, qualified_workspace

if TYPE_CHECKING:
    from bot.events import ConversationRef, FileRef, UserRef
    from bot.inference.registry import ModelInfo, ModelRegistry
    from bot.ingest.pipeline import IngestService
    from bot.knowledge.answer import Answerer
    from bot.store.repo import Store, WorkspaceDefaults
    from bot.teams import Teams


def fingerprint(text: str) -> dict[str, Any]:
    """What the audit log keeps of free text: its length and hash, never the text."""
    return {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


@dataclass(frozen=True)
class ChatActions:
    """What a command may do in a conversation: the dispatcher's, since adapters carry it."""

    say: Callable[..., Awaitable[str]]  # (conversation, text, *, reply_to, private_to)
    is_admin: Callable[[UserRef, ConversationRef], Awaitable[bool]]
    may_upload: Callable[[UserRef, ConversationRef, Binding], Awaitable[bool]]
    answer: Callable[..., Awaitable[str]]  # (conversation, author, question, binding, ...)
    ingest_file: Callable[..., Awaitable[None]]  # (conversation, author, ref, binding, ...)
    # The console's local paths as files, or None where a platform has no local files.
    local_file_refs: Callable[[ConversationRef, list[str]], list[FileRef] | None]
    # Whether the conversation's platform can show a reply to one user only.
    private_replies: Callable[[ConversationRef], bool]
    # Whether this process runs the adapter of a platform ("discord").
    serves: Callable[[str], bool]


@dataclass(frozen=True)
class CommandServices:
    """The long-lived parts that command handlers use, wired once by the services."""

    settings: Settings
    store: Store
    ingestion: IngestService
    answerer: Answerer
    registry: ModelRegistry
    defaults: WorkspaceDefaults
    teams: Teams
    chat: ChatActions
    commands: Mapping[str, Command]


@dataclass
class CommandContext:
    """What a command handler works with."""

    event: CommandInvoked
    binding: Binding
    services: CommandServices
    command: Command
    raw_args: str

    async def reply(self, text: str, *, private: bool | None = None) -> str:
        """Answer the command in its conversation (privately where supported).

        Private by default when the command is declared private.
        """
        if private is None:
            private = self.command.private
        return await self.services.chat.say(
            self.event.conversation,
            text,
            reply_to=self.event.message_id,
            private_to=self.event.author if private else None,
        )

    async def audit(self, action: str, target: str | None, details: dict[str, Any]) -> None:
        """Record an action that succeeded, by the command's author, in the audit log."""
        await asyncio.to_thread(
            self.services.store.audit,
            self.event.author.qualified,
            action,
            target,
            {"channel": self.channel, **details},
        )

    async def refuse(self, action: str, why: str) -> None:
        """Tell the user a command was refused and why, and audit the refusal."""
        await asyncio.to_thread(
            self.services.store.audit,
            self.event.author.qualified,
            "refused",
            action,
            {
                "why": why,
                "channel": self.channel,
                # What was typed is free text (a question, a file name): only its
                # length and hash are kept.
                "args": fingerprint(self.raw_args),
            },
        )
        await self.reply(f"Refused: {why}.", private=True)

    @property
    def channel(self) -> str:
        """The channel as the CLI and the audit log name it (``console:general``)."""
        c = self.event.conversation
        return channel_spec(c.platform, c.space_id, c.channel_id)

    @property
    def where(self) -> str:
        """The channel as people name it (``#general``)."""
        return self.event.conversation.label


def history_window(answerer: Answerer) -> int:
    """How many turns after an answer go with it when its document is forgotten.

    Answers written with a quoting answer in their history may repeat it: as far back
    as the answerer looks.
    """
    return answerer.history_turns


def _mib(size: int | float | None) -> str:
    return "?" if size is None else f"{size / (1024 * 1024):.1f} MiB"


# -- for everyone ---------------------------------------------------------------------------


@command(synonyms=("commands", "?"))
@argument("command", "A command to explain", optional=True)
async def cmd_help(ctx: CommandContext, command: str | None) -> None:
    """This list, or how to use one command."""
    commands = ctx.services.commands
    if command is None:
        await ctx.reply(help_list(commands))
        return
    name = command.lower().lstrip("/!")
    wanted = commands.get(name)
    if wanted is None:
        raise UsageError(f"there is no command '{name}'; /librarian help lists them")
    await ctx.reply(help_for(wanted))


@command(who="everyone (or admins, see `uploads`)", synonyms=("add", "index", "import"))
@argument("file", "The file to index", kind=FILE, optional=True, rest=True)
async def cmd_upload(ctx: CommandContext, file: str | None) -> None:
    """Index the attached file.

    Admins may limit uploading to admins with /librarian uploads admins.
    """
    chat = ctx.services.chat
    files = list(ctx.event.files)
    if not files and file:
        try:
            paths = words(ctx.raw_args)  # the console's local paths
            files = list(chat.local_file_refs(ctx.event.conversation, paths) or [])
        except FileNotFoundError as exc:
            raise UsageError(f"there is no file {exc.filename or exc}") from None
    if not files:
        raise UsageError("attach a file to the command, or reply to a message that has one")
    if not await chat.may_upload(ctx.event.author, ctx.event.conversation, ctx.binding):
        await ctx.refuse("upload", "uploading is limited to admins in this channel")
        return
    for ref in files:
        await chat.ingest_file(
            ctx.event.conversation,
            ctx.event.author,
            ref,
            ctx.binding,
            reply_to=ctx.event.message_id,
        )


@command(synonyms=("documents", "files", "list", "ls", "sources"))
async def cmd_docs(ctx: CommandContext) -> None:
    """List this workspace's documents."""
    docs = await asyncio.to_thread(ctx.services.store.list_documents, ctx.binding.workspace.id)
    if not docs:
        await ctx.reply(f"No documents in workspace {ctx.binding.workspace.name} yet.")
        return
    lines = [f"Documents in workspace {ctx.binding.workspace.name}:"]
    for d in docs:
        pages = count_label(d.media_type, d.page_count) if d.page_count else "- p."
        if pages.endswith(("page", "pages")):
            pages = f"{d.page_count} p."
        state = d.status if d.status != "failed" else f"failed: {d.error}"
        lines.append(
            f"  #{d.id} {d.file_name} | {state} | {pages} | {d.chunk_count} chunks | "
            f"{d.uploader or '?'} | {d.created_at:%Y-%m-%d}"
        )
    await ctx.reply("\n".join(lines))


def _which(docs: list[Document]) -> str:
    return ", ".join(f"#{d.id} {d.file_name}" for d in docs[:10]) + (
        f" and {len(docs) - 10} more" if len(docs) > 10 else ""
    )


@command(who="the uploader or an admin", synonyms=("delete", "remove", "rm", "del"))
@argument(
    "document",
    "Its name or #id (see /librarian docs)",
    rest=True,
    label="<document name or #id>",
    missing="say which document to forget: its name or its #id from /librarian docs",
)
async def cmd_forget(ctx: CommandContext, document: str) -> None:
    """Remove a document, its chunks and its stored file.

    The uploader of a document or an admin may forget it. The stored file is deleted
    unless another document uses the same bytes.
    """
    wanted = document.removeprefix("#").strip()
    if not wanted:
        raise UsageError("say which document to forget: its name or its #id from /librarian docs")
    services = ctx.services
    store = services.store
    workspace = ctx.binding.workspace
    found = await asyncio.to_thread(store.find_documents, workspace.id, wanted)
    if not found:
        await ctx.reply(
            f"No document matches '{wanted}' in workspace {workspace.name}. "
            "/librarian docs lists them.",
            private=True,
        )
        return
    if len(found) > 1:
        await ctx.reply(
            f"'{wanted}' matches {len(found)} documents: {_which(found)}. "
            "Forget one by its id, e.g. /librarian forget #" + str(found[0].id),
            private=True,
        )
        return
    doc = found[0]
    author = ctx.event.author
    if doc.uploader != author.qualified and not await services.chat.is_admin(
        author, ctx.event.conversation
    ):
        await ctx.refuse(
            "forget",
            f"only the uploader of {doc.file_name} ({doc.uploader or 'unknown'}) or an admin "
            "may forget it",
        )
        return
    gone = await services.ingestion.forget(doc.id, history_window(services.answerer))
    if gone is None:
        await ctx.reply(f"#{doc.id} {doc.file_name} was already forgotten.", private=True)
        return
    doc, chunks, bytes_deleted = gone.document, gone.chunks, gone.bytes_deleted
    await ctx.audit(
        "forget",
        f"document:{doc.id}",
        {
            "file": doc.file_name,
            "workspace": workspace.name,
            "chunks": chunks,
            "file_deleted": bytes_deleted,
            "uploader": doc.uploader,
        },
    )
    # One reply whatever happened to the stored bytes: saying they were kept "because
    # another document uses them" would tell anyone holding a file whether another
    # team has the same one (the audit log, for the operator, has file_deleted).
    plural = "chunk" if chunks == 1 else "chunks"
    await ctx.reply(
        f"Forgot #{doc.id} {doc.file_name} from workspace {workspace.name}: "
        f"{chunks} {plural} and their vectors removed, with the stored answers that quoted "
        "it and this workspace's copy of the file. No search can return it any more."
    )


@command(private=True, synonyms=("question", "query"))
@argument(
    "question",
    "Your question about the documents",
    rest=True,
    missing="ask what? Write the question after the command",
)
async def cmd_ask(ctx: CommandContext, question: str) -> None:
    """Answer a question privately (only you see it, where the platform allows).

    Private questions and answers are not kept in the channel's history.
    """
    # A platform where every message is seen by the whole room (Matrix) cannot answer
    # privately: say so, rather than answer for everyone what was asked as private.
    if not ctx.services.chat.private_replies(ctx.event.conversation):
        await ctx.reply(NO_PRIVATE_ANSWER)
        return
    await ctx.services.chat.answer(
        ctx.event.conversation,
        ctx.event.author,
        question,
        ctx.binding,
        reply_to=ctx.event.message_id,
        private=True,
    )


NO_PRIVATE_ANSWER = (
    "I can't answer privately here: everyone in this room sees every message I send. "
    "Mention me to ask in the room (everyone here will see the answer)."
)
NO_ANSWER_TO_RATE = "There is no answer of mine in this conversation to rate."


_SAY_VERDICT = "say good or bad, then a note if you like"


@command(private=True, synonyms=("rate", "vote"))
@argument(
    "verdict",
    "good or bad",
    choices=("good", "bad"),
    normalize=verdict_of_word,
    missing=_SAY_VERDICT,
    invalid=_SAY_VERDICT,
)
@argument("note", "What was right or wrong (optional)", optional=True, rest=True)
async def cmd_feedback(ctx: CommandContext, verdict: str, note: str | None) -> None:
    """Rate my latest answer here (a 👍 or 👎 on an answer does the same).

    Rates the latest answer in this thread, or in the channel outside threads. Rating
    again replaces your verdict. Feedback is kept with the channel's history and
    deleted with it (retention, clear).
    """
    recorded = await rate_latest(
        ctx.services.store, ctx.event.conversation, ctx.event.author, verdict, note or None
    )
    await ctx.reply(NO_ANSWER_TO_RATE if recorded is None else recorded.describe())


@command(synonyms=("info", "health", "stats"))
async def cmd_status(ctx: CommandContext) -> None:
    """Models, memory, queues, documents and retention."""
    services = ctx.services
    store = services.store
    workspace = ctx.binding.workspace
    inference = services.answerer.inference
    loaded = inference.loaded()
    # What other teams do is theirs: a platform's failure reasons (which may name their
    # channels or files) and the documents they are indexing are shown only to
    # LIBRARIAN_ADMINS; everyone else sees this workspace's counts and each platform's
    # state in one word.
    deployment_admin = ctx.event.author.qualified in services.settings.admins
    totals, ingest_here = await asyncio.gather(
        asyncio.to_thread(store.workspace_totals, workspace.id),
        asyncio.to_thread(store.ingest_queue_depth, workspace.id),
    )
    ingest_all = await asyncio.to_thread(store.ingest_queue_depth) if deployment_admin else None
    no_team = await asyncio.to_thread(store.workspaces_of_no_team) if deployment_admin else []
    lines = [f"Status of {ctx.where} (workspace {workspace.name}):"]
    team = services.teams.team_of(ctx.event.conversation)
    owner = workspace.owner_team
    lines.append(
        f"  Team: {team}"
        + (f" (the workspace is team {owner}'s)" if owner and owner != team else "")
    )
    if loaded:
        models = "; ".join(
            f"{m['name']} ({m['role']}, {m.get('quant') or '?'}, {_mib(m.get('size_bytes'))}, "
            f"queue {m['queue_depth']}, served {m['served']})"
            for m in loaded
        )
    else:
        models = "none yet (models load on first use)"
    lines.append(f"  Models loaded: {models}")
    if servers := [b for b in inference.backends() if not b["backend"].startswith("local:")]:
        lines.append(f"  Inference servers: {describe_servers(servers)}")
    chat_model = workspace.chat_model or f"{services.settings.chat_model} (default)"
    lines.append(f"  Chat model of this workspace: {chat_model}")
    lines.append(f"  Memory: {_mib(rss_bytes())} resident (this bot process)")
    waiting = sum(int(m["queue_depth"]) for m in loaded)
    queued = f"{ingest_here} document{'s' if ingest_here != 1 else ''} of this workspace"
    if ingest_all is not None:
        queued += f" ({ingest_all} in all)"
    lines.append(
        f"  Queues: {queued} to index, {waiting} request{'s' if waiting != 1 else ''} at the models"
    )
    lines.append(
        f"  Documents: {totals['documents']} ({totals['ready']} ready), {totals['chunks']} chunks"
    )
    lines.append(f"  Retention here: {describe_retention(ctx.binding.retention_seconds)}")
    if no_team:
        lines.append(
            f"  Workspaces of no team: {', '.join(ws.name for ws in no_team)} (bind with "
            f"/librarian workspace {qualified_workspace(None, '<name>')})"
        )
    # The shards the settings name are this process's only if it runs Discord at all.
    shards = services.settings.discord_shards() if services.chat.serves("discord") else None
    if shards is not None:
        lines.append(f"  Discord shards of this process: {describe_discord_shards(shards)}")
    platforms = await asyncio.to_thread(recorded_states, store)
    if platforms:
        lines.append(
            "  Platforms: "
            + "; ".join(
                f"{name} {describe_state(e, reason=deployment_admin)}"
                for name, e in sorted(platforms.items())
            )
        )
    await ctx.reply("\n".join(lines))


# -- for admins -----------------------------------------------------------------------------


@command(admin=True, too_many="give one duration, like 7d, 12h or off")
@argument("duration", "Like 7d, 12h, or off", optional=True, label="<N>d|<N>h|off")
async def cmd_retention(ctx: CommandContext, duration: str | None) -> None:
    """Show or set how long this channel's history is kept.

    Messages older than the retention are deleted by a job that runs every
    LIBRARIAN_RETENTION_INTERVAL_MINUTES (60 by default). off keeps history.
    """
    binding = ctx.binding
    if duration is None:
        await ctx.reply(
            f"Retention in {ctx.where}: {describe_retention(binding.retention_seconds)}."
        )
        return
    try:
        seconds = parse_duration(duration)
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    await asyncio.to_thread(
        ctx.services.store.update_binding, binding.id, retention_seconds=seconds
    )
    await ctx.audit(
        "retention",
        ctx.channel,
        {
            "from": format_duration(binding.retention_seconds),
            "to": format_duration(seconds),
            "seconds": seconds,
        },
    )
    every = ctx.services.settings.retention_interval_minutes
    if seconds is None:
        text = f"Retention in {ctx.where} is now off: its conversation history is kept."
    else:
        text = (
            f"Retention in {ctx.where} is now {format_duration(seconds)}: stored messages "
            f"older than that are deleted by the retention job (it runs every {every:g} "
            "minutes)."
        )
    await ctx.reply(text)


@command(admin=True, synonyms=("reset", "wipe", "purge"))
async def cmd_clear(ctx: CommandContext) -> None:
    """Delete this channel's (or thread's) history now."""
    thread = ctx.event.conversation.thread_id
    removed, verdicts = await asyncio.to_thread(
        ctx.services.store.clear_history, ctx.binding.id, thread
    )
    scope = f"this thread of {ctx.where}" if thread else ctx.where
    await ctx.audit(
        "clear", ctx.channel, {"thread": thread, "messages": removed, "feedback": verdicts}
    )
    plural = "message" if removed == 1 else "messages"
    text = f"Cleared the history of {scope}: {removed} stored {plural} deleted"
    if verdicts:
        text += f", and {verdicts} verdict{'s' if verdicts != 1 else ''} on answers"
    await ctx.reply(text + ".")


# ":" and "/" are reserved: a channel's own workspace is named after the channel
# (``discord:<guild>/<channel>``), and a typed name must never look like one.
_WORKSPACE_NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)
#: ``/librarian workspace own`` binds a channel back to its own workspace.
OWN_WORKSPACE = "own"


def workspace_ref(ws: Workspace, teams: tuple[str, ...]) -> str:
    """How ``workspace`` names ``ws`` from a channel of ``teams``.

    Its name within its own team; ``<team>/<name>`` for another team's named workspace
    and ``no-team/<name>`` for one of no team, the forms only LIBRARIAN_ADMINS may type.
    """
    if ws.own or ws.owner_team in teams:
        return ws.name
    return qualified_workspace(ws.owner_team, ws.name)


def _split_workspace_name(name: str, *, deployment_admin: bool) -> tuple[str | None, str]:
    """(team or None, name) from what was typed; raises UsageError for a bad name.

    A name is looked up within the channel's team.  Only LIBRARIAN_ADMINS may name
    another team's, as ``<team>/<name>`` (``slack:T0123/finance``), or one of no team,
    as ``no-team/<name>``; to anyone else a name with ``:`` or ``/`` is refused before
    anything is looked up, so the reply never depends on what another team has.
    """
    team: str | None = None
    if ":" in name or TEAM_SEPARATOR in name:
        team, _, name = name.rpartition(TEAM_SEPARATOR)
        if not deployment_admin or not is_team_part(team):
            raise UsageError(
                "names with : or / are reserved: a channel's own workspace is "
                f"/librarian workspace {OWN_WORKSPACE}, and only an admin listed in "
                "LIBRARIAN_ADMINS may name another team's workspace, as <team>/<name>, "
                f"or one of no team, as {qualified_workspace(None, '<name>')}"
            )
    if len(name) > 64 or not set(name) <= _WORKSPACE_NAME_CHARS or not name:
        raise UsageError("a workspace name is up to 64 letters, digits and - _ .")
    return team, name


@command(admin=True, too_many="a workspace name is one word (letters, digits, - _ .)")
@argument(
    "name",
    "The workspace's name (created if new)",
    missing="name the workspace for this channel (/librarian status shows its current one)",
)
async def cmd_workspace(ctx: CommandContext, name: str) -> None:
    """Bind this channel to a workspace of its team (created if new).

    Several channels of one team may share a workspace and so its documents; another
    team's workspace of the same name is another workspace. `workspace own` binds the
    channel back to its own. Names with : or / are reserved. Only LIBRARIAN_ADMINS
    may bind to another team's workspace, named <team>/<name>, or to one of no team
    (made before teams were recorded), named no-team/<name>.
    """
    services = ctx.services
    store = services.store
    conv = ctx.event.conversation
    deployment_admin = ctx.event.author.qualified in services.settings.admins
    in_team, name = _split_workspace_name(name, deployment_admin=deployment_admin)
    teams = services.teams.teams_of(conv)
    before = ctx.binding.workspace
    own = in_team is None and name.lower() == OWN_WORKSPACE
    target_teams = (in_team,) if in_team is not None else teams
    if (own and before.own) or (
        not own
        and not before.own
        and before.name == name
        and (before.owner_team or NO_TEAM) in target_teams
    ):
        await ctx.reply(f"{ctx.where} already reads from workspace {before.name}.")
        return
    if own:
        binding, created = await asyncio.to_thread(
            store.bind_own,
            conv.platform,
            conv.space_id,
            conv.channel_id,
            services.defaults,
            conv.channel_name,
            services.teams.team_of(conv),
        )
    else:
        # Workspaces are the boundary between teams: a name is looked up only among
        # the workspaces of the channel's team (one of a Slack team, Discord guild,
        # Matrix room), and a new one is made for that team, so an admin by a
        # platform's roles never reaches, nor learns of, another team's workspace.
        # Only LIBRARIAN_ADMINS cross, by naming the team.
        try:
            binding, created = await asyncio.to_thread(
                store.bind,
                conv.platform,
                conv.space_id,
                conv.channel_id,
                name,
                services.defaults,
                conv.channel_name,
                teams=teams,
                in_team=in_team,
            )
        except NoSuchWorkspace as exc:
            raise UsageError(str(exc)) from None
    ws = binding.workspace
    channels = await asyncio.to_thread(store.channels_of_workspace, ws.id)
    others = [b.channel_name or b.channel_id for b in channels if b.id != binding.id]
    await ctx.audit(
        "workspace",
        ctx.channel,
        {
            "from": before.name,
            "to": ws.name,
            "team": ws.owner_team,
            "created": created,
            "workspace_id": ws.id,
        },
    )
    text = f"{ctx.where} now reads from workspace {workspace_ref(ws, teams)}"
    if own:
        text += " (its own"
        text += ", new)." if created else ")."
    else:
        text += " (new)." if created else "."
    if others:
        text += f" It shares it with {', '.join(others)}."
    back = OWN_WORKSPACE if before.own else workspace_ref(before, teams)
    text += (
        f" The documents of {before.name} stay there: "
        f"/librarian workspace {back} binds back to them."
    )
    await ctx.reply(text)


def _model_label(info: ModelInfo) -> str:
    return f"{info.name} ({info.quant}, {_mib(info.size_bytes)})"


def _stored_ref(info: ModelInfo) -> str:
    """What to store as the workspace's chat model: a name the registry finds again."""
    return str(info.path) if info.source == "file" else info.name


REMOTE_PREFIX = "remote:"  # as bot.inference.service reads a workspace's chat model


def _is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def _is_level(text: str) -> bool:
    from bot.inference.levels import normalize_level

    try:
        normalize_level(text)
    except LibrarianError:
        return False
    return True


def _resolve_level(services: CommandServices, workspace_model: str | None, level: str) -> ModelInfo:
    """The ``level`` version of the workspace's chat model (blocking).

    Tried against the workspace's model, then the deployment's default model, so that
    a workspace switched to q8_0 can switch back to the default's own level.
    """
    registry = services.registry
    refs = [r for r in (workspace_model, services.settings.chat_model) if r]
    first_error: LibrarianError | None = None
    for ref in dict.fromkeys(refs):
        try:
            base = registry.resolve(ref, "chat")
            return registry.resolve_level(base, level)
        except LibrarianError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


@command(admin=True, synonyms=("models", "llm"))
@argument(
    "model",
    "A model the registry knows, a level like q8_0, or default",
    optional=True,
    rest=True,
    label="<model>|<level>|default",
)
async def cmd_model(ctx: CommandContext, model: str | None) -> None:
    """Show or switch the workspace's chat model.

    A level like q8_0 picks that quantization of the current model; make it first
    with `librarian models quantize`. Models are named as the registry knows them
    (`librarian models list`); remote servers by the names in
    LIBRARIAN_REMOTE_MODELS. Paths and addresses are not accepted here.
    """
    services = ctx.services
    workspace = ctx.binding.workspace
    current = workspace.chat_model or services.settings.chat_model
    if model is None:
        if _is_url(current):
            shown = "a remote model (configured by the operator)"
        elif current.startswith(REMOTE_PREFIX):
            shown = f"the remote model {current.removeprefix(REMOTE_PREFIX)}"
        else:
            try:
                info = await asyncio.to_thread(services.registry.resolve, current, "chat")
                shown = _model_label(info)
            except LibrarianError as exc:
                shown = f"{current} (not usable: {exc})"
        default = "" if workspace.chat_model else ", the deployment's default"
        await ctx.reply(f"Workspace {workspace.name} answers with {shown}{default}.")
        return
    wanted = model
    if wanted.lower() == "default":
        await asyncio.to_thread(services.store.update_workspace, workspace.id, chat_model=None)
        await ctx.audit(
            "model",
            f"workspace:{workspace.name}",
            {"from": workspace.chat_model, "to": None},
        )
        await ctx.reply(
            f"Workspace {workspace.name} now answers with the default model "
            f"({services.settings.chat_model})."
        )
        return
    remotes = services.settings.remote_models
    if wanted in remotes:
        # A server the operator named in LIBRARIAN_REMOTE_MODELS: stored by name, so the
        # address stays in configuration (and changing it there moves every workspace).
        ref = REMOTE_PREFIX + wanted
        await asyncio.to_thread(services.store.update_workspace, workspace.id, chat_model=ref)
        await ctx.audit(
            "model", f"workspace:{workspace.name}", {"from": workspace.chat_model, "to": ref}
        )
        await ctx.reply(f"Workspace {workspace.name} now answers with the remote model {wanted}.")
        return
    if "://" in wanted:
        # An address typed in chat would send the workspace's questions and documents
        # wherever a platform admin likes: only configured servers, by name.
        names = ", ".join(sorted(remotes)) or "none are configured"
        await ctx.reply(
            f"I can't switch to an address typed here: remote servers are named by the "
            f"operator in LIBRARIAN_REMOTE_MODELS (configured: {names}).",
            private=True,
        )
        return
    try:
        if _is_level(wanted):
            info = await asyncio.to_thread(_resolve_level, services, workspace.chat_model, wanted)
        else:
            # Known models only: never a path on the host.
            info = await asyncio.to_thread(services.registry.resolve_known, wanted, "chat")
    except LibrarianError as exc:
        await ctx.reply(f"I can't switch to {wanted}: {exc}", private=True)
        return
    ref = _stored_ref(info)
    await asyncio.to_thread(services.store.update_workspace, workspace.id, chat_model=ref)
    await ctx.audit(
        "model",
        f"workspace:{workspace.name}",
        {"from": workspace.chat_model, "to": ref, "quant": info.quant},
    )
    await ctx.reply(f"Workspace {workspace.name} now answers with {_model_label(info)}.")


_TWO_LEVELS = "give two quantization levels and a question"


@command(admin=True)
@argument("level_a", "Like q4_0", missing=_TWO_LEVELS)
@argument("level_b", "Like q8_0", missing=_TWO_LEVELS)
@argument("question", "The question", rest=True, missing=_TWO_LEVELS)
async def cmd_compare(ctx: CommandContext, level_a: str, level_b: str, question: str) -> None:
    """Answer with two quantization levels side by side."""
    for level in (level_a, level_b):
        if not _is_level(level):
            raise UsageError(f"'{level}' is not a quantization level (like q4_0, q8_0, q4_K_M)")
    services = ctx.services
    workspace = ctx.binding.workspace
    try:
        infos = [
            await asyncio.to_thread(_resolve_level, services, workspace.chat_model, level)
            for level in (level_a, level_b)
        ]
    except LibrarianError as exc:
        await ctx.reply(f"I can't compare those: {exc}", private=True)
        return
    if infos[0].path == infos[1].path:
        raise UsageError(f"{level_a} and {level_b} are the same model file; give two levels")
    await ctx.reply(
        f"Comparing {infos[0].quant} and {infos[1].quant} of {infos[0].name} on: {question}"
    )
    conv = ctx.event.conversation
    sections: list[str] = []
    sources = None
    for level, info in zip((level_a, level_b), infos, strict=True):
        started = time.perf_counter()
        answer = await services.answerer.answer(
            ctx.binding,
            conv.thread_id,
            question,
            author=ctx.event.author.qualified,
            conversation_key=f"compare:{conv.key}",
            model_override=info,
            remember=False,
        )
        if not answer.found:
            await ctx.reply(f"{answer.body}\n(No model was asked, so there is nothing to compare.)")
            return
        seconds = time.perf_counter() - started
        t = answer.timings
        sections.append(
            f"[{level}] {info.name} ({info.quant}): {t.get('tokens_per_s', 0):.1f} tokens/s, "
            f"first token {t.get('first_token_ms', 0):.0f} ms, {seconds:.1f} s in all; "
            f"memory: model file {_mib(info.size_bytes)}, "
            f"bot process {_mib(rss_bytes())} resident\n{answer.body}"
        )
        sources = sources or answer.sources
    text = "\n\n".join(sections)
    if sources:
        text += "\n\n" + format_citations(sources)
    await ctx.audit(
        "compare",
        f"workspace:{workspace.name}",
        {"levels": [i.quant for i in infos], "question": fingerprint(question)},
    )
    await ctx.reply(text)


_ON_OFF = {"on": "on", "yes": "on", "true": "on", "off": "off", "no": "off", "false": "off"}


@command(admin=True)
@argument(
    "state",
    "on or off",
    choices=("on", "off"),
    normalize=lambda word: _ON_OFF.get(word.lower()),
    optional=True,
    invalid="'{value}' is neither on nor off",
)
async def cmd_autoindex(ctx: CommandContext, state: str | None) -> None:
    """Index files shared in this channel without a command."""
    binding = ctx.binding
    if state is None:
        shown = "on" if binding.auto_index else "off"
        await ctx.reply(f"Auto-indexing in {ctx.where} is {shown}.")
        return
    value = state == "on"
    await asyncio.to_thread(ctx.services.store.update_binding, binding.id, auto_index=value)
    await ctx.audit("autoindex", ctx.channel, {"from": binding.auto_index, "to": value})
    if value:
        text = f"Auto-indexing in {ctx.where} is on: files shared here are indexed."
    else:
        text = f"Auto-indexing in {ctx.where} is off: only /librarian upload indexes files here."
    await ctx.reply(text)


@command(admin=True)
@argument(
    "policy",
    "everyone or admins",
    choices=("everyone", "admins"),
    optional=True,
    invalid="'{value}' is neither everyone nor admins",
)
async def cmd_uploads(ctx: CommandContext, policy: str | None) -> None:
    """Who may upload files in this channel."""
    binding = ctx.binding
    if policy is None:
        await ctx.reply(f"In {ctx.where}, {binding.upload_policy} may upload files.")
        return
    await asyncio.to_thread(ctx.services.store.update_binding, binding.id, upload_policy=policy)
    await ctx.audit("uploads", ctx.channel, {"from": binding.upload_policy, "to": policy})
    await ctx.reply(f"In {ctx.where}, {policy} may now upload files.")


@dataclass(frozen=True)
class _Setting:
    """A workspace setting as the command shows it; its type and bounds are Settings'."""

    label: str
    note: str = ""

    @staticmethod
    def bounds(key: str) -> tuple[type, float | None, float | None]:
        """The setting's type and inclusive bounds, as ``bot.config.Settings`` declares them."""
        field = Settings.model_fields[key]
        low = high = None
        for rule in field.metadata:
            low = getattr(rule, "ge", low)
            high = getattr(rule, "le", high)
        kind = field.annotation if field.annotation in (int, float) else str
        return kind, low, high


_NEW_CHUNKS = "documents indexed from now on use it; indexed ones keep their chunks"
_SETTINGS = {
    "chunk_tokens": _Setting("chunk size (tokens)", _NEW_CHUNKS),
    "chunk_overlap": _Setting("chunk overlap (tokens)", _NEW_CHUNKS),
    "top_k": _Setting("top-k (chunks retrieved)"),
    "relevance_floor": _Setting("relevance floor (cosine)"),
    "evidence_coverage": _Setting(
        "share of the question's rare-term weight the evidence must hold"
    ),
    "evidence_similarity": _Setting("similarity the best evidence must reach (cosine)"),
}
_SETTING_ALIASES = {
    "chunk_size": "chunk_tokens",
    "size": "chunk_tokens",
    "chunk": "chunk_tokens",
    "overlap": "chunk_overlap",
    "k": "top_k",
    "topk": "top_k",
    "floor": "relevance_floor",
    "relevance": "relevance_floor",
}


def _setting_name(word: str) -> str | None:
    key = word.lower().replace("-", "_")
    key = _SETTING_ALIASES.get(key, key)
    return key if key in _SETTINGS else None


@command(admin=True, synonyms=("config", "set", "options"))
@argument(
    "name",
    "The setting",
    choices=tuple(_SETTINGS),
    normalize=_setting_name,
    optional=True,
    label="<name>",
    invalid="'{value}' is not a setting: use one of " + ", ".join(_SETTINGS),
)
@argument(
    "value",
    "The new value",
    optional=True,
    with_previous=True,
    missing="give a setting's name and its new value, e.g. settings top_k 5",
)
async def cmd_settings(ctx: CommandContext, name: str | None, value: str | None) -> None:
    """Show or change chunk size, overlap, top-k, relevance floor and evidence thresholds."""
    workspace = ctx.binding.workspace
    if name is None or value is None:
        lines = [f"Settings of workspace {workspace.name}:"]
        for key, setting in _SETTINGS.items():
            shown = getattr(workspace, key)
            if shown is None:  # not set for this workspace: the deployment's default
                shown = getattr(ctx.services.settings, key)
            lines.append(f"  {key:<19} {shown!s:<8} {setting.label}")
        lines.append("Change one with /librarian settings <name> <value>, e.g. settings top_k 5.")
        await ctx.reply("\n".join(lines))
        return
    key, setting = name, _SETTINGS[name]
    kind, low, high = _Setting.bounds(key)
    try:
        new = kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{key} must be {what}, not '{value}'") from None
    if (low is not None and new < low) or (high is not None and new > high):
        raise UsageError(f"{key} must be between {low:g} and {high:g}")
    if key == "chunk_overlap" and new >= workspace.chunk_tokens:
        raise UsageError(
            f"chunk_overlap must be smaller than chunk_tokens ({workspace.chunk_tokens})"
        )
    if key == "chunk_tokens" and new <= workspace.chunk_overlap:
        raise UsageError(
            f"chunk_tokens must be larger than chunk_overlap ({workspace.chunk_overlap})"
        )
    before = getattr(workspace, key)
    if before is None:
        before = getattr(ctx.services.settings, key)
    await asyncio.to_thread(ctx.services.store.update_workspace, workspace.id, **{key: new})
    await ctx.audit(
        "settings",
        f"workspace:{workspace.name}",
        {"setting": key, "from": before, "to": new},
    )
    text = f"{key} of workspace {workspace.name} is now {new} (was {before})"
    text += f": {setting.note}." if setting.note else "."
    await ctx.reply(text)


#: Every command, in the order `help` lists them (then the admins' in theirs).
COMMANDS: tuple[Command, ...] = (
    cmd_help,
    cmd_ask,
    cmd_feedback,
    cmd_upload,
    cmd_docs,
    cmd_forget,
    cmd_status,
    cmd_retention,
    cmd_clear,
    cmd_workspace,
    cmd_model,
    cmd_compare,
    cmd_autoindex,
    cmd_uploads,
    cmd_settings,
)


def base_commands() -> Mapping[str, Command]:
    """Every command by name, in the order `help` lists them."""
    return by_name(COMMANDS)


def describe_refusal(exc: ExtractionRefused) -> str:
    """A refusal as told to the channel."""
    return f"I can't index that: {exc.message}"
