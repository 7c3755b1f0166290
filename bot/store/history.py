"""Conversation history and its retention: the turns of a channel or thread.

``HistoryMixin`` holds the Store's history side (``bot.store.repo.Store`` is composed
of it).  A question and its answer are stored in one transaction, with the answer
recorded as the effect of the event that asked.  Feedback is history too: clearing a
thread or expiring a channel's old turns deletes its verdicts in the same
transaction (the feedback side's ``_clear_feedback`` and ``_expire_feedback``), and a
retention run writes its audit entry there as well (the audit side's ``_audit``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot.store.audit import channel_spec
from bot.store.events import Claim, record_effect_in
from bot.store.records import ExpiredHistory, HistoryMessage

__all__ = ["LOCK_RETENTION", "HistoryMixin"]

LOCK_RETENTION = 0x4C4B  # one retention run at a time across processes (see repo's list)


class HistoryMixin:
    """The history side of ``Store`` (uses ``self.engine``, and the feedback and audit
    sides' writes inside its transactions)."""

    engine: Engine
    # Declared by FeedbackMixin and AuditMixin (bot.store.feedback, bot.store.audit).
    _clear_feedback: Callable[[Connection, int, str | None], int]
    _expire_feedback: Callable[[Connection], dict[str, int]]
    _audit: Callable[[Connection, str, str, str | None, dict | None], None]

    # -- conversation history ---------------------------------------------------------------

    def add_message(
        self,
        binding_id: int,
        thread_id: str | None,
        role: str,
        text_: str,
        *,
        author: str | None = None,
        platform_message_id: str | None = None,
        cited_chunk_ids: Sequence[int] = (),
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store one turn of a conversation; ``meta`` is an answer's metadata (JSON)."""
        with self.engine.begin() as conn:
            return _insert_message(
                conn,
                binding_id,
                thread_id,
                role,
                text_,
                author=author,
                platform_message_id=platform_message_id,
                cited_chunk_ids=cited_chunk_ids,
                meta=meta,
            )

    def add_exchange(
        self,
        binding_id: int,
        thread_id: str | None,
        question: str,
        answer: str,
        *,
        author: str | None,
        question_message_id: str | None,
        cited_chunk_ids: Sequence[int],
        meta: dict[str, Any],
        event: Claim | None = None,
        reply: str | None = None,
    ) -> int:
        """Store a question and its answer in one transaction; the answer's id.

        ``event``: the claimed event that asked; the stored answer and ``reply`` (the
        text to post) are recorded as its effect in the same transaction, so a question
        re-run after a crash or a failed post is stored once and posted from the record.
        """
        with self.engine.begin() as conn:
            _insert_message(
                conn,
                binding_id,
                thread_id,
                "user",
                question,
                author=author,
                platform_message_id=question_message_id,
            )
            answer_id = _insert_message(
                conn,
                binding_id,
                thread_id,
                "assistant",
                answer,
                author="librarian",
                cited_chunk_ids=cited_chunk_ids,
                meta=meta,
            )
            if event is not None:
                record_effect_in(
                    conn, event, {"answer": {"message": answer_id, "reply": reply or answer}}
                )
        return answer_id

    def recent_messages(
        self, binding_id: int, thread_id: str | None, limit: int = 20
    ) -> list[HistoryMessage]:
        """The last ``limit`` turns of a channel or thread, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, role, author, text, created_at, cited_chunk_ids, "
                    "meta->>'said' AS said FROM messages "
                    "WHERE binding_id = :b AND thread_id = :t "
                    "ORDER BY created_at DESC, id DESC LIMIT :n"
                ),
                {"b": binding_id, "t": thread_id or "", "n": limit},
            ).all()
        return [
            HistoryMessage(
                id=r.id,
                role=r.role,
                author=r.author,
                text=r.text,
                created_at=r.created_at,
                cited_chunk_ids=tuple(r.cited_chunk_ids or ()),
                said=r.said,
            )
            for r in reversed(rows)
        ]

    def clear_history(self, binding_id: int, thread_id: str | None = None) -> tuple[int, int]:
        """Delete a thread's stored turns and feedback, or the whole channel's when None.

        Returns how many messages and how many verdicts on answers were deleted.
        """
        with self.engine.begin() as conn:
            feedback = self._clear_feedback(conn, binding_id, thread_id)
            if thread_id is None:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b"), {"b": binding_id}
                )
            else:
                result = conn.execute(
                    text("DELETE FROM messages WHERE binding_id = :b AND thread_id = :t"),
                    {"b": binding_id, "t": thread_id},
                )
            return int(result.rowcount or 0), feedback

    def message_count(self, binding_id: int) -> int:
        """How many turns of a channel (all threads) are stored."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM messages WHERE binding_id = :b"), {"b": binding_id}
                ).scalar_one()
            )

    # -- retention --------------------------------------------------------------------------

    def expire_messages(self, *, audit_actor: str | None = None) -> ExpiredHistory | None:
        """Delete every message (and feedback) older than its channel's retention.

        One transaction holds ``pg_try_advisory_xact_lock(LOCK_RETENTION, 0)`` while it
        deletes, so among several processes only one deletes at a time; returns None
        (and deletes nothing) when another process holds the lock.  Returns the counts
        per channel of messages and of verdicts on answers; channels where nothing
        expired are absent.  With ``audit_actor``, every run that
        took the lock writes one audit entry with the counts (possibly none), in the
        same transaction as the deletion.
        """
        with self.engine.begin() as conn:
            got = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:a, 0)"), {"a": LOCK_RETENTION}
            ).scalar()
            if not got:
                return None
            # Feedback first: it also goes with the answers it rates, found by message_id.
            feedback = self._expire_feedback(conn)
            rows = conn.execute(
                text(
                    "WITH gone AS ("
                    " DELETE FROM messages m USING channel_bindings b"
                    " WHERE m.binding_id = b.id AND b.retention_seconds IS NOT NULL"
                    " AND m.created_at < now() - b.retention_seconds * interval '1 second'"
                    " RETURNING m.binding_id) "
                    "SELECT b.platform, b.space_id, b.channel_id, count(*) AS n "
                    "FROM gone JOIN channel_bindings b ON b.id = gone.binding_id "
                    "GROUP BY b.platform, b.space_id, b.channel_id "
                    "ORDER BY b.platform, b.space_id, b.channel_id"
                )
            ).all()
            deleted = {channel_spec(r.platform, r.space_id, r.channel_id): int(r.n) for r in rows}
            # Every run that took the lock leaves one entry, even when nothing had expired,
            # so the log shows the job is alive; a skipped run (lock held) did nothing.
            if audit_actor is not None:
                self._audit(
                    conn,
                    audit_actor,
                    "retention_run",
                    "messages",
                    {
                        "deleted": deleted,
                        "total": sum(deleted.values()),
                        "feedback": feedback,
                    },
                )
        return ExpiredHistory(messages=deleted, feedback=feedback)


def _insert_message(
    conn: Connection,
    binding_id: int,
    thread_id: str | None,
    role: str,
    text_: str,
    *,
    author: str | None = None,
    platform_message_id: str | None = None,
    cited_chunk_ids: Sequence[int] = (),
    meta: dict[str, Any] | None = None,
) -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO messages (binding_id, thread_id, platform_message_id, role, "
                "author, text, cited_chunk_ids, meta) "
                "VALUES (:b, :t, :pm, :r, :a, :x, :c, CAST(:meta AS jsonb)) "
                "RETURNING id"
            ),
            {
                "b": binding_id,
                "t": thread_id or "",
                "pm": platform_message_id,
                "r": role,
                "a": author,
                "x": text_,
                "c": list(cited_chunk_ids),
                "meta": json.dumps(meta or {}),
            },
        ).scalar_one()
    )
