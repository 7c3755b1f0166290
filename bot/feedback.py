"""Feedback on answers: which reactions count, and recording a verdict.

People rate an answer with a 👍 or 👎 reaction on it (Slack, Discord, Matrix) or
with ``/librarian feedback good|bad [note]`` (every platform; it rates the latest
answer of the conversation).  Adapters pass every reaction on as the platform
names it; this module is the one place that says which ones are feedback.

A verdict is kept with copies of the question, the answer and its sources, in the
channel's history: the retention job and ``/librarian clear`` delete it with the
rest.  One person has one verdict per answer (a new vote replaces it).  Verdicts
are for people to read and export (``librarian feedback``); nothing re-ranks
retrieval from them.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from bot.events import ConversationRef, UserRef
from bot.knowledge.prompt import places_label
from bot.store.records import StoredAnswer
from bot.store.repo import Store

GOOD = "good"
BAD = "bad"
VERDICTS = (GOOD, BAD)

#: Reactions that are feedback, by the names platforms give them: Slack's short names
#: (with their aliases), and the emoji characters Discord and Matrix send.
REACTION_VERDICTS: dict[str, str] = {
    "+1": GOOD,
    "thumbsup": GOOD,
    "\N{THUMBS UP SIGN}": GOOD,
    "-1": BAD,
    "thumbsdown": BAD,
    "\N{THUMBS DOWN SIGN}": BAD,
}

#: What `/librarian feedback` accepts as its first word, besides good and bad.
_COMMAND_WORDS = {**REACTION_VERDICTS, GOOD: GOOD, BAD: BAD, "up": GOOD, "down": BAD}

# Skin tones do not change a verdict: Slack appends "::skin-tone-2" to the name;
# Discord and Matrix append a Fitzpatrick modifier (U+1F3FB..U+1F3FF), and clients
# may add the emoji presentation selector (U+FE0F).
_SLACK_SKIN_TONE = re.compile(r"::skin-tone-\d$")
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f]")


def verdict_of_reaction(emoji: str) -> str | None:
    """'good' or 'bad' for a reaction that is feedback, None for any other reaction."""
    name = _MODIFIERS.sub("", _SLACK_SKIN_TONE.sub("", emoji.strip())).strip(":").lower()
    return REACTION_VERDICTS.get(name)


def verdict_of_word(word: str) -> str | None:
    """The verdict a command's first word names (good, bad, 👍, +1, ...), or None."""
    name = _MODIFIERS.sub("", word.strip()).strip(":").lower()
    return _COMMAND_WORDS.get(name)


@dataclass(frozen=True)
class Recorded:
    """A verdict as stored."""

    feedback_id: int
    answer: StoredAnswer
    verdict: str
    note: str | None
    sources: list[dict[str, Any]]
    replaced: bool  # the person had rated this answer before

    def describe(self) -> str:
        """What the person is told (the command replies with it, privately)."""
        question = _short(self.answer.question) if self.answer.question else "a question"
        said = f"{self.verdict}" + (f" ({self.note})" if self.note else "")
        if self.replaced:
            return f"Your feedback on my answer to {question} is now: {said}."
        return f"Thanks: recorded {said} for my answer to {question}."


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return f'"{flat if len(flat) <= limit else flat[: limit - 1] + "…"}"'


def sources_of(store: Store, answer: StoredAnswer) -> list[dict[str, Any]]:
    """The answer's sources (blocking): as the answerer recorded them, else from its citations.

    Each is ``{"document", "document_id", "pages"}`` with ``pages`` as citations show
    them ("p. 2", "pp. 2, 4").
    """
    recorded = answer.meta.get("sources")
    if isinstance(recorded, list):
        return [s for s in recorded if isinstance(s, dict)]
    out = []
    for doc in store.cited_documents(answer.cited_chunk_ids):
        label = places_label(doc.locations, doc.pages)
        out.append({"document": doc.file_name, "document_id": doc.document_id, "pages": label})
    return out


def _record(
    store: Store, answer: StoredAnswer, author: UserRef, verdict: str, note: str | None
) -> Recorded | None:
    sources = sources_of(store, answer)
    stored = store.record_feedback(
        answer, author=author.qualified, verdict=verdict, note=note, sources=sources
    )
    if stored is None:
        return None  # the answer was deleted meanwhile (retention, clear)
    feedback_id, replaced = stored
    return Recorded(feedback_id, answer, verdict, note, sources, replaced)


async def rate_message(
    store: Store,
    conversation: ConversationRef,
    author: UserRef,
    platform_message_id: str,
    verdict: str,
) -> Recorded | None:
    """Record a verdict on the answer posted as ``platform_message_id``.

    None when that message is not a stored answer of the bot in this channel (someone
    else's message, a private answer, an answer already deleted by retention).
    """
    answer = await asyncio.to_thread(
        store.answer_by_platform_id,
        conversation.platform,
        conversation.space_id,
        conversation.channel_id,
        platform_message_id,
    )
    if answer is None:
        return None
    return await asyncio.to_thread(_record, store, answer, author, verdict, None)


async def rate_latest(
    store: Store,
    conversation: ConversationRef,
    author: UserRef,
    verdict: str,
    note: str | None,
) -> Recorded | None:
    """Record a verdict on the latest answer of the conversation's thread (or channel).

    None when there is no stored answer to rate there.
    """
    answer = await asyncio.to_thread(
        store.latest_answer,
        conversation.platform,
        conversation.space_id,
        conversation.channel_id,
        conversation.thread_id,
    )
    if answer is None:
        return None
    return await asyncio.to_thread(_record, store, answer, author, verdict, note)
