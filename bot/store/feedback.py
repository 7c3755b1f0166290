"""Feedback on answers: finding the answer a verdict is about, and keeping verdicts.

A verdict (good or bad, with an optional note) is stored per channel beside its
history, with copies of the question, the answer and its sources, so an export
still reads when the answer's turn is gone.  Feedback is history: the retention
job deletes it with the channel's messages (``_expire_feedback``, called inside
``Store.expire_messages``'s transaction) and ``/librarian clear`` with the
thread's or channel's (``_clear_feedback``).

One person has one verdict per answer: voting again replaces the verdict rather
than adding a second row.  The table has no unique index for that (migration
0007), so the vote takes a row lock on the answer's message first, which
serialises two votes on one answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, Row

from bot.store.audit import channel_spec
from bot.store.records import CitedDocument, FeedbackEntry, StoredAnswer

# The assistant turn, the channel it belongs to, and the user turn just before it in
# the same thread (the question it answered; the answerer stores the two together).
_ANSWER_SELECT = (
    "SELECT m.id, m.binding_id, m.thread_id, m.platform_message_id, m.text, "
    "m.cited_chunk_ids, m.meta, m.created_at, q.text AS question, "
    "q.platform_message_id AS question_message_id "
    "FROM messages m JOIN channel_bindings b ON b.id = m.binding_id "
    "LEFT JOIN LATERAL (SELECT u.text, u.platform_message_id FROM messages u "
    " WHERE u.binding_id = m.binding_id AND u.thread_id = m.thread_id AND u.role = 'user' "
    " AND (u.created_at, u.id) < (m.created_at, m.id) "
    " ORDER BY u.created_at DESC, u.id DESC LIMIT 1) q ON true "
    "WHERE b.platform = :p AND b.space_id = :s AND b.channel_id = :c AND m.role = 'assistant' "
    # A fixed reply to "thanks" or "?" is no answer to rate: a 👍 after "thanks!" rates
    # the answer before it (seen by hand in session 14: it rated the reply to "👍").
    "AND m.meta->>'smalltalk' IS NULL "
)

_FEEDBACK_SELECT = (
    "SELECT f.id, b.platform, b.space_id, b.channel_id, f.thread_id, f.message_id, "
    "f.platform_message_id, f.author, f.verdict, f.note, f.question, f.answer, f.sources, "
    "f.created_at FROM feedback f JOIN channel_bindings b ON b.id = f.binding_id "
)

# The per-channel counts of deleted feedback rows (``gone`` returns their binding ids).
_COUNT_GONE = (
    "SELECT b.platform, b.space_id, b.channel_id, count(*) AS n "
    "FROM gone JOIN channel_bindings b ON b.id = gone.binding_id "
    "GROUP BY b.platform, b.space_id, b.channel_id "
    "ORDER BY b.platform, b.space_id, b.channel_id"
)


def _answer(row: Row) -> StoredAnswer:
    m = row._mapping
    return StoredAnswer(
        id=int(m["id"]),
        binding_id=int(m["binding_id"]),
        thread_id=m["thread_id"],
        platform_message_id=m["platform_message_id"],
        text=m["text"],
        question=m["question"],
        cited_chunk_ids=tuple(m["cited_chunk_ids"] or ()),
        meta=dict(m["meta"] or {}),
        created_at=m["created_at"],
    )


def _entry(row: Row) -> FeedbackEntry:
    m = row._mapping
    return FeedbackEntry(
        id=int(m["id"]),
        channel=channel_spec(m["platform"], m["space_id"], m["channel_id"]),
        thread_id=m["thread_id"],
        message_id=m["message_id"],
        platform_message_id=m["platform_message_id"],
        author=m["author"],
        verdict=m["verdict"],
        note=m["note"],
        question=m["question"],
        answer=m["answer"],
        sources=list(m["sources"] or []),
        created_at=m["created_at"],
    )


class FeedbackMixin:
    """The feedback side of ``Store`` (``bot.store.repo``)."""

    engine: Engine

    # -- the answer a verdict is about --------------------------------------------------------

    def set_message_platform_id(self, message_id: int, platform_message_id: str) -> None:
        """Record the platform id an answer was posted under, so a reaction finds it."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE messages SET platform_message_id = :pm WHERE id = :id"),
                {"pm": platform_message_id, "id": message_id},
            )

    def answer_by_platform_id(
        self, platform: str, space_id: str, channel_id: str, platform_message_id: str
    ) -> StoredAnswer | None:
        """The stored answer posted as ``platform_message_id`` in this channel, if any.

        Looked up in the channel only (any thread): a reaction does not say which
        thread its message is in, and an answer in another channel is not this one's.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                text(_ANSWER_SELECT + "AND m.platform_message_id = :pm ORDER BY m.id DESC LIMIT 1"),
                {"p": platform, "s": space_id, "c": channel_id, "pm": platform_message_id},
            ).first()
        return _answer(row) if row else None

    def latest_answer(
        self, platform: str, space_id: str, channel_id: str, thread_id: str | None
    ) -> StoredAnswer | None:
        """The newest stored answer of a thread, or of the whole channel when None.

        An answer that started a thread on its question (Discord) is stored outside
        the thread, with its question; it counts as the thread's when the thread's id
        is that question's message id.
        """
        params: dict[str, Any] = {"p": platform, "s": space_id, "c": channel_id}
        where = ""
        if thread_id is not None:
            where = "AND (m.thread_id = :t OR (m.thread_id = '' AND q.platform_message_id = :t)) "
            params["t"] = thread_id
        with self.engine.connect() as conn:
            row = conn.execute(
                text(_ANSWER_SELECT + where + "ORDER BY m.created_at DESC, m.id DESC LIMIT 1"),
                params,
            ).first()
        return _answer(row) if row else None

    def cited_documents(self, chunk_ids: Sequence[int]) -> list[CitedDocument]:
        """The documents of these chunks, in the order they are first cited, with pages.

        Chunks of documents forgotten since are gone, and so are they from the result.
        """
        if not chunk_ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.id, d.id AS document_id, d.file_name, c.page_start, c.page_end, "
                    "c.location "
                    "FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE c.id = ANY(:ids)"
                ),
                {"ids": list(chunk_ids)},
            ).all()
        by_chunk = {r.id: r for r in rows}
        order: list[int] = []
        names: dict[int, str] = {}
        pages: dict[int, set[int]] = {}
        places: dict[int, list[str]] = {}
        for chunk_id in chunk_ids:
            r = by_chunk.get(chunk_id)
            if r is None:
                continue
            if r.document_id not in names:
                order.append(r.document_id)
                names[r.document_id] = r.file_name
                pages[r.document_id] = set()
                places[r.document_id] = []
            if r.location is not None:
                places[r.document_id].append(r.location)
            elif r.page_start is not None:
                pages[r.document_id].update(range(r.page_start, (r.page_end or r.page_start) + 1))
        return [
            CitedDocument(d, names[d], tuple(sorted(pages[d])), tuple(places[d])) for d in order
        ]

    # -- verdicts -----------------------------------------------------------------------------

    def record_feedback(
        self,
        answer: StoredAnswer,
        *,
        author: str,
        verdict: str,
        note: str | None,
        sources: list[dict[str, Any]],
    ) -> tuple[int, bool] | None:
        """Store ``author``'s verdict on an answer; return its id and whether it replaced one.

        A new vote by the same person on the same answer replaces the verdict (and its
        time); a vote without a note keeps the earlier note only if the verdict is the
        same.  None when the answer was deleted meanwhile (retention, clear).
        """
        with self.engine.begin() as conn:
            alive = conn.execute(
                text("SELECT 1 FROM messages WHERE id = :m FOR UPDATE"), {"m": answer.id}
            ).scalar()
            if alive is None:
                return None
            params = {
                "m": answer.id,
                "a": author,
                "v": verdict,
                "n": note,
            }
            updated = conn.execute(
                text(
                    "UPDATE feedback SET note = CASE WHEN CAST(:n AS text) IS NOT NULL THEN :n "
                    "WHEN verdict = :v THEN note END, verdict = :v, created_at = now() "
                    "WHERE message_id = :m AND author = :a RETURNING id"
                ),
                params,
            ).scalar()
            if updated is not None:
                return int(updated), True
            inserted = conn.execute(
                text(
                    "INSERT INTO feedback (binding_id, thread_id, message_id, platform_message_id,"
                    " author, verdict, note, question, answer, sources) VALUES (:b, :t, :m, :pm,"
                    " :a, :v, :n, :q, :x, CAST(:src AS jsonb)) RETURNING id"
                ),
                {
                    **params,
                    "b": answer.binding_id,
                    "t": answer.thread_id,
                    "pm": answer.platform_message_id,
                    "q": answer.question,
                    "x": answer.text,
                    "src": json.dumps(sources, default=str),
                },
            ).scalar_one()
        return int(inserted), False

    def feedback_entries(
        self,
        *,
        platform: str | None = None,
        space_id: str | None = None,
        channel_id: str | None = None,
        limit: int | None = 100,
    ) -> list[FeedbackEntry]:
        """Stored verdicts, newest first: every channel's, or one channel's."""
        where = "WHERE true "
        params: dict[str, Any] = {}
        if channel_id is not None:
            where += "AND b.platform = :p AND b.space_id = :s AND b.channel_id = :c "
            params.update(p=platform, s=space_id or "", c=channel_id)
        sql = _FEEDBACK_SELECT + where + "ORDER BY f.created_at DESC, f.id DESC"
        if limit is not None:
            sql += " LIMIT :n"
            params["n"] = limit
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(text(sql), params)]

    # -- deleted with the history (called inside the history's own transactions) ------------

    @staticmethod
    def _expire_feedback(conn: Connection) -> dict[str, int]:
        """Delete feedback past its channel's retention; counts per channel.

        A verdict goes when it is older than the retention, or when the answer it rates
        is (it holds a copy of that answer, which must not outlive it).  Runs before the
        messages are deleted, while ``message_id`` still points at them.
        """
        rows = conn.execute(
            text(
                "WITH gone AS ("
                " DELETE FROM feedback f USING channel_bindings b"
                " WHERE f.binding_id = b.id AND b.retention_seconds IS NOT NULL"
                " AND (f.created_at < now() - b.retention_seconds * interval '1 second'"
                "  OR EXISTS (SELECT 1 FROM messages m WHERE m.id = f.message_id"
                "   AND m.created_at < now() - b.retention_seconds * interval '1 second'))"
                " RETURNING f.binding_id) " + _COUNT_GONE
            )
        ).all()
        return {channel_spec(r.platform, r.space_id, r.channel_id): int(r.n) for r in rows}

    @staticmethod
    def _clear_feedback(conn: Connection, binding_id: int, thread_id: str | None) -> int:
        """Delete a thread's feedback, or the whole channel's when None; how many."""
        if thread_id is None:
            result = conn.execute(
                text("DELETE FROM feedback WHERE binding_id = :b"), {"b": binding_id}
            )
        else:
            result = conn.execute(
                text("DELETE FROM feedback WHERE binding_id = :b AND thread_id = :t"),
                {"b": binding_id, "t": thread_id},
            )
        return int(result.rowcount or 0)
