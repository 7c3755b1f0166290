"""The Discord adapter: a discord.py client, its slash commands and the adapter protocol.

- A message that mentions the bot, or replies to one of its messages, is a question.
  Its answer goes in a thread started on the question (or in the thread the question
  was asked in), streamed by editing the answer about once a second, and split into
  follow-up messages past Discord's 2,000 characters.  The bot types while it works.
- PDF, text and Markdown attachments are handed to the core, which indexes them when
  the channel's auto-indexing is on; their citations link back to the message.
- ``/librarian <subcommand>`` is an application command group, synced to every guild
  the bot is in.  Every interaction is deferred at once, ephemerally (before anyone
  knows whether it will be refused, and the first follow-up keeps the deferral's
  visibility); the core's private replies are then sent through the interaction's
  follow-up webhook, its public ones posted in the channel.  A message starting with
  ``!librarian`` runs a command too; a private reply to one goes by direct message.
- Admins are members with Manage Server or Manage Channels (or Administrator), on top
  of the ids in LIBRARIAN_ADMINS, which the dispatcher checks.
- Sharding (LIBRARIAN_DISCORD_SHARD_COUNT, LIBRARIAN_DISCORD_SHARD_IDS): discord.py's
  AutoShardedClient runs all shards, or this process's share of them; Discord sends each
  guild's events to one shard, so each question reaches exactly one process.  Nothing
  else changes: replies go through the REST API, which is not sharded.
- Reactions on the bot's messages (``MESSAGE_REACTION_ADD``, the Guild Message
  Reactions intent, not privileged) go to the core as they are; it decides that a
  👍 or 👎 on an answer is feedback.

Rate limits are discord.py's business: it reads Discord's headers and waits; this
adapter sends no request in a loop (edits come at most once a second per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import discord
import yarl
from discord import app_commands

from adapters.base import Tasks, command_text, deliver
from adapters.discord.commands import command_group
from adapters.discord.text import split_message, strip_mentions, thread_name
from bot.adapter import Adapter, EventSink
from bot.command_spec import Command
from bot.errors import ConfigError
from bot.events import (
    CommandInvoked,
    ConversationRef,
    FileRef,
    MessageReceived,
    OutboundMessage,
    ReactionAdded,
    UserRef,
)
from bot.ingest.filetypes import may_download

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
# A typed command's private reply goes by DM; if the user takes no DMs, this instead.
NO_DM = (
    "I can't send you a direct message, and I answer that only privately: "
    "use the /librarian slash command, whose replies only you see."
)
THREAD_ARCHIVE_MINUTES = 1440
# Gateway close codes about sharding (Discord's "Gateway Close Event Codes").
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
_REMEMBERED = 2000  # questions, threads, posted messages and members kept in memory


class _Lru(OrderedDict):
    """A dict that forgets its oldest entries past ``size``."""

    def __init__(self, size: int = _REMEMBERED) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Pending:
    """An interaction the core has not finished answering."""

    interaction: discord.Interaction
    ephemeral: bool  # how it was deferred
    original_used: bool = False  # whether the "thinking" message was replaced or deleted
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Posted:
    """One logical bot message: one or more Discord messages (past 2,000 characters)."""

    channel_id: int | None  # None when posted through an interaction webhook
    interaction: discord.Interaction | None
    ephemeral: bool
    ids: list[int]
    texts: list[str]
    withheld: bool = False  # a notice posted instead of a private text: never edited


class _Handlers:
    """The gateway events the adapter listens to, for either kind of client below."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[call-arg]
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(command_group(adapter.commands, adapter.command))

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter._on_message(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        # Raw: the reacted message need not be in discord.py's cache (max_messages=None).
        await self.adapter._on_reaction(payload)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.adapter._sync_commands(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.adapter._sync_commands(guild)

    async def on_resumed(self) -> None:
        log.info("Discord: gateway session resumed")

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("Discord: shard %d of %d ready", shard_id, self.shard_count or 1)  # type: ignore[attr-defined]


class _Client(_Handlers, discord.Client):
    """One unsharded gateway connection (Discord's shard 0 of 1)."""


class _ShardedClient(_Handlers, discord.AutoShardedClient):
    """Several shards in this process: all of them, or the ids it was given."""


class DiscordAdapter(Adapter):
    """Transports the core's events and messages to and from Discord."""

    platform = "discord"

    def __init__(
        self,
        token: str,
        *,
        commands: Mapping[str, Command],
        api_url: str = DEFAULT_API_URL,
        gateway_url: str = DEFAULT_GATEWAY_URL,
        message_content: bool = True,
        guild_ready_timeout: float = 2.0,
        shard_count: int | Literal["auto"] | None = None,
        shard_ids: Sequence[int] | None = None,
    ) -> None:
        self.token = token
        # None: unsharded; "auto": the count Discord's /gateway/bot recommends; a number:
        # that many shards in the deployment, of which this process runs ``shard_ids``
        # (all when None).  Discord routes a guild's events to shard (guild_id >> 22) %
        # count, so the processes together must run every shard exactly once.
        if shard_ids is not None and not isinstance(shard_count, int):
            raise ValueError("shard ids need a numeric shard count")
        self.shard_count = shard_count
        self.shard_ids = list(shard_ids) if shard_ids is not None else None
        self.commands = commands  # the core's declarations: /librarian's subcommands
        self.api_url = api_url.rstrip("/")
        self.gateway_url = gateway_url
        self.intents = discord.Intents.none()
        self.intents.guilds = True
        self.intents.guild_messages = True
        self.intents.guild_reactions = True  # 👍 / 👎 on answers: feedback
        # Privileged: without it, messages that do not mention the bot arrive without
        # text or attachments (see the README).
        self.intents.message_content = message_content
        self.guild_ready_timeout = guild_ready_timeout
        self.client: _Client | _ShardedClient | None = None
        self._sink: EventSink | None = None
        self._tasks = Tasks(self.platform)
        self._synced: set[int] = set()
        self._questions: _Lru = _Lru()  # question message id -> its text
        self._threads: _Lru = _Lru()  # question message id -> thread id
        self._thread_locks: dict[int, asyncio.Lock] = {}
        self._posted: _Lru = _Lru()  # first message id (str) -> _Posted
        self._members: _Lru = _Lru()  # (guild id, user id) -> discord.Member
        self._fetched_guilds: _Lru = _Lru(100)  # guild id -> discord.Guild of another shard
        self._pending: dict[str, _Pending] = {}  # "interaction-<id>" -> _Pending
        self._typing: dict[str, asyncio.Task] = {}
        self._stopped = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings, commands: Mapping[str, Command]) -> DiscordAdapter:
        """The adapter for LIBRARIAN_DISCORD_TOKEN and the URL settings."""
        assert settings.discord_token is not None
        return cls(
            settings.discord_token.get_secret_value(),
            commands=commands,
            api_url=settings.discord_api_url,
            gateway_url=settings.discord_gateway_url,
            message_content=settings.discord_message_content,
            shard_count=settings.discord_shard_count,
            shard_ids=settings.discord_shard_ids,
        )

    # -- the adapter protocol ---------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Log in, connect to the gateway and deliver events until ``stop``."""
        self._sink = sink
        # discord.py keeps both addresses on classes: one Discord connection per process.
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        options: dict[str, Any] = {
            "intents": self.intents,
            # Answers never ping anyone, whatever the model writes.
            "allowed_mentions": discord.AllowedMentions.none(),
            "guild_ready_timeout": self.guild_ready_timeout,
            "max_messages": None,
        }
        if self.shard_count is None:
            self.client = _Client(self, **options)
        else:
            # "auto" leaves the count to discord.py, which asks GET /gateway/bot.
            count = self.shard_count if isinstance(self.shard_count, int) else None
            self.client = _ShardedClient(
                self, shard_count=count, shard_ids=self.shard_ids, **options
            )
            log.info(
                "Discord: running shards %s of %s",
                ",".join(map(str, self.shard_ids)) if self.shard_ids else "all",
                self.shard_count,
            )
        try:
            async with self.client:
                await self.client.start(self.token, reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error(
                "Discord refused the Message Content intent: enable it in the Developer "
                "Portal (Bot > Privileged Gateway Intents) or set it off (see the README)"
            )
            raise
        except discord.ConnectionClosed as exc:
            refusal = self._shard_refusal(exc.code)
            if refusal is None:
                raise
            raise ConfigError(refusal) from exc
        finally:
            await self._tasks.cancel()
            await self._stop_typing()

    def _shard_refusal(self, code: int) -> str | None:
        """Plain words for Discord's closing a connection over sharding (no retry helps)."""
        if code == SHARDING_REQUIRED:
            return (
                "Discord requires sharding: the bot is in too many servers for one gateway "
                "connection.  Set LIBRARIAN_DISCORD_SHARD_COUNT=auto, or a number of shards "
                "(see the README, Discord > Sharding)"
            )
        if code == INVALID_SHARD:
            ids = ",".join(map(str, self.shard_ids)) if self.shard_ids else "all"
            return (
                f"Discord refused shards {ids} of {self.shard_count}: check "
                "LIBRARIAN_DISCORD_SHARD_COUNT and LIBRARIAN_DISCORD_SHARD_IDS"
            )
        return None

    async def stop(self) -> None:
        """Disconnect from Discord."""
        self._stopped.set()
        if self.client is not None and not self.client.is_closed():
            await self.client.close()

    async def wait_until_ready(self) -> None:
        """Return once the client is connected and has its guilds."""
        while self.client is None:
            await asyncio.sleep(0.01)
        await self.client.wait_until_ready()

    async def send(self, message: OutboundMessage) -> str:
        """Post a message (split past 2,000 characters); return the first part's id."""
        client = self._client()
        parts = split_message(message.text)
        private = message.private_to is not None
        pending = self._pending.get(message.reply_to or "")
        if pending is not None and private:
            ids = [await self._followup(pending, parts[0], private)]
            for part in parts[1:]:
                ids.append(await self._followup(pending, part, private))
            posted = _Posted(None, pending.interaction, private, ids, parts)
        elif private:
            # No interaction to answer privately in (a typed command): a direct message,
            # never the channel.
            assert message.private_to is not None
            posted = await self._direct(message.conversation, message.private_to, parts)
        else:
            channel_id, reference = await self._target(message.conversation, message.reply_to)
            channel = client.get_partial_messageable(channel_id)
            ids = []
            for i, part in enumerate(parts):
                ref = reference if i == 0 else None
                sent = await channel.send(part, reference=ref) if ref else await channel.send(part)
                ids.append(sent.id)
            posted = _Posted(channel_id, None, private, ids, parts)
            if pending is not None:  # a public reply to a command: its "thinking" goes
                await self._drop_thinking(pending)
        self._posted[str(posted.ids[0])] = posted
        return str(posted.ids[0])

    async def _direct(
        self, conversation: ConversationRef, user: UserRef, parts: list[str]
    ) -> _Posted:
        """Post a private text to a user by DM; a notice in the channel if DMs are closed."""
        client = self._client()
        try:
            dm = await client.create_dm(discord.Object(id=int(user.user_id)))
            ids = [(await dm.send(part)).id for part in parts]
            return _Posted(dm.id, None, True, ids, parts)
        except discord.Forbidden:  # 50007: the user takes no DMs from this server
            channel_id, _ = await self._target(conversation, None)
            channel = client.get_partial_messageable(channel_id)
            sent = await channel.send(f"<@{int(user.user_id)}> {NO_DM}")
            return _Posted(channel_id, None, False, [sent.id], [NO_DM], withheld=True)

    async def _drop_thinking(self, pending: _Pending) -> None:
        """Delete an interaction's ephemeral "thinking" message once a public reply is up."""
        async with pending.lock:
            if pending.original_used:
                return
            pending.original_used = True
            with contextlib.suppress(discord.NotFound):
                await pending.interaction.delete_original_response()

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Replace a posted message's text, adding or removing overflow messages."""
        posted: _Posted | None = self._posted.get(message_id)
        if posted is None:
            raise KeyError(f"unknown Discord message {message_id}")
        if posted.withheld:
            return  # the private text it stands for is not shown here
        parts = split_message(text)
        for i, part in enumerate(parts):
            if i < len(posted.ids):
                if posted.texts[i] != part:
                    await self._edit_one(posted, posted.ids[i], part)
                    posted.texts[i] = part
            else:
                posted.ids.append(await self._post_more(posted, part))
                posted.texts.append(part)
        while len(posted.ids) > len(parts):
            extra = posted.ids.pop()
            posted.texts.pop()
            with contextlib.suppress(discord.NotFound):
                await self._delete_one(posted, extra)

    async def fetch_file(self, ref: FileRef) -> bytes:
        """Download an attachment from Discord's CDN."""
        assert ref.url is not None
        return await self._client().http.get_from_cdn(ref.url)

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """Manage Server, Manage Channels or Administrator in the conversation's guild."""
        if not conversation.space_id:
            return False
        client = self._client()
        guild_id, user_id = int(conversation.space_id), int(user.user_id)
        guild = client.get_guild(guild_id) or self._fetched_guilds.get(guild_id)
        if guild is None:
            # A guild of a shard this process does not run (an event another gateway left
            # in flight, recovered here): its roles come from the REST API.
            try:
                guild = await client.fetch_guild(guild_id, with_counts=False)
            except discord.HTTPException:
                return False
            self._fetched_guilds[guild_id] = guild
        member = self._members.get((guild_id, user_id)) or guild.get_member(user_id)
        if member is None:
            try:
                member = await guild.fetch_member(user_id)
            except discord.HTTPException:
                return False
            self._members[(guild_id, user_id)] = member
        perms = member.guild_permissions
        return bool(perms.administrator or perms.manage_guild or perms.manage_channels)

    async def working(
        self, conversation: ConversationRef, message_id: str | None, on: bool
    ) -> None:
        """Show "Librarian is typing..." where the answer will appear, while it is made."""
        if message_id is not None and message_id in self._pending:
            return  # a deferred interaction already shows "Librarian is thinking..."
        key = f"{conversation.key}:{message_id}"
        if not on:
            task = self._typing.pop(key, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            return
        if key in self._typing:
            return
        try:
            channel_id, _ = await self._target(conversation, message_id)
        except discord.HTTPException:
            log.warning("Discord: no channel to type in for %s", conversation.key, exc_info=True)
            return
        channel = self._client().get_partial_messageable(channel_id)

        async def type_until_cancelled() -> None:
            with contextlib.suppress(discord.HTTPException):
                async with channel.typing():  # discord.py renews it every 5 s
                    await asyncio.Event().wait()

        self._typing[key] = asyncio.create_task(type_until_cancelled(), name="discord-typing")

    # -- events from Discord ----------------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        event = self.translate(message)
        if event is not None:
            self._tasks.spawn(self._deliver(event), f"discord-{event.event_id}")

    def translate(self, message: discord.Message) -> MessageReceived | CommandInvoked | None:
        """A core event for a guild message, or None for what the bot ignores."""
        client = self._client()
        me = client.user
        if me is None or message.guild is None or message.author.bot or message.webhook_id:
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        conversation = self._conversation(message.channel, message.guild)
        if conversation is None:
            return None
        if isinstance(message.author, discord.Member):
            self._members[(message.guild.id, message.author.id)] = message.author
        author = self._user(message.author)
        event_id = f"message-{message.id}"
        text = strip_mentions(message.content, me.id)
        command = command_text(text)
        if command is not None:
            return CommandInvoked(
                event_id,
                conversation,
                author,
                command,
                files=tuple(self._file_ref(a, message) for a in message.attachments),
                message_id=str(message.id),
            )
        mentioned = me in message.mentions or self._replies_to_me(message)
        files = tuple(
            self._file_ref(a, message)
            for a in message.attachments
            if may_download(a.filename, a.content_type)
        )
        if not mentioned and not files:
            return None
        if mentioned and text:
            self._questions[message.id] = text
        return MessageReceived(
            event_id,
            conversation,
            author,
            text,
            mentions_bot=mentioned,
            message_id=str(message.id),
            files=files,
        )

    async def _on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        event = await self.translate_reaction(payload)
        if event is not None:
            self._tasks.spawn(self._deliver(event), f"discord-{event.event_id}")

    async def translate_reaction(
        self, payload: discord.RawReactionActionEvent
    ) -> ReactionAdded | None:
        """A core event for a reaction on one of the bot's messages in a guild, else None.

        The bot's own reactions, reactions in direct messages and on other people's
        messages are not for the core.  A reaction in a thread names the thread; the
        conversation is its parent channel (where the answers' history is bound).
        """
        client = self._client()
        me = client.user
        if me is None or payload.guild_id is None or payload.user_id == me.id:
            return None
        if payload.message_author_id is not None and payload.message_author_id != me.id:
            return None
        guild = client.get_guild(payload.guild_id)
        if guild is None:
            return None
        channel: Any = client.get_channel(payload.channel_id)
        if channel is None:  # a thread discord.py has not cached (e.g. after a restart)
            try:
                channel = await client.fetch_channel(payload.channel_id)
            except discord.HTTPException:
                log.warning("Discord: cannot see channel %s of a reaction", payload.channel_id)
                return None
        conversation = self._conversation(channel, guild)
        if conversation is None:
            return None
        emoji = payload.emoji
        # Unicode emoji by their character; a custom emoji by its full form (<:name:id>),
        # so that one merely named "thumbsup" is not taken for 👍.
        name = emoji.name if emoji.is_unicode_emoji() and emoji.name else str(emoji)
        user = payload.member or client.get_user(payload.user_id)
        author = (
            self._user(user) if user is not None else UserRef(self.platform, str(payload.user_id))
        )
        return ReactionAdded(
            # Discord gives reactions no id: one per person, message and emoji.
            f"reaction-{payload.message_id}-{payload.user_id}-{name}",
            conversation.channel,
            author,
            str(payload.message_id),
            name,
        )

    def _replies_to_me(self, message: discord.Message) -> bool:
        ref = message.reference
        if ref is None:
            return False
        resolved = ref.resolved
        if isinstance(resolved, discord.Message):
            return resolved.author.id == self._client().user.id  # type: ignore[union-attr]
        return ref.message_id is not None and any(
            ref.message_id in p.ids for p in self._posted.values()
        )

    def _conversation(self, channel: Any, guild: discord.Guild) -> ConversationRef | None:
        if isinstance(channel, discord.Thread):
            parent = channel.parent
            name = f"#{parent.name}" if parent is not None else None
            return ConversationRef(
                self.platform, str(guild.id), str(channel.parent_id), str(channel.id), name
            )
        name = getattr(channel, "name", None)
        return ConversationRef(
            self.platform, str(guild.id), str(channel.id), None, f"#{name}" if name else None
        )

    def _user(self, user: discord.abc.User) -> UserRef:
        return UserRef(self.platform, str(user.id), user.display_name)

    def _file_ref(self, attachment: discord.Attachment, message: discord.Message | None) -> FileRef:
        return FileRef(
            platform=self.platform,
            file_id=str(attachment.id),
            name=attachment.filename,
            size=attachment.size,  # the core checks it against the limit before downloading
            media_type=attachment.content_type,
            url=attachment.url,
            message_id=str(message.id) if message is not None else None,
            permalink=message.jump_url if message is not None else None,
        )

    async def _deliver(self, event: MessageReceived | CommandInvoked | ReactionAdded) -> None:
        await deliver(self._sink, event, "Discord")

    # -- slash commands -----------------------------------------------------------------------

    async def _sync_commands(self, guild: discord.Guild) -> None:
        """Register /librarian in a guild (once per guild and process)."""
        if guild.id in self._synced:
            return
        self._synced.add(guild.id)
        client = self._client()
        client.tree.copy_global_to(guild=guild)
        try:
            await client.tree.sync(guild=guild)
        except discord.Forbidden:
            log.warning(
                "Discord: may not register /librarian in guild %s: invite the bot with the "
                "applications.commands scope (see the README)",
                guild.id,
            )
        except discord.HTTPException:
            self._synced.discard(guild.id)
            log.exception("Discord: syncing /librarian in guild %s failed", guild.id)
        else:
            log.info("Discord: /librarian synced in %s (%s)", guild.name, guild.id)

    async def command(
        self,
        interaction: discord.Interaction,
        name: str,
        *args: str | None,
        files: tuple[discord.Attachment, ...] = (),
    ) -> None:
        """Defer the interaction at once, then hand the command to the core.

        Always ephemerally: whether the command is refused (or errs, or answers
        privately) is known only later, and the first follow-up of a deferral keeps
        its visibility.  A public reply is posted in the channel instead (``send``).
        """
        ephemeral = True
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        except discord.HTTPException:
            log.warning("Discord: could not defer interaction %s", interaction.id, exc_info=True)
            return
        guild = interaction.guild
        channel = interaction.channel
        if guild is None or channel is None:
            await interaction.followup.send(
                "Librarian works in server channels, not in direct messages.", ephemeral=True
            )
            return
        conversation = self._conversation(channel, guild)
        assert conversation is not None
        if isinstance(interaction.user, discord.Member):
            self._members[(guild.id, interaction.user.id)] = interaction.user
        key = f"interaction-{interaction.id}"
        pending = _Pending(interaction, ephemeral)
        self._pending[key] = pending
        event = CommandInvoked(
            key,
            conversation,
            self._user(interaction.user),
            _command_text(name, [a for a in args if a]),
            files=tuple(self._file_ref(f, None) for f in files),
            message_id=key,
        )
        try:
            await self._deliver(event)
        finally:
            self._pending.pop(key, None)
            if not pending.original_used:  # the core said nothing: no "thinking" forever
                with contextlib.suppress(discord.HTTPException):
                    await interaction.delete_original_response()

    async def _followup(self, pending: _Pending, text: str, private: bool) -> int:
        async with pending.lock:
            interaction = pending.interaction
            if not pending.original_used and private != pending.ephemeral:
                # The first follow-up would take the deferral's visibility: remove the
                # "thinking" message so that this one is a follow-up of its own.
                with contextlib.suppress(discord.NotFound):
                    await interaction.delete_original_response()
            pending.original_used = True
            sent = await interaction.followup.send(text, ephemeral=private, wait=True)
            return sent.id

    # -- where messages go --------------------------------------------------------------------

    async def _target(
        self, conversation: ConversationRef, reply_to: str | None
    ) -> tuple[int, discord.MessageReference | None]:
        """The channel or thread to post in, and the message to reply to there."""
        if conversation.thread_id:
            return int(conversation.thread_id), None
        channel_id = int(conversation.channel_id)
        if reply_to is None or not reply_to.isdigit():
            return channel_id, None
        question = int(reply_to)
        if question in self._questions:
            thread_id = await self._thread_for(int(conversation.space_id), channel_id, question)
            if thread_id is not None:
                return thread_id, None
        reference = discord.MessageReference(
            message_id=question, channel_id=channel_id, fail_if_not_exists=False
        )
        return channel_id, reference

    async def _thread_for(self, guild_id: int, channel_id: int, message_id: int) -> int | None:
        """The thread started on a question (created on first use); None if not allowed."""
        if message_id in self._threads:
            return self._threads[message_id]
        lock = self._thread_locks.setdefault(message_id, asyncio.Lock())
        async with lock:
            if message_id in self._threads:
                return self._threads[message_id]
            channel = self._client().get_partial_messageable(channel_id, guild_id=guild_id)
            message = channel.get_partial_message(message_id)
            name = thread_name(self._questions.get(message_id, "Question"))
            try:
                thread = await message.create_thread(
                    name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
                )
                thread_id: int | None = thread.id
            except discord.HTTPException as exc:
                if exc.code == 160004:  # a thread already exists: it has the message's id
                    thread_id = message_id
                else:
                    log.warning(
                        "Discord: cannot start a thread in %s (%s); answering in the channel",
                        channel_id,
                        exc,
                    )
                    thread_id = None
            self._threads[message_id] = thread_id
        self._thread_locks.pop(message_id, None)
        return thread_id

    async def _edit_one(self, posted: _Posted, message_id: int, text: str) -> None:
        if posted.interaction is not None:
            await posted.interaction.followup.edit_message(message_id, content=text)
        else:
            assert posted.channel_id is not None
            channel = self._client().get_partial_messageable(posted.channel_id)
            await channel.get_partial_message(message_id).edit(content=text)

    async def _post_more(self, posted: _Posted, text: str) -> int:
        if posted.interaction is not None:
            sent = await posted.interaction.followup.send(
                text, ephemeral=posted.ephemeral, wait=True
            )
            return sent.id
        assert posted.channel_id is not None
        sent = await self._client().get_partial_messageable(posted.channel_id).send(text)
        return sent.id

    async def _delete_one(self, posted: _Posted, message_id: int) -> None:
        if posted.interaction is not None:
            await posted.interaction.followup.delete_message(message_id)
        else:
            assert posted.channel_id is not None
            channel = self._client().get_partial_messageable(posted.channel_id)
            await channel.get_partial_message(message_id).delete()

    # -- housekeeping -------------------------------------------------------------------------

    def _client(self) -> _Client | _ShardedClient:
        if self.client is None:
            raise RuntimeError("the Discord adapter is not started")
        return self.client

    async def _stop_typing(self) -> None:
        tasks = list(self._typing.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _command_text(name: str, args: list[str]) -> str:
    """``name arg ...`` as the core's parser reads it (the last argument is free text)."""
    words = [shlex.quote(a) if any(c.isspace() for c in a) else a for a in args[:-1]]
    return " ".join([name, *words, *args[-1:]]).strip()
