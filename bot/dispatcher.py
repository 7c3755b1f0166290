"""Routes core events to their handlers: questions, files, commands and reactions.

Every event is de-duplicated by its platform event id in Postgres, so a platform
that redelivers (or two processes that both receive it) answers once.  Errors
stay inside their event: the user gets a short apology, the log the details.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.adapter import Adapter
from bot.commands import (
    Command,
    CommandContext,
    UsageError,
    base_commands,
    describe_refusal,
    fingerprint,
    forget_stored_document,
    parse,
)
from bot.config import Settings
from bot.events import (
    CommandInvoked,
    ConversationRef,
    Event,
    FileRef,
    FileRemoved,
    FileShared,
    MessageReceived,
    OutboundMessage,
    ReactionAdded,
    UserRef,
)
from bot.feedback import rate_message, verdict_of_reaction
from bot.inference.registry import ModelRegistry
from bot.ingest.filetypes import ExtractionRefused, check_size
from bot.ingest.pipeline import IngestService
from bot.knowledge.answer import Answerer
from bot.replies import StreamingReply
from bot.store.database import database_unavailable
from bot.store.records import Binding
from bot.store.repo import Store, WorkspaceDefaults, channel_spec
from bot.teams import Teams

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while handling that. The details are in the bot's log."
DATABASE_AWAY = (
    "Sorry, I can't reach my database right now, so I could not handle that. "
    "Please try again in a minute."
)


class Dispatcher:
    """The core's entry point for events from every adapter."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        answerer: Answerer,
        ingest: IngestService,
        adapters: dict[str, Adapter] | None = None,
        commands: list[Command] | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings
        # Resolves the `model` and `compare` commands' references and levels.
        self.registry = registry or ModelRegistry(settings)
        self.store = store
        self.answerer = answerer
        self.ingest = ingest
        self.adapters: dict[str, Adapter] = dict(adapters or {})
        self.commands: dict[str, Command] = {c.name: c for c in (commands or base_commands())}
        self.defaults = WorkspaceDefaults(
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            top_k=settings.top_k,
            relevance_floor=settings.relevance_floor,
        )
        # Which team a conversation is in: owners of the workspaces its admins create.
        self.teams = Teams.from_settings(settings)

    # -- wiring -----------------------------------------------------------------------------

    def add_adapter(self, adapter: Adapter) -> None:
        """Register an adapter so replies to its platform go through it."""
        self.adapters[adapter.platform] = adapter

    def adapter_for(self, conversation: ConversationRef) -> Adapter:
        """The adapter that transports this conversation's messages."""
        return self.adapters[conversation.platform]

    async def binding(self, conversation: ConversationRef) -> Binding:
        """The binding of the conversation's channel (created on first use)."""
        return await asyncio.to_thread(
            self.store.binding_for,
            conversation.platform,
            conversation.space_id,
            conversation.channel_id,
            self.defaults,
            conversation.channel_name,
            self.teams.team_of(conversation),
        )

    # -- entry point ------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Handle one event from an adapter; never raises for a bad event."""
        conversation = event.conversation
        if isinstance(event, ReactionAdded) and verdict_of_reaction(event.emoji) is None:
            return  # most reactions are not feedback: not even worth a de-duplication row
        try:
            fresh = await asyncio.to_thread(
                self.store.mark_event, conversation.platform, event.event_id
            )
            if not fresh:
                log.info("skipping redelivered event %s", event.event_id)
                return
            if isinstance(event, MessageReceived):
                await self._on_message(event)
            elif isinstance(event, CommandInvoked):
                await self._on_command(event)
            elif isinstance(event, FileShared):
                await self._on_file_shared(event)
            elif isinstance(event, FileRemoved):
                await self._on_file_removed(event)
            elif isinstance(event, ReactionAdded):
                await self._on_reaction(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reply = APOLOGY
            if database_unavailable(exc):
                # An outage passes: one line in the log, a plain word to the user.
                log.warning("database unavailable while handling event %s", event.event_id)
                reply = DATABASE_AWAY
            else:
                log.exception("error while handling event %s", event.event_id)
            try:
                await self.say(conversation, reply)
            except Exception:
                log.exception("could not even apologise in %s", conversation.key)

    async def say(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reply_to: str | None = None,
        private_to: UserRef | None = None,
    ) -> str:
        """Post a message in a conversation."""
        adapter = self.adapter_for(conversation)
        return await adapter.send(
            OutboundMessage(conversation, text, reply_to=reply_to, private_to=private_to)
        )

    # -- questions --------------------------------------------------------------------------

    async def _on_message(self, event: MessageReceived) -> None:
        binding = await self.binding(event.conversation)
        if event.files and binding.auto_index:
            for ref in event.files:
                await self.ingest_file(
                    event.conversation, event.author, ref, binding, reply_to=event.message_id
                )
        if event.mentions_bot and event.text.strip():
            await self.answer(
                event.conversation, event.author, event.text, binding, reply_to=event.message_id
            )

    async def answer(
        self,
        conversation: ConversationRef,
        author: UserRef,
        question: str,
        binding: Binding,
        *,
        reply_to: str | None = None,
        private: bool = False,
    ) -> str:
        """Answer a question in its conversation, streaming; return the reply's text."""
        adapter = self.adapter_for(conversation)
        reply = StreamingReply(
            adapter, conversation, reply_to=reply_to, private_to=author if private else None
        )
        working = getattr(adapter, "working", None)
        if working is not None:
            await working(conversation, reply_to, True)
        try:
            result = await self.answerer.answer(
                binding,
                conversation.thread_id,
                question,
                author=author.qualified,
                conversation_key=conversation.key,
                on_progress=reply.update,
                question_message_id=reply_to,
                # A private question stays private: kept out of the channel's shared history.
                remember=not private,
            )
            # The stored answer learns where it was posted, so that a reaction on that
            # message finds it (bot.feedback): before its final text shows when it was
            # streamed, so that nobody can react to a finished answer not yet findable.
            streamed = reply.message_id
            if result.message_id is not None and streamed is not None:
                await asyncio.to_thread(
                    self.store.set_message_platform_id, result.message_id, streamed
                )
            posted = await reply.finish(result.text)
            if result.message_id is not None and posted != streamed:
                await asyncio.to_thread(
                    self.store.set_message_platform_id, result.message_id, posted
                )
            return result.text
        finally:
            if working is not None:
                await working(conversation, reply_to, False)

    # -- feedback ---------------------------------------------------------------------------

    async def _on_reaction(self, event: ReactionAdded) -> None:
        """A 👍 or 👎 on one of the bot's stored answers records a verdict; silently.

        Reactions on anything else (people's messages, private answers, answers that
        retention has deleted) are ignored.  The bot says nothing back: a reaction is
        a quiet gesture, and a reply to each would be noise in the channel.
        """
        verdict = verdict_of_reaction(event.emoji)
        if verdict is None:
            return
        recorded = await rate_message(
            self.store, event.conversation, event.author, event.message_id, verdict
        )
        if recorded is None:
            log.debug("reaction on %s: not a stored answer", event.message_id)
            return
        log.info(
            "feedback %s by %s on answer %s in %s%s",
            verdict,
            event.author.qualified,
            recorded.answer.id,
            event.conversation.key,
            " (replacing an earlier verdict)" if recorded.replaced else "",
        )

    # -- files ------------------------------------------------------------------------------

    async def _on_file_shared(self, event: FileShared) -> None:
        binding = await self.binding(event.conversation)
        if not binding.auto_index:
            return
        await self.ingest_file(
            event.conversation, event.author, event.file, binding, reply_to=event.file.message_id
        )

    async def _on_file_removed(self, event: FileRemoved) -> None:
        """A file was deleted on its platform: forget every document indexed from it."""
        platform = event.conversation.platform
        docs = await asyncio.to_thread(self.store.documents_by_source_file, platform, event.file_id)
        for doc in docs:
            gone = await forget_stored_document(self, doc.id)
            if gone is None:
                continue  # forgotten meanwhile
            doc, chunks, _still_used, bytes_deleted = gone
            await asyncio.to_thread(
                self.store.audit,
                f"{platform}:file-removed",
                "forget",
                f"document:{doc.id}",
                {
                    "file": doc.file_name,
                    "file_id": event.file_id,
                    "chunks": chunks,
                    "file_deleted": bytes_deleted,
                    "uploader": doc.uploader,
                    "event": event.event_id,
                },
            )
            log.info(
                "forgot document %s (%s): its %s file %s was removed",
                doc.id,
                doc.file_name,
                platform,
                event.file_id,
            )

    async def may_upload(
        self, user: UserRef, conversation: ConversationRef, binding: Binding
    ) -> bool:
        """Uploading is open to everyone unless the channel limits it to admins."""
        if binding.upload_policy == "everyone":
            return True
        return await self.is_admin(user, conversation)

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """A configured admin id, or an admin by the platform's own roles."""
        if user.qualified in self.settings.admins:
            return True
        adapter = self.adapters.get(conversation.platform)
        return bool(adapter and await adapter.is_admin(user, conversation))

    async def ingest_file(
        self,
        conversation: ConversationRef,
        author: UserRef,
        ref: FileRef,
        binding: Binding,
        *,
        reply_to: str | None = None,
    ) -> None:
        """Download, queue and index a shared file, telling the channel how it went.

        Every way a file arrives (the upload command, a share auto-indexed, a file on a
        message) comes through here, so the channel's upload policy is checked here:
        a share by someone who may not upload is left alone (and not downloaded).
        """
        if not await self.may_upload(author, conversation, binding):
            log.info(
                "not indexing %s in %s: uploading is limited to admins there",
                ref.file_id,
                conversation.key,
            )
            return
        try:
            if ref.size is not None:
                check_size(ref.size, self.settings.max_file_mb, ref.name)  # before downloading
            data = await self.adapter_for(conversation).fetch_file(ref)
            submitted = await self.ingest.submit(
                binding.workspace,
                data,
                ref.name,
                media_type=ref.media_type,
                uploader=author.qualified,
                source={
                    "platform": conversation.platform,
                    "space": conversation.space_id,
                    "channel": conversation.label,
                    "message": ref.message_id,
                    "file_id": ref.file_id,
                    "url": ref.permalink,
                },
            )
        except ExtractionRefused as refused:
            await self.say(conversation, describe_refusal(refused), reply_to=reply_to)
            return
        doc = submitted.document
        if not submitted.created and doc.status == "ready":
            await self.say(
                conversation,
                f"{ref.name} is already indexed in this workspace (as #{doc.id} {doc.file_name}).",
                reply_to=reply_to,
            )
            return
        await asyncio.to_thread(
            self.store.audit,
            author.qualified,
            "upload",
            f"document:{doc.id}",
            {"file": ref.name, "workspace": binding.workspace.name},
        )
        try:
            done = await self.ingest.wait(doc.id)
        except LookupError:
            await self.say(
                conversation,
                f"{ref.name} was forgotten before it finished indexing.",
                reply_to=reply_to,
            )
            return
        if done.status == "ready":
            pages = f"{done.page_count} page{'s' if done.page_count != 1 else ''}"
            await self.say(
                conversation,
                f"Indexed {done.file_name}: {pages}, {done.chunk_count} chunks.",
                reply_to=reply_to,
            )
        else:
            await self.say(conversation, f"I can't index that: {done.error}", reply_to=reply_to)

    # -- commands ---------------------------------------------------------------------------

    async def _on_command(self, event: CommandInvoked) -> None:
        name, args, raw = parse(event.text)
        binding = await self.binding(event.conversation)
        command = self.commands.get(name)
        if command is None:
            await self.say(
                event.conversation,
                f"I don't know the command '{name}'. Type /librarian help for the list.",
                reply_to=event.message_id,
                private_to=event.author,
            )
            return
        ctx = CommandContext(event, binding, self, args, raw)
        if command.admin and not await self.is_admin(event.author, event.conversation):
            await self.refuse(ctx, name, "only admins may do that")
            return
        try:
            await command.handler(ctx)
        except UsageError as exc:
            await ctx.reply(f"{exc}. Usage: /librarian {command.usage}", private=True)

    async def refuse(self, ctx: CommandContext, action: str, why: str) -> None:
        """Tell the user a command was refused and why, and audit the refusal."""
        await asyncio.to_thread(
            self.store.audit,
            ctx.event.author.qualified,
            "refused",
            action,
            {
                "why": why,
                "channel": channel_spec(
                    ctx.event.conversation.platform,
                    ctx.event.conversation.space_id,
                    ctx.event.conversation.channel_id,
                ),
                # What was typed is free text (a question, a file name): only its
                # length and hash are kept.
                "args": fingerprint(ctx.raw_args),
            },
        )
        await ctx.reply(f"Refused: {why}.", private=True)

    def describe(self) -> dict[str, Any]:
        """Small facts for status output."""
        return {"adapters": sorted(self.adapters), "commands": sorted(self.commands)}
