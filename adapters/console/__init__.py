"""A terminal that behaves like a channel: the embedded default adapter.

``@librarian <question>`` asks, ``/librarian <command>`` (or ``!librarian``) runs a
command, ``/librarian upload <path>`` indexes a local file.  Answers stream as
they are generated.  When standard input is not a terminal, lines are handled one
after the other and the adapter stops at the end of input once every answer is
done, so scripts and tests can drive it.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import os
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from adapters.base import command_text
from bot.adapter import Adapter, EventSink
from bot.events import (
    CommandInvoked,
    ConversationRef,
    FileRef,
    MessageReceived,
    OutboundMessage,
    UserRef,
)

BOT_NAME = "librarian"
MENTION_PREFIXES = ("@librarian", "librarian:", "librarian,")


class ConsoleAdapter(Adapter):
    """Reads lines from a stream, prints the bot's messages to another."""

    platform = "console"
    edit_interval_s = 0.0  # a terminal takes every piece as it comes

    def __init__(
        self,
        *,
        channel: str = "general",
        user: str | None = None,
        admins: Iterable[str] = (),
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty() if interactive is None else interactive
        self.user = UserRef("console", user or _login_name())
        self.conversation = ConversationRef("console", "", channel, None, f"#{channel}")
        self.admins = {a.split(":", 1)[1] for a in admins if a.startswith("console:")}
        self._ids = itertools.count(1)
        self._shown: dict[str, str] = {}
        self._open_line = False
        self._stopping = asyncio.Event()

    # -- the adapter protocol ---------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Read lines until end of input (or ``stop``), handing each to ``sink``."""
        if self.interactive:
            self._print(
                f"Librarian in #{self.conversation.channel_id} as {self.user.user_id}. "
                "Ask with @librarian <question>; /librarian help lists commands; Ctrl-D quits.\n"
            )
        while not self._stopping.is_set():
            if self.interactive:
                self._close_line()
                self._print(f"{self.user.user_id}> ")
            line = await asyncio.to_thread(self.stdin.readline)
            if not line:
                break
            event = self.translate(line)
            if event is None:
                continue
            # One line at a time: a script's next question sees the previous upload indexed.
            await sink(event)
            self._close_line()
        self._close_line()

    async def stop(self) -> None:
        """Stop reading."""
        self._stopping.set()

    async def send(self, message: OutboundMessage) -> str:
        """Print a message; return its id."""
        message_id = f"console-{next(self._ids)}"
        self._close_line()
        private = " (only you)" if message.private_to else ""
        self._print(f"{BOT_NAME}{private}: {message.text}")
        self._open_line = True
        self._shown[message_id] = message.text
        return message_id

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Print only what is new when the text grew; reprint it otherwise."""
        before = self._shown.get(message_id, "")
        if text.startswith(before) and self._open_line:
            self._print(text[len(before) :])
        else:
            self._close_line()
            self._print(f"{BOT_NAME}: {text}")
            self._open_line = True
        self._shown[message_id] = text

    async def fetch_file(self, ref: FileRef) -> bytes:
        """Read a local file named by an upload command."""
        assert ref.url is not None
        return await asyncio.to_thread(Path(ref.url).read_bytes)

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """Console admins are the configured ``console:`` ids."""
        return user.user_id in self.admins

    # -- translation ------------------------------------------------------------------------

    def translate(self, line: str) -> MessageReceived | CommandInvoked | None:
        """Turn a typed line into a core event (None for blank lines)."""
        text = line.strip()
        if not text:
            return None
        event_id = f"console-{uuid.uuid4()}"
        message_id = f"line-{uuid.uuid4().hex[:8]}"
        command = command_text(text)
        if command is not None:
            return CommandInvoked(
                event_id, self.conversation, self.user, command, message_id=message_id
            )
        lowered = text.lower()
        for prefix in MENTION_PREFIXES:
            if lowered.startswith(prefix):
                return MessageReceived(
                    event_id,
                    self.conversation,
                    self.user,
                    text[len(prefix) :].strip(),
                    mentions_bot=True,
                    message_id=message_id,
                )
        return MessageReceived(
            event_id,
            self.conversation,
            self.user,
            text,
            mentions_bot=False,
            message_id=message_id,
        )

    def local_file_refs(self, paths: list[str]) -> list[FileRef]:
        """File references for local paths given to `/librarian upload`."""
        refs = []
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.is_file():
                raise FileNotFoundError(raw)
            refs.append(
                FileRef(
                    platform="console",
                    file_id=str(path.resolve()),
                    name=path.name,
                    size=path.stat().st_size,
                    media_type=mimetypes.guess_type(path.name)[0],
                    url=str(path.resolve()),
                )
            )
        return refs

    # -- output -----------------------------------------------------------------------------

    def _print(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _close_line(self) -> None:
        if self._open_line:
            self._print("\n")
            self._open_line = False


def _login_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()
