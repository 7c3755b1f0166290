"""What a conversation's stored turns say to its next question: the topic a follow-up
continues (the last question the documents answered) and the chunks it rests on."""

from __future__ import annotations

from bot.store.records import HistoryMessage


def last_answered_question(history: list[HistoryMessage]) -> str | None:
    """The latest question whose answer cited documents (a "not found" sets no topic)."""
    for i in range(len(history) - 1, 0, -1):
        turn = history[i]
        if turn.role == "assistant" and turn.cited_chunk_ids and history[i - 1].role == "user":
            return history[i - 1].text
    return None


def last_cited_chunks(history: list[HistoryMessage]) -> list[int]:
    """The chunks the latest answer of the conversation cited (for follow-ups)."""
    for turn in reversed(history):
        if turn.role == "assistant" and turn.cited_chunk_ids:
            return list(turn.cited_chunk_ids)
    return []
