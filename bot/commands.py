"""The `/librarian` command set: one parser and one set of handlers for every platform.

Adapters turn a slash command, or a message starting with ``/librarian`` or
``!librarian``, into a ``CommandInvoked``; the dispatcher parses it here, checks
``Command.admin`` (refusing and auditing non-admins), and runs the handler.  A
handler raises ``UsageError`` for wrong arguments (the dispatcher replies with the
command's usage line), refuses through ``Dispatcher.refuse`` (said and audited),
and audits the admin actions that succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.errors import LibrarianError
from bot.events import CommandInvoked
from bot.feedback import rate_latest, verdict_of_word
from bot.ingest.filetypes import ExtractionRefused, count_label
from bot.knowledge.answer import format_citations
from bot.retention import DurationError, describe_retention, format_duration, parse_duration
from bot.store.records import Binding, Document
from bot.store.repo import ForeignWorkspace, channel_spec

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher
    from bot.inference.registry import ModelInfo


def fingerprint(text: str) -> dict[str, Any]:
    """What the audit log keeps of free text: its length and hash, never the text."""
    return {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


class UsageError(Exception):
    """A command was given wrong arguments; the message says how to use it."""


@dataclass
class CommandContext:
    """What a command handler works with."""

    event: CommandInvoked
    binding: Binding
    dispatcher: Dispatcher
    args: list[str]
    raw_args: str

    async def reply(self, text: str, *, private: bool = False) -> str:
        """Answer the command in its conversation (privately where supported)."""
        return await self.dispatcher.say(
            self.event.conversation,
            text,
            reply_to=self.event.message_id,
            private_to=self.event.author if private else None,
        )

    async def audit(self, action: str, target: str | None, details: dict[str, Any]) -> None:
        """Record an action that succeeded, by the command's author, in the audit log."""
        await asyncio.to_thread(
            self.dispatcher.store.audit,
            self.event.author.qualified,
            action,
            target,
            {"channel": self.channel, **details},
        )

    @property
    def channel(self) -> str:
        """The channel as the CLI and the audit log name it (``console:general``)."""
        c = self.event.conversation
        return channel_spec(c.platform, c.space_id, c.channel_id)

    @property
    def where(self) -> str:
        """The channel as people name it (``#general``)."""
        return self.event.conversation.label


Handler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    """A command's name, who may run it, its usage line, help text and handler."""

    name: str
    usage: str
    summary: str
    handler: Handler
    admin: bool = False
    details: str = ""  # shown by `help <command>`


def parse(text: str) -> tuple[str, list[str], str]:
    """Split '/librarian upload "my file.pdf"' (prefix already removed) into name and args."""
    stripped = text.strip()
    if not stripped:
        return "help", [], ""
    name, _, rest = stripped.partition(" ")
    try:
        args = shlex.split(rest)
    except ValueError:
        args = rest.split()
    return name.lower(), args, rest.strip()


def _one_argument(ctx: CommandContext) -> str:
    """Everything after the command as one value ('forget my report.pdf' works unquoted)."""
    return " ".join(ctx.args).strip()


def _no_arguments(ctx: CommandContext, name: str) -> None:
    if ctx.args:
        raise UsageError(f"{name} takes no arguments")


def _mib(size: int | float | None) -> str:
    return "?" if size is None else f"{size / (1024 * 1024):.1f} MiB"


def process_rss_bytes() -> int:
    """Resident memory of this process now (Linux), or its peak where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # ru_maxrss: kilobytes on Linux, bytes on macOS.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# -- for everyone ---------------------------------------------------------------------------


async def cmd_help(ctx: CommandContext) -> None:
    """List the commands, or explain one."""
    commands = ctx.dispatcher.commands
    if ctx.args:
        name = ctx.args[0].lower().lstrip("/!")
        command = commands.get(name)
        if command is None:
            raise UsageError(f"there is no command '{name}'; /librarian help lists them")
        who = "admins only" if command.admin else "everyone"
        text = f"/librarian {command.usage} ({who})\n{command.summary}"
        if command.details:
            text += f"\n{command.details}"
        await ctx.reply(text)
        return
    lines = ["Librarian commands (type /librarian <command>, or !librarian <command>):"]
    for admin in (False, True):
        if admin:
            lines.append("For admins:")
        for command in commands.values():
            if command.admin == admin:
                lines.append(f"  {command.usage:<34} {command.summary}")
    lines.append("Ask a question by mentioning me: @librarian <question>")
    lines.append("/librarian help <command> explains one command.")
    await ctx.reply("\n".join(lines))


async def cmd_upload(ctx: CommandContext) -> None:
    """Index the attached file(s), or (console) a local path."""
    dispatcher = ctx.dispatcher
    files = list(ctx.event.files)
    if not files and ctx.args:
        local = getattr(dispatcher.adapter_for(ctx.event.conversation), "local_file_refs", None)
        if local is not None:
            try:
                files = list(local(ctx.args))
            except FileNotFoundError as exc:
                raise UsageError(f"there is no file {exc.filename or exc}") from None
    if not files:
        raise UsageError("attach a file to the command, or reply to a message that has one")
    if not await dispatcher.may_upload(ctx.event.author, ctx.event.conversation, ctx.binding):
        await dispatcher.refuse(ctx, "upload", "uploading is limited to admins in this channel")
        return
    for ref in files:
        await dispatcher.ingest_file(
            ctx.event.conversation,
            ctx.event.author,
            ref,
            ctx.binding,
            reply_to=ctx.event.message_id,
        )


async def cmd_docs(ctx: CommandContext) -> None:
    """List this workspace's documents."""
    docs = await asyncio.to_thread(ctx.dispatcher.store.list_documents, ctx.binding.workspace.id)
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


async def forget_stored_document(
    dispatcher: Dispatcher, document_id: int
) -> tuple[Document, int, bool, bool] | None:
    """Delete a document and its chunks, and its stored bytes unless another document uses them.

    Returns the document, the chunks removed, whether the bytes are still used elsewhere
    and whether they were deleted; None when the document was already gone.
    """
    store = dispatcher.store
    # Answers written with a quoting answer in their history may repeat it: as far
    # back as the answerer looks.
    window = int(getattr(dispatcher.answerer, "history_turns", 12))
    gone = await asyncio.to_thread(store.forget_document, document_id, window)
    if gone is None:
        return None
    doc, chunks, still_used = gone
    bytes_deleted = False
    # Checked again just before deleting: the same bytes may have been shared meanwhile.
    if not still_used and not await asyncio.to_thread(store.sha_in_use, doc.sha256):
        bytes_deleted = await asyncio.to_thread(dispatcher.ingest.files.delete, doc.sha256)
    return doc, chunks, still_used, bytes_deleted


async def cmd_forget(ctx: CommandContext) -> None:
    """Remove a document, its chunks and vectors, and its stored bytes if unused elsewhere."""
    wanted = _one_argument(ctx).removeprefix("#").strip()
    if not wanted:
        raise UsageError("say which document to forget: its name or its #id from /librarian docs")
    dispatcher = ctx.dispatcher
    store = dispatcher.store
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
    if doc.uploader != author.qualified and not await dispatcher.is_admin(
        author, ctx.event.conversation
    ):
        await dispatcher.refuse(
            ctx,
            "forget",
            f"only the uploader of {doc.file_name} ({doc.uploader or 'unknown'}) or an admin "
            "may forget it",
        )
        return
    gone = await forget_stored_document(dispatcher, doc.id)
    if gone is None:
        await ctx.reply(f"#{doc.id} {doc.file_name} was already forgotten.", private=True)
        return
    doc, chunks, still_used, bytes_deleted = gone
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
    if bytes_deleted:
        stored = "its stored file was deleted"
    elif still_used:
        stored = "its stored file is kept because another document uses the same bytes"
    else:
        stored = "there was no stored file left to delete"
    plural = "chunk" if chunks == 1 else "chunks"
    await ctx.reply(
        f"Forgot #{doc.id} {doc.file_name} from workspace {workspace.name}: "
        f"{chunks} {plural} and their vectors removed, and the stored answers that quoted "
        f"it, {stored}. No search can return it any more."
    )


async def cmd_ask(ctx: CommandContext) -> None:
    """Answer a question privately (ephemeral where the platform has it)."""
    question = ctx.raw_args.strip()
    if not question:
        raise UsageError("ask what? Write the question after the command")
    await ctx.dispatcher.answer(
        ctx.event.conversation,
        ctx.event.author,
        question,
        ctx.binding,
        reply_to=ctx.event.message_id,
        private=True,
    )


NO_ANSWER_TO_RATE = "There is no answer of mine in this conversation to rate."


async def cmd_feedback(ctx: CommandContext) -> None:
    """Rate the latest answer of this conversation (thread, or channel) good or bad."""
    word, _, note = ctx.raw_args.strip().partition(" ")
    verdict = verdict_of_word(word) if word else None
    if verdict is None:
        raise UsageError("say good or bad, then a note if you like")
    recorded = await rate_latest(
        ctx.dispatcher.store,
        ctx.event.conversation,
        ctx.event.author,
        verdict,
        note.strip() or None,
    )
    if recorded is None:
        await ctx.reply(NO_ANSWER_TO_RATE, private=True)
        return
    await ctx.reply(recorded.describe(), private=True)


async def cmd_status(ctx: CommandContext) -> None:
    """Models loaded, memory, queues, documents and this channel's retention."""
    _no_arguments(ctx, "status")
    dispatcher = ctx.dispatcher
    store = dispatcher.store
    workspace = ctx.binding.workspace
    inference = dispatcher.answerer.inference
    loaded = inference.loaded()
    totals, ingest_depth = await asyncio.gather(
        asyncio.to_thread(store.workspace_totals, workspace.id),
        asyncio.to_thread(store.ingest_queue_depth),
    )
    lines = [f"Status of {ctx.where} (workspace {workspace.name}):"]
    if loaded:
        models = "; ".join(
            f"{m['name']} ({m['role']}, {m.get('quant') or '?'}, {_mib(m.get('size_bytes'))}, "
            f"queue {m['queue_depth']}, served {m['served']})"
            for m in loaded
        )
    else:
        models = "none yet (models load on first use)"
    lines.append(f"  Models loaded: {models}")
    chat_model = workspace.chat_model or f"{dispatcher.settings.chat_model} (default)"
    lines.append(f"  Chat model of this workspace: {chat_model}")
    lines.append(f"  Memory: {_mib(process_rss_bytes())} resident (this bot process)")
    waiting = sum(int(m["queue_depth"]) for m in loaded)
    lines.append(
        f"  Queues: {ingest_depth} document{'s' if ingest_depth != 1 else ''} to index, "
        f"{waiting} request{'s' if waiting != 1 else ''} at the models"
    )
    lines.append(
        f"  Documents: {totals['documents']} ({totals['ready']} ready), {totals['chunks']} chunks"
    )
    lines.append(f"  Retention here: {describe_retention(ctx.binding.retention_seconds)}")
    await ctx.reply("\n".join(lines))


# -- for admins -----------------------------------------------------------------------------


async def cmd_retention(ctx: CommandContext) -> None:
    """Show or set how long this channel's conversation history is kept."""
    binding = ctx.binding
    if not ctx.args:
        await ctx.reply(
            f"Retention in {ctx.where}: {describe_retention(binding.retention_seconds)}."
        )
        return
    if len(ctx.args) > 1:
        raise UsageError("give one duration, like 7d, 12h or off")
    try:
        seconds = parse_duration(ctx.args[0])
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    await asyncio.to_thread(
        ctx.dispatcher.store.update_binding, binding.id, retention_seconds=seconds
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
    every = ctx.dispatcher.settings.retention_interval_minutes
    if seconds is None:
        text = f"Retention in {ctx.where} is now off: its conversation history is kept."
    else:
        text = (
            f"Retention in {ctx.where} is now {format_duration(seconds)}: stored messages "
            f"older than that are deleted by the retention job (it runs every {every:g} "
            "minutes)."
        )
    await ctx.reply(text)


async def cmd_clear(ctx: CommandContext) -> None:
    """Delete this channel's (or, in a thread, this thread's) stored history now."""
    _no_arguments(ctx, "clear")
    thread = ctx.event.conversation.thread_id
    removed, verdicts = await asyncio.to_thread(
        ctx.dispatcher.store.clear_history, ctx.binding.id, thread
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


async def cmd_workspace(ctx: CommandContext) -> None:
    """Bind this channel to a named workspace of its team (created if new), or its own."""
    if not ctx.args:
        raise UsageError(
            f"name the workspace for {ctx.where} (it is {ctx.binding.workspace.name} now)"
        )
    if len(ctx.args) > 1:
        raise UsageError("a workspace name is one word (letters, digits, - _ .)")
    name = ctx.args[0]
    if ":" in name or "/" in name:
        raise UsageError(
            "names with : or / are reserved for channels' own workspaces; "
            f"/librarian workspace {OWN_WORKSPACE} binds {ctx.where} back to its own"
        )
    if len(name) > 64 or not set(name) <= _WORKSPACE_NAME_CHARS:
        raise UsageError("a workspace name is up to 64 letters, digits and - _ .")
    dispatcher = ctx.dispatcher
    store = dispatcher.store
    conv = ctx.event.conversation
    before = ctx.binding.workspace
    own = name.lower() == OWN_WORKSPACE
    if (own and before.own) or (not own and before.name == name and not before.own):
        await ctx.reply(f"{ctx.where} already reads from workspace {before.name}.")
        return
    if own:
        binding, created = await asyncio.to_thread(
            store.bind_own,
            conv.platform,
            conv.space_id,
            conv.channel_id,
            dispatcher.defaults,
            conv.channel_name,
            dispatcher.teams.team_of(conv),
        )
    else:
        # Workspaces are the boundary between teams: an admin by a platform's roles (of
        # one Slack team, Discord guild, Matrix room) may bind only to a workspace their
        # team owns, or make a new one for it; only LIBRARIAN_ADMINS may cross.  The
        # owner stays when the last channel leaves, so an orphan is no one's to take.
        try:
            binding, created = await asyncio.to_thread(
                store.bind,
                conv.platform,
                conv.space_id,
                conv.channel_id,
                name,
                dispatcher.defaults,
                conv.channel_name,
                teams=dispatcher.teams.teams_of(conv),
                may_cross=ctx.event.author.qualified in dispatcher.settings.admins,
            )
        except ForeignWorkspace:
            await dispatcher.refuse(
                ctx,
                "workspace",
                f"workspace {name} is used by channels of another team or belongs to one; "
                "only an admin listed in LIBRARIAN_ADMINS may bind a channel to it",
            )
            return
    ws = binding.workspace
    channels = await asyncio.to_thread(store.channels_of_workspace, ws.id)
    others = [b.channel_name or b.channel_id for b in channels if b.id != binding.id]
    await ctx.audit(
        "workspace",
        ctx.channel,
        {"from": before.name, "to": ws.name, "created": created, "workspace_id": ws.id},
    )
    text = f"{ctx.where} now reads from workspace {ws.name}"
    if own:
        text += " (its own"
        text += ", new)." if created else ")."
    else:
        text += " (new)." if created else "."
    if others:
        text += f" It shares it with {', '.join(others)}."
    back = OWN_WORKSPACE if before.own else before.name
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
    from bot.inference.quantize import normalize_level

    try:
        normalize_level(text)
    except LibrarianError:
        return False
    return True


def _resolve_level(dispatcher: Dispatcher, workspace_model: str | None, level: str) -> ModelInfo:
    """The ``level`` version of the workspace's chat model (blocking).

    Tried against the workspace's model, then the deployment's default model, so that
    a workspace switched to q8_0 can switch back to the default's own level.
    """
    registry = dispatcher.registry
    refs = [r for r in (workspace_model, dispatcher.settings.chat_model) if r]
    first_error: LibrarianError | None = None
    for ref in dict.fromkeys(refs):
        try:
            base = registry.resolve(ref, "chat")
            return registry.resolve_level(base, level)
        except LibrarianError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


async def cmd_model(ctx: CommandContext) -> None:
    """Show or switch the workspace's chat model (a reference or a quantization level)."""
    dispatcher = ctx.dispatcher
    workspace = ctx.binding.workspace
    current = workspace.chat_model or dispatcher.settings.chat_model
    if not ctx.args:
        if _is_url(current):
            shown = "a remote model (configured by the operator)"
        elif current.startswith(REMOTE_PREFIX):
            shown = f"the remote model {current.removeprefix(REMOTE_PREFIX)}"
        else:
            try:
                info = await asyncio.to_thread(dispatcher.registry.resolve, current, "chat")
                shown = _model_label(info)
            except LibrarianError as exc:
                shown = f"{current} (not usable: {exc})"
        default = "" if workspace.chat_model else ", the deployment's default"
        await ctx.reply(f"Workspace {workspace.name} answers with {shown}{default}.")
        return
    wanted = _one_argument(ctx)
    if wanted.lower() == "default":
        await asyncio.to_thread(dispatcher.store.update_workspace, workspace.id, chat_model=None)
        await ctx.audit(
            "model",
            f"workspace:{workspace.name}",
            {"from": workspace.chat_model, "to": None},
        )
        await ctx.reply(
            f"Workspace {workspace.name} now answers with the default model "
            f"({dispatcher.settings.chat_model})."
        )
        return
    remotes = dispatcher.settings.remote_models
    if wanted in remotes:
        # A server the operator named in LIBRARIAN_REMOTE_MODELS: stored by name, so the
        # address stays in configuration (and changing it there moves every workspace).
        ref = REMOTE_PREFIX + wanted
        await asyncio.to_thread(dispatcher.store.update_workspace, workspace.id, chat_model=ref)
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
            info = await asyncio.to_thread(_resolve_level, dispatcher, workspace.chat_model, wanted)
        else:
            # Known models only: never a path on the host.
            info = await asyncio.to_thread(dispatcher.registry.resolve_known, wanted, "chat")
    except LibrarianError as exc:
        await ctx.reply(f"I can't switch to {wanted}: {exc}", private=True)
        return
    ref = _stored_ref(info)
    await asyncio.to_thread(dispatcher.store.update_workspace, workspace.id, chat_model=ref)
    await ctx.audit(
        "model",
        f"workspace:{workspace.name}",
        {"from": workspace.chat_model, "to": ref, "quant": info.quant},
    )
    await ctx.reply(f"Workspace {workspace.name} now answers with {_model_label(info)}.")


async def cmd_compare(ctx: CommandContext) -> None:
    """The same question answered by two quantization levels of the workspace's model."""
    parts = ctx.raw_args.split(maxsplit=2)
    if len(parts) < 3 or not parts[2].strip():
        raise UsageError("give two quantization levels and a question")
    level_a, level_b, question = parts[0], parts[1], parts[2].strip()
    for level in (level_a, level_b):
        if not _is_level(level):
            raise UsageError(f"'{level}' is not a quantization level (like q4_0, q8_0, q4_K_M)")
    dispatcher = ctx.dispatcher
    workspace = ctx.binding.workspace
    try:
        infos = [
            await asyncio.to_thread(_resolve_level, dispatcher, workspace.chat_model, level)
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
        answer = await dispatcher.answerer.answer(
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
            f"bot process {_mib(process_rss_bytes())} resident\n{answer.body}"
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


_ON = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


async def cmd_autoindex(ctx: CommandContext) -> None:
    """Show or set whether files shared in this channel are indexed without a command."""
    binding = ctx.binding
    if not ctx.args:
        state = "on" if binding.auto_index else "off"
        await ctx.reply(f"Auto-indexing in {ctx.where} is {state}.")
        return
    if len(ctx.args) > 1 or ctx.args[0].lower() not in _ON:
        raise UsageError(f"'{ctx.raw_args}' is neither on nor off")
    value = _ON[ctx.args[0].lower()]
    await asyncio.to_thread(ctx.dispatcher.store.update_binding, binding.id, auto_index=value)
    await ctx.audit("autoindex", ctx.channel, {"from": binding.auto_index, "to": value})
    if value:
        text = f"Auto-indexing in {ctx.where} is on: files shared here are indexed."
    else:
        text = f"Auto-indexing in {ctx.where} is off: only /librarian upload indexes files here."
    await ctx.reply(text)


_POLICIES = ("everyone", "admins")


async def cmd_uploads(ctx: CommandContext) -> None:
    """Show or set who may upload (index files) in this channel."""
    binding = ctx.binding
    if not ctx.args:
        await ctx.reply(f"In {ctx.where}, {binding.upload_policy} may upload files.")
        return
    policy = ctx.args[0].lower()
    if len(ctx.args) > 1 or policy not in _POLICIES:
        raise UsageError(f"'{ctx.raw_args}' is neither everyone nor admins")
    await asyncio.to_thread(ctx.dispatcher.store.update_binding, binding.id, upload_policy=policy)
    await ctx.audit("uploads", ctx.channel, {"from": binding.upload_policy, "to": policy})
    await ctx.reply(f"In {ctx.where}, {policy} may now upload files.")


@dataclass(frozen=True)
class _Setting:
    column: str
    label: str
    kind: type
    low: float
    high: float
    note: str = ""


_SETTINGS = {
    "chunk_tokens": _Setting(
        "chunk_tokens",
        "chunk size (tokens)",
        int,
        32,
        4096,
        "documents indexed from now on use it; indexed ones keep their chunks",
    ),
    "chunk_overlap": _Setting(
        "chunk_overlap",
        "chunk overlap (tokens)",
        int,
        0,
        4095,
        "documents indexed from now on use it; indexed ones keep their chunks",
    ),
    "top_k": _Setting("top_k", "top-k (chunks retrieved)", int, 1, 50),
    "relevance_floor": _Setting("relevance_floor", "relevance floor (cosine)", float, 0.0, 1.0),
    "evidence_coverage": _Setting(
        "evidence_coverage",
        "share of the question's rare-term weight the evidence must hold",
        float,
        0.0,
        1.0,
    ),
    "evidence_similarity": _Setting(
        "evidence_similarity", "similarity the best evidence must reach (cosine)", float, 0.0, 1.0
    ),
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


async def cmd_settings(ctx: CommandContext) -> None:
    """Show the workspace's retrieval settings, or change one."""
    workspace = ctx.binding.workspace
    if not ctx.args:
        lines = [f"Settings of workspace {workspace.name}:"]
        for key, setting in _SETTINGS.items():
            value = getattr(workspace, key)
            if value is None:  # not set for this workspace: the deployment's default
                value = getattr(ctx.dispatcher.settings, key)
            lines.append(f"  {key:<19} {value!s:<8} {setting.label}")
        lines.append("Change one with /librarian settings <name> <value>, e.g. settings top_k 5.")
        await ctx.reply("\n".join(lines))
        return
    if len(ctx.args) != 2:
        raise UsageError("give a setting's name and its new value, e.g. settings top_k 5")
    raw_key, raw_value = ctx.args
    key = raw_key.lower().replace("-", "_")
    key = _SETTING_ALIASES.get(key, key)
    setting = _SETTINGS.get(key)
    if setting is None:
        raise UsageError(f"'{raw_key}' is not a setting: use one of {', '.join(_SETTINGS)}")
    try:
        value = setting.kind(raw_value)
    except ValueError:
        kind = "a whole number" if setting.kind is int else "a number"
        raise UsageError(f"{key} must be {kind}, not '{raw_value}'") from None
    if not setting.low <= value <= setting.high:
        raise UsageError(f"{key} must be between {setting.low:g} and {setting.high:g}")
    if key == "chunk_overlap" and value >= workspace.chunk_tokens:
        raise UsageError(
            f"chunk_overlap must be smaller than chunk_tokens ({workspace.chunk_tokens})"
        )
    if key == "chunk_tokens" and value <= workspace.chunk_overlap:
        raise UsageError(
            f"chunk_tokens must be larger than chunk_overlap ({workspace.chunk_overlap})"
        )
    before = getattr(workspace, key)
    if before is None:
        before = getattr(ctx.dispatcher.settings, key)
    await asyncio.to_thread(
        ctx.dispatcher.store.update_workspace, workspace.id, **{setting.column: value}
    )
    await ctx.audit(
        "settings",
        f"workspace:{workspace.name}",
        {"setting": key, "from": before, "to": value},
    )
    text = f"{key} of workspace {workspace.name} is now {value} (was {before})"
    text += f": {setting.note}." if setting.note else "."
    await ctx.reply(text)


def base_commands() -> list[Command]:
    """Every command, in the order `help` lists them."""
    return [
        Command("help", "help [command]", "this list, or how to use one command", cmd_help),
        Command(
            "ask",
            "ask <question>",
            "answer a question privately (only you see it, where the platform allows)",
            cmd_ask,
            details="Private questions and answers are not kept in the channel's history.",
        ),
        Command(
            "feedback",
            "feedback good|bad [note]",
            "rate my latest answer here (a 👍 or 👎 on an answer does the same)",
            cmd_feedback,
            details="Rates the latest answer in this thread, or in the channel outside "
            "threads. Rating again replaces your verdict. Feedback is kept with the "
            "channel's history and deleted with it (retention, clear).",
        ),
        Command(
            "upload",
            "upload [file]",
            "index the attached file",
            cmd_upload,
            details="Admins may limit uploading to admins with /librarian uploads admins.",
        ),
        Command("docs", "docs", "list this workspace's documents", cmd_docs),
        Command(
            "forget",
            "forget <document name or #id>",
            "remove a document, its chunks and its stored file",
            cmd_forget,
            details="The uploader of a document or an admin may forget it. "
            "The stored file is deleted unless another document uses the same bytes.",
        ),
        Command(
            "status",
            "status",
            "models, memory, queues, documents and retention",
            cmd_status,
        ),
        Command(
            "retention",
            "retention [<N>d|<N>h|off]",
            "show or set how long this channel's history is kept",
            cmd_retention,
            admin=True,
            details="Messages older than the retention are deleted by a job that runs every "
            "LIBRARIAN_RETENTION_INTERVAL_MINUTES (60 by default). off keeps history.",
        ),
        Command(
            "clear",
            "clear",
            "delete this channel's (or thread's) history now",
            cmd_clear,
            admin=True,
        ),
        Command(
            "workspace",
            "workspace <name>",
            "bind this channel to a workspace (created if new)",
            cmd_workspace,
            admin=True,
            details="Several channels of one team may share a workspace and so its documents. "
            f"`workspace {OWN_WORKSPACE}` binds the channel back to its own workspace. Names "
            "with : or / are reserved. Only LIBRARIAN_ADMINS may bind to another team's.",
        ),
        Command(
            "model",
            "model [<model> | <level> | default]",
            "show or switch the workspace's chat model",
            cmd_model,
            admin=True,
            details="A level like q8_0 picks that quantization of the current model; make it "
            "first with `librarian models quantize`. Models are named as the registry knows "
            "them (`librarian models list`); remote servers by the names in "
            "LIBRARIAN_REMOTE_MODELS. Paths and addresses are not accepted here.",
        ),
        Command(
            "compare",
            "compare <level-a> <level-b> <question>",
            "answer with two quantization levels side by side",
            cmd_compare,
            admin=True,
        ),
        Command(
            "autoindex",
            "autoindex [on|off]",
            "index files shared in this channel without a command",
            cmd_autoindex,
            admin=True,
        ),
        Command(
            "uploads",
            "uploads [everyone|admins]",
            "who may upload files in this channel",
            cmd_uploads,
            admin=True,
        ),
        Command(
            "settings",
            "settings [<name> <value>]",
            "show or change chunk size, overlap, top-k, relevance floor",
            cmd_settings,
            admin=True,
        ),
    ]


def describe_refusal(exc: ExtractionRefused) -> str:
    """A refusal as told to the channel."""
    return f"I can't index that: {exc.message}"
