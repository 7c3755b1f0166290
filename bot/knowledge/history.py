"""What a conversation's stored turns say to its next question: the topic a follow-up
continues (the last question the documents answered) and the chunks it rests on."""

from __future__ import annotations

from dataclasses import replace

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


def model_turns(history: list[HistoryMessage]) -> list[HistoryMessage]:
    """The conversation as the model reads it: the exchanges whose reply was an answer
    (the model's checked text, or one found by rule), that answer without the evidence
    quoted under it (``said``, stored with it).  An answer stored before its words were
    kept apart is left out too.  A reply that was the evidence alone, "not found" or a fixed reply
    is left out with its question.  Seen by hand in session 20: after five questions in
    one channel the default model read 1,700 to 2,100 prompt tokens, most of them the
    earlier replies' quotes (about 100 tokens a second on two cores), and it wrote its
    next answers as those replies were written, "The documents say:" and made-up quotes.
    The retrieval reads the whole history for follow-ups (``last_answered_question``)."""
    turns: list[HistoryMessage] = []
    for i, turn in enumerate(history):
        if turn.role != "assistant" or i == 0 or history[i - 1].role != "user":
            continue
        if turn.said and turn.said.strip():
            turns += [history[i - 1], replace(turn, text=turn.said.strip())]
    return turns
