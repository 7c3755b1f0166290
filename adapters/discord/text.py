"""Pure text rules of the Discord adapter (no discord.py here, so they test quickly)."""

from __future__ import annotations

import re

MESSAGE_LIMIT = 2000  # characters in one Discord message
THREAD_NAME_LIMIT = 100


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters.

    Cuts at the last line break inside the limit, else the last space, else hard;
    never returns an empty list (an empty text is one empty piece).
    """
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n")
        if cut < limit // 2:
            space = window.rfind(" ")
            cut = space if space >= limit // 2 else cut
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ") if cut < len(rest) else ""
    if rest or not pieces:
        pieces.append(rest)
    return [p if p.strip() else "\u200b" for p in pieces]  # Discord refuses an empty message


def strip_mentions(content: str, user_id: int) -> str:
    """The message without the mentions of the bot (``<@id>`` and ``<@!id>``)."""
    return re.sub(rf"<@!?{user_id}>", " ", content).strip()


def thread_name(question: str) -> str:
    """A thread title from a question: its first line, shortened to Discord's limit."""
    first = " ".join(question.strip().split("\n", 1)[0].split()) or "Question"
    if len(first) <= THREAD_NAME_LIMIT:
        return first
    return first[: THREAD_NAME_LIMIT - 1].rstrip() + "\u2026"
