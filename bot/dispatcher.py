"""Routes core events to their handlers: questions, files, commands and reactions.

Every event runs under a claim in Postgres, by its platform event id
(``bot.delivery``): a platform that redelivers (or two processes that both receive
it) gets one answer, a failed event is tried again, and one left unfinished by a
crash is finished after the restart.  Errors stay inside their event: the user is
told in plain words when the last attempt failed, the log has the details.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.adapter import Adapter
from bot.command_spec import Command, Refused, UsageError, by_name, split_command, suggest
from bot.commands import (
    ChatActions,
    CommandContext,
    CommandServices,
    base_commands,
    describe_refusal,
    history_window,
)
from bot.config import Settings
from bot.delivery import Deliveries, Failure, failure_notice
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
from bot.ingest.filetypes import (
    ExtractionRefused,
    check_size,
    count_label,
    may_download,
    not_downloaded,
)
from bot.ingest.pipeline import IngestService
from bot.knowledge.answer import Answerer
from bot.replies import StreamingReply
from bot.store.events import Claim
from bot.store.records import Binding
from bot.store.repo import Store, WorkspaceDefaults
from bot.teams import Teams

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong while handling that. The details are in the bot's log."


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
        self.adapters: dict[str, Adapter] = {}
        for adapter in (adapters or {}).values():
            self.add_adapter(adapter)
        self.commands = by_name(commands) if commands is not None else base_commands()
        self.defaults = WorkspaceDefaults(
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            top_k=settings.top_k,
            relevance_floor=settings.relevance_floor,
        )
        # Which team a conversation is in: owners of the workspaces its admins create.
        self.teams = Teams.from_settings(settings)
        self.deliveries = Deliveries(
            store,
            attempts=settings.event_attempts,
            retry_seconds=settings.event_retry_seconds,
            lease_seconds=settings.event_lease_seconds,
        )
        # What command handlers use: the parts above, never the dispatcher itself.
        self.services = CommandServices(
            settings=settings,
            store=store,
            ingestion=ingest,
            answerer=answerer,
            registry=self.registry,
            defaults=self.defaults,
            teams=self.teams,
            chat=ChatActions(
                say=self.say,
                is_admin=self.is_admin,
                may_upload=self.may_upload,
                answer=self.answer,
                ingest_file=self.ingest_file,
                local_file_refs=self.local_file_refs,
                private_replies=self.private_replies,
                serves=self.serves,
            ),
            commands=self.commands,
        )

    # -- wiring -----------------------------------------------------------------------------

    def private_replies(self, conversation: ConversationRef) -> bool:
        """Whether the conversation's platform can show a reply to one user only."""
        return self.adapter_for(conversation).private_replies

    def serves(self, platform: str) -> bool:
        """Whether this process runs the adapter of ``platform``."""
        return platform in self.adapters

    def add_adapter(self, adapter: Adapter) -> None:
        """Register an adapter so replies to its platform go through it.

        Raises:
            TypeError: ``adapter`` does not subclass :class:`bot.adapter.Adapter`, so
                the optional features the core calls would be missing.
        """
        if not isinstance(adapter, Adapter):
            raise TypeError(
                f"{type(adapter).__name__} is not a bot.adapter.Adapter: an adapter "
                "subclasses it, which gives its optional features their defaults."
            )
        self.adapters[adapter.platform] = adapter

    def adapter_for(self, conversation: ConversationRef) -> Adapter:
        """The adapter that transports this conversation's messages."""
        return self.adapters[conversation.platform]

    def local_file_refs(
        self, conversation: ConversationRef, paths: list[str]
    ) -> list[FileRef] | None:
        """Local paths as files (the console's upload), or None where a platform has none."""
        return self.adapter_for(conversation).local_file_refs(paths)

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
        if isinstance(event, ReactionAdded) and verdict_of_reaction(event.emoji) is None:
            return  # most reactions are not feedback: not even worth a de-duplication row
        try:
            await self.deliveries.run(event, self._route, self._tell_failure)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error while handling event %s", event.event_id)
            await self._apologise(event.conversation, APOLOGY)

    async def _route(self, event: Event, claim: Claim) -> None:
        if isinstance(event, MessageReceived):
            await self._on_message(event, claim)
        elif isinstance(event, CommandInvoked):
            await self._on_command(event)
        elif isinstance(event, FileShared):
            await self._on_file_shared(event, claim)
        elif isinstance(event, FileRemoved):
            await self._on_file_removed(event)
        elif isinstance(event, ReactionAdded):
            await self._on_reaction(event)

    async def recover(self) -> int:
        """Run again the events that dead processes left in flight, for the platforms this
        process serves; how many were found.  Called at start and every lease period."""
        events = await self.deliveries.stale(sorted(self.adapters))
        if events:
            log.info("finishing %d event(s) left in flight by a stopped process", len(events))
            await asyncio.gather(*(self.handle(event) for event in events))
        return len(events)

    async def recover_forever(self) -> None:
        """``recover`` now and then every lease period (a background task of the app)."""
        while True:
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not look for events left in flight")
            await asyncio.sleep(self.settings.event_lease_seconds)

    async def _tell_failure(self, event: Event, failure: Failure) -> None:
        """Tell the user in plain words that their event could not be handled."""
        told = failure_notice(event, failure)
        if told is not None:
            await self._apologise(
                event.conversation, told.text, reply_to=told.reply_to, private_to=told.private_to
            )

    async def _apologise(
        self,
        conversation: ConversationRef,
        text: str,
        *,
        reply_to: str | None = None,
        private_to: UserRef | None = None,
    ) -> None:
        try:
            await self.say(conversation, text, reply_to=reply_to, private_to=private_to)
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

    async def _on_message(self, event: MessageReceived, claim: Claim | None = None) -> None:
        binding = await self.binding(event.conversation)
        asks = event.mentions_bot and bool(event.text.strip())
        if event.files and binding.auto_index:
            for ref in event.files:
                await self.ingest_file(
                    event.conversation,
                    event.author,
                    ref,
                    binding,
                    reply_to=event.message_id,
                    event=claim,
                    shared=True,
                )
        if asks:
            await self.answer(
                event.conversation,
                event.author,
                event.text,
                binding,
                reply_to=event.message_id,
                event=claim,
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
        event: Claim | None = None,
    ) -> str:
        """Answer a question in its conversation, streaming; return the reply's text.

        ``event``: the claimed event that asked; the stored exchange is recorded as its
        effect, and a re-run of the event (after a failed post, or a crash) posts that
        stored answer again instead of answering a second time.
        """
        adapter = self.adapter_for(conversation)
        reply = StreamingReply(
            adapter, conversation, reply_to=reply_to, private_to=author if private else None
        )
        stored = event.effect.get("answer") if event is not None else None
        if stored and await asyncio.to_thread(self.store.message_exists, stored["message"]):
            posted = await reply.finish(stored["reply"])
            await asyncio.to_thread(self.store.set_message_platform_id, stored["message"], posted)
            return str(stored["reply"])
        await adapter.working(conversation, reply_to, True)
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
                event=event,
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
            await adapter.working(conversation, reply_to, False)

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

    async def _on_file_shared(self, event: FileShared, claim: Claim | None = None) -> None:
        binding = await self.binding(event.conversation)
        if not binding.auto_index:
            return
        await self.ingest_file(
            event.conversation,
            event.author,
            event.file,
            binding,
            reply_to=event.file.message_id,
            event=claim,
            shared=True,
        )

    async def _on_file_removed(self, event: FileRemoved) -> None:
        """A file was deleted on its platform: forget the documents indexed from it.

        Every one when the file is gone; only those of the channel's workspace when one
        share of it was removed (see ``FileRemoved``).
        """
        platform = event.conversation.platform
        workspace_id = None
        if not event.everywhere:
            workspace_id = (await self.binding(event.conversation)).workspace.id
        docs = await asyncio.to_thread(
            self.store.documents_by_source_file, platform, event.file_id, workspace_id
        )
        for doc in docs:
            gone = await self.ingest.forget(doc.id, history_window(self.answerer))
            if gone is None:
                continue  # forgotten meanwhile
            doc, chunks, bytes_deleted = gone.document, gone.chunks, gone.bytes_deleted
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
        event: Claim | None = None,
        shared: bool = False,
    ) -> None:
        """Download, queue and index a shared file, telling the channel how it went.

        Every way a file arrives (the upload command, a share auto-indexed, a file on a
        message) comes through here, so the channel's upload policy is checked here:
        a share by someone who may not upload is left alone (and not downloaded).

        ``shared``: the file was shared without a command.  It is then downloaded only
        if its name or media type is of a kind Librarian reads (``may_download``, the
        rule adapters filter by); otherwise the channel is told why, and nothing is
        fetched.  A file given to ``upload`` is judged by its bytes, as a renamed file
        is still what its bytes say.
        """
        if not await self.may_upload(author, conversation, binding):
            log.info(
                "not indexing %s in %s: uploading is limited to admins there",
                ref.file_id,
                conversation.key,
            )
            return
        if shared and not may_download(ref.name, ref.media_type):
            log.info("not downloading %s in %s: not a kind it reads", ref.file_id, conversation.key)
            refused = describe_refusal(not_downloaded(ref.name))
            await self.say(conversation, refused, reply_to=reply_to)
            return
        # An earlier attempt of this event queued the file: wait for it, tell how it went.
        queued = event.effect.get(f"document:{ref.file_id}") if event is not None else None
        if queued is not None:
            document_id = int(queued)
        else:
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
                    event=event,  # the queued document is recorded as the event's effect
                )
            except ExtractionRefused as refused:
                await self.say(conversation, describe_refusal(refused), reply_to=reply_to)
                return
            doc = submitted.document
            if not submitted.created and doc.status == "ready":
                already = f"as #{doc.id} {doc.file_name}"
                await self.say(
                    conversation,
                    f"{ref.name} is already indexed in this workspace ({already}).",
                    reply_to=reply_to,
                )
                return
            document_id = doc.id
            await asyncio.to_thread(
                self.store.audit,
                author.qualified,
                "upload",
                f"document:{doc.id}",
                {"file": ref.name, "workspace": binding.workspace.name},
            )
        try:
            done = await self.ingest.wait(document_id)
        except LookupError:
            await self.say(
                conversation,
                f"{ref.name} was forgotten before it finished indexing.",
                reply_to=reply_to,
            )
            return
        if done.status == "ready":
            pages = count_label(done.media_type, done.page_count or 0)
            await self.say(
                conversation,
                f"Indexed {done.file_name}: {pages}, {done.chunk_count} chunks."
                + (f" Note: {done.error}" if done.error else ""),
                reply_to=reply_to,
            )
        else:
            await self.say(conversation, f"I can't index that: {done.error}", reply_to=reply_to)

    # -- commands ---------------------------------------------------------------------------

    async def _on_command(self, event: CommandInvoked) -> None:
        name, raw = split_command(event.text)
        binding = await self.binding(event.conversation)
        command = self.commands.get(name)
        if command is None:
            meant = suggest(self.commands, name)
            hint = f" Did you mean /librarian {meant}?" if meant else ""
            await self.say(
                event.conversation,
                f"I don't know the command '{name}'.{hint} Type /librarian help for the list.",
                reply_to=event.message_id,
                private_to=event.author,
            )
            return
        ctx = CommandContext(event, binding, self.services, command, raw)
        # Only admin commands ask the platform whether the author is an admin.
        by_admin = command.admin and await self.is_admin(event.author, event.conversation)
        try:
            await command.handler(ctx, **command.arguments_for(raw, by_admin=by_admin))
        except Refused as exc:
            await ctx.refuse(name, str(exc))
        except UsageError as exc:
            await ctx.reply(f"{exc}. Usage: /librarian {command.usage}", private=True)

    def describe(self) -> dict[str, Any]:
        """Small facts for status output."""
        return {"adapters": sorted(self.adapters), "commands": sorted(self.commands)}
