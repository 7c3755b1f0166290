"""Documents and the ingest queue: adding, finding and forgetting documents, claiming the next.

``DocumentsMixin`` holds the Store's document side (``bot.store.repo.Store`` is
composed of it).  A document is queued when shared, claimed by one ingest worker at
a time (a session advisory lock, so a process that dies releases it), and written
with its chunks, or failed, in one transaction.  Workspaces take turns: the next
document is one of the workspace served least recently.  Forgetting a document
deletes, in one transaction, every stored message that quoted it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, Row

from bot.store.events import Claim, record_effect_in
from bot.store.records import ClaimLost, Document, DocumentClaim, NewChunk
from bot.store.search import vector_literal

__all__ = ["LOCK_DOCUMENT", "DocumentsMixin"]

LOCK_DOCUMENT = 0x4C49  # one ingest worker per document (see repo's list of locks)

_CHUNK_COUNT = "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
_DOC_COLS = (
    "d.id, d.workspace_id, d.file_name, d.media_type, d.sha256, d.size_bytes, d.page_count, "
    "d.status, d.error, d.uploader, d.source_platform, d.source_space, d.source_channel, "
    "d.source_message, d.source_file_id, d.source_url, d.attempts, d.created_at"
)


# The claim's candidates: up to four waiting documents per workspace (the first may be
# held by another worker), the workspace served least recently first, then within a
# workspace the documents with the fewest failed attempts, oldest first.
_CLAIM_ORDER = text(
    "SELECT id FROM (SELECT d.id, w.ingest_served_at AS served, row_number() OVER "
    "(PARTITION BY d.workspace_id ORDER BY d.attempts, d.id) AS place "
    "FROM documents d JOIN workspaces w ON w.id = d.workspace_id "
    "WHERE d.status IN ('queued', 'indexing')) waiting "
    "WHERE place <= 4 ORDER BY served ASC NULLS FIRST, place, id LIMIT 50"
)


# The session that holds a claim (its pid alone may be reused after a restart).
_SESSION = text("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
# Whether that session still holds the document's lock.
_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :a "
    "AND l.objid::bigint = :d AND l.objsubid = 2 "
    "AND l.pid = :pid AND a.backend_start = :started)"
)


def _document(row: Row) -> Document:
    m = dict(row._mapping)
    m.setdefault("chunk_count", 0)
    return Document(**m)


class DocumentsMixin:
    """The document side of ``Store``: documents and the ingest queue (uses ``self.engine``)."""

    engine: Engine

    # -- documents --------------------------------------------------------------------------

    def add_document(
        self,
        workspace_id: int,
        *,
        file_name: str,
        media_type: str,
        sha256: str,
        size_bytes: int,
        uploader: str | None,
        source: dict[str, str | None] | None = None,
        event: Claim | None = None,
    ) -> tuple[Document, bool]:
        """Queue a document for indexing; the same bytes twice in a workspace are one document.

        Returns the document and whether it is new.  A document that failed before is
        queued again when shared again (the parser or limits may have changed).
        ``event``: the claimed event that shared it; the document is recorded as its
        effect in the same transaction (``document:<file id>``).
        """
        src = source or {}
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO documents (workspace_id, file_name, media_type, sha256,"
                    " size_bytes, uploader, source_platform, source_space, source_channel,"
                    " source_message,"
                    " source_file_id, source_url) VALUES (:w, :fn, :mt, :sha, :size, :up,"
                    " :sp, :ss, :sc, :sm, :sf, :su)"
                    " ON CONFLICT ON CONSTRAINT uq_documents_workspace_sha DO NOTHING"
                    " RETURNING id"
                ),
                {
                    "w": workspace_id,
                    "fn": file_name,
                    "mt": media_type,
                    "sha": sha256,
                    "size": size_bytes,
                    "up": uploader,
                    "sp": src.get("platform"),
                    "ss": src.get("space"),
                    "sc": src.get("channel"),
                    "sm": src.get("message"),
                    "sf": src.get("file_id"),
                    "su": src.get("url"),
                },
            ).first()
            created = row is not None
            if not created:
                conn.execute(
                    text(
                        "UPDATE documents SET status = 'queued', error = NULL, attempts = 0, "
                        "updated_at = now() WHERE workspace_id = :w AND sha256 = :sha "
                        "AND status = 'failed'"
                    ),
                    {"w": workspace_id, "sha": sha256},
                )
            doc = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                    "AND d.sha256 = :sha"
                ),
                {"w": workspace_id, "sha": sha256},
            ).one()
            if event is not None:
                record_effect_in(conn, event, {f"document:{src.get('file_id')}": doc.id})
        return _document(doc), created

    def get_document(self, document_id: int) -> Document | None:
        """A document by id, with its chunk count."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {_DOC_COLS}, {_CHUNK_COUNT}"
                    " AS chunk_count FROM documents d WHERE d.id = :id"
                ),
                {"id": document_id},
            ).first()
        return _document(row) if row else None

    def list_documents(self, workspace_id: int) -> list[Document]:
        """A workspace's documents, newest first, with chunk counts."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS}, {_CHUNK_COUNT}"
                    " AS chunk_count FROM documents d WHERE d.workspace_id = :w"
                    " ORDER BY d.created_at DESC, d.id DESC"
                ),
                {"w": workspace_id},
            ).all()
        return [_document(r) for r in rows]

    def find_documents(self, workspace_id: int, name_or_id: str) -> list[Document]:
        """Documents of a workspace matching an id or a file name (exact, then partial)."""
        with self.engine.connect() as conn:
            if name_or_id.isdigit():
                rows = conn.execute(
                    text(
                        f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                        "AND d.id = :id"
                    ),
                    {"w": workspace_id, "id": int(name_or_id)},
                ).all()
                if rows:
                    return [_document(r) for r in rows]
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                    "AND lower(d.file_name) = lower(:n) ORDER BY d.id"
                ),
                {"w": workspace_id, "n": name_or_id},
            ).all()
            if not rows:
                rows = conn.execute(
                    text(
                        f"SELECT {_DOC_COLS} FROM documents d WHERE d.workspace_id = :w "
                        "AND d.file_name ILIKE :n ORDER BY d.id"
                    ),
                    {"w": workspace_id, "n": f"%{name_or_id}%"},
                ).all()
        return [_document(r) for r in rows]

    def forget_document(
        self, document_id: int, history_window: int = 12
    ) -> tuple[Document, int, bool] | None:
        """Delete a document, its chunks, and every stored message that quoted it, at once.

        Also the answers citing its chunks with their questions, and the workspace's
        keyword terms left with no chunk.  Returns the document, the number of chunks
        removed, and whether its bytes are still used by another document (so the file
        store keeps them).
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                text(f"SELECT {_DOC_COLS} FROM documents d WHERE d.id = :id FOR UPDATE"),
                {"id": document_id},
            ).first()
            if row is None:
                return None
            doc = _document(row)
            # Every stored copy of its text goes with it: the answers that cited its
            # chunks (they quote them, and history puts them back into prompts), the
            # question each answered, and the turns after it in that conversation that
            # were answered with it in their history (the next ``history_window``
            # messages, and their questions), and feedback that copied any of them.
            quoted = list(
                conn.execute(
                    text(
                        "WITH cited AS (SELECT coalesce(array_agg(id), '{}') AS ids "
                        "  FROM chunks WHERE document_id = :d), "
                        "conv AS (SELECT m.id, m.binding_id, m.thread_id, m.role, "
                        "  m.cited_chunk_ids, row_number() OVER (PARTITION BY m.binding_id, "
                        "  m.thread_id ORDER BY m.created_at, m.id) AS pos FROM messages m "
                        "  WHERE (m.binding_id, m.thread_id) IN (SELECT q.binding_id, "
                        "  q.thread_id FROM messages q, cited WHERE q.role = 'assistant' "
                        "  AND q.cited_chunk_ids && cited.ids)), "
                        "quoting AS (SELECT c.binding_id, c.thread_id, c.pos FROM conv c, "
                        "  cited WHERE c.role = 'assistant' AND c.cited_chunk_ids && cited.ids) "
                        "SELECT DISTINCT c.id FROM conv c JOIN quoting q "
                        "  ON c.binding_id = q.binding_id AND c.thread_id = q.thread_id "
                        "  AND c.pos BETWEEN q.pos - 1 AND q.pos + :window + 1"
                    ),
                    {"d": document_id, "window": history_window},
                ).scalars()
            )
            quoted = [int(i) for i in quoted if i is not None]
            if quoted:
                conn.execute(
                    text("DELETE FROM feedback WHERE message_id = ANY(:ids)"), {"ids": quoted}
                )
                conn.execute(text("DELETE FROM messages WHERE id = ANY(:ids)"), {"ids": quoted})
            removed = conn.execute(
                text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id}
            ).rowcount
            # The triggers lowered df; terms no chunk of the workspace holds any more
            # would still list the document's vocabulary.
            conn.execute(
                text("DELETE FROM keyword_terms WHERE workspace_id = :w AND df <= 0"),
                {"w": doc.workspace_id},
            )
            conn.execute(text("DELETE FROM documents WHERE id = :d"), {"d": document_id})
            still_used = bool(
                conn.execute(
                    text("SELECT 1 FROM documents WHERE sha256 = :s LIMIT 1"), {"s": doc.sha256}
                ).scalar()
            )
        return doc, removed, still_used

    def sha_in_use(self, sha256: str) -> bool:
        """Whether any document still refers to these bytes."""
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM documents WHERE sha256 = :s LIMIT 1"), {"s": sha256}
                ).scalar()
            )

    # -- the ingest queue -------------------------------------------------------------------

    @contextlib.contextmanager
    def claim_document(self) -> Iterator[DocumentClaim | None]:
        """Claim the next queued document for indexing, across processes.

        The next is the oldest document of the workspace served least recently
        (:meth:`mark_served`; never served first), so that one team's large upload
        does not hold every other team's files behind it.  Within a workspace, a
        document that failed attempts goes behind the ones not yet tried.

        The claim is a session advisory lock held on a dedicated connection for as
        long as the block runs.  A process that dies mid-ingest loses its session,
        hence its lock, and its document ('indexing' but unlocked) is claimed again.
        So does a database restart while the worker is still embedding: its writes
        name the claim (:meth:`complete_document`) and raise ClaimLost instead of
        writing a second time what the new claimant writes.
        """
        conn = self.engine.connect()
        claimed: int | None = None
        try:
            candidates = conn.execute(_CLAIM_ORDER).scalars().all()
            conn.commit()
            for doc_id in candidates:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:a, :b)"),
                    {"a": LOCK_DOCUMENT, "b": int(doc_id)},
                ).scalar()
                conn.commit()
                if not got:
                    continue
                # Re-check under the lock: another process may have finished it, or be
                # writing it under a claim it lost (the row lock waits for that write).
                still = conn.execute(
                    text("SELECT status FROM documents WHERE id = :id FOR UPDATE"),
                    {"id": doc_id},
                ).scalar()
                conn.commit()
                if still in ("queued", "indexing"):
                    claimed = int(doc_id)
                    break
                conn.execute(
                    text("SELECT pg_advisory_unlock(:a, :b)"),
                    {"a": LOCK_DOCUMENT, "b": int(doc_id)},
                )
                conn.commit()
            if claimed is None:
                yield None
            else:
                session = conn.execute(_SESSION).one()
                conn.commit()
                document = self.get_document(claimed)
                yield (
                    DocumentClaim(document, (int(session.pid), session.backend_start))
                    if document is not None
                    else None
                )
        finally:
            if claimed is not None:
                with contextlib.suppress(Exception):
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": LOCK_DOCUMENT, "b": claimed},
                    )
                    conn.commit()
            conn.close()

    def set_document_status(
        self,
        document_id: int,
        status: str,
        *,
        error: str | None = None,
        claim: DocumentClaim | None = None,
    ) -> None:
        """Record a status change (and the error text for 'failed').

        With ``claim``, only while the claim holds (ClaimLost otherwise).
        """
        with self.engine.begin() as conn:
            if claim is not None:
                _check_held(conn, claim)
            conn.execute(
                text(
                    "UPDATE documents SET status = :s, error = :e, updated_at = now(), "
                    "attempts = attempts + CASE WHEN :s = 'indexing' THEN 1 ELSE 0 END "
                    "WHERE id = :id"
                ),
                {"s": status, "e": error, "id": document_id},
            )

    def mark_served(self, workspace_id: int) -> None:
        """Record that the ingest worker is taking one of this workspace's documents now."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE workspaces SET ingest_served_at = clock_timestamp() WHERE id = :w"),
                {"w": workspace_id},
            )

    def fairer_waiting(self, workspace_id: int) -> bool:
        """Whether another workspace served less recently has a document nobody holds.

        A worker reads the next document ahead while it embeds the current one; when a
        team shares a file meanwhile, the read-ahead of the busy workspace gives way.
        """
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM documents d "
                        "JOIN workspaces w ON w.id = d.workspace_id, "
                        "(SELECT ingest_served_at AS at FROM workspaces WHERE id = :w) mine "
                        "WHERE d.status IN ('queued', 'indexing') AND d.workspace_id <> :w "
                        "AND mine.at IS NOT NULL "
                        "AND (w.ingest_served_at IS NULL OR w.ingest_served_at < mine.at) "
                        "AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                        " AND l.classid::bigint = :a AND l.objid::bigint = d.id"
                        " AND l.objsubid = 2))"
                    ),
                    {"w": workspace_id, "a": LOCK_DOCUMENT},
                ).scalar_one()
            )

    def count_attempt(self, document_id: int) -> int:
        """Count a failed attempt at a queued document (it stays queued); the new count."""
        with self.engine.begin() as conn:
            count = conn.execute(
                text(
                    "UPDATE documents SET attempts = attempts + 1, updated_at = now() "
                    "WHERE id = :d RETURNING attempts"
                ),
                {"d": document_id},
            ).scalar()
        return int(count or 0)

    def workspace_chunks_held(self, workspace_id: int, *, excluding: int | None = None) -> int:
        """Chunks a workspace holds, those of document ``excluding`` left out."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM chunks WHERE workspace_id = :w "
                        "AND document_id IS DISTINCT FROM :d"
                    ),
                    {"w": workspace_id, "d": excluding},
                ).scalar_one()
            )

    def complete_document(
        self,
        document_id: int,
        *,
        page_count: int,
        chunks: Sequence[NewChunk],
        embedding_model_id: int,
        notes: str | None = None,
        claim: DocumentClaim | None = None,
    ) -> None:
        """Write a document's chunks and mark it ready, in one transaction.

        ``notes``: what the user should know about a document that was indexed anyway
        (pages that could not be read), kept in ``error`` beside the ready status.
        ``claim``: the worker's claim; ClaimLost (nothing written) when it no longer
        holds, since another worker may have claimed the document meanwhile.
        """
        with self.engine.begin() as conn:
            ws = conn.execute(
                text("SELECT workspace_id FROM documents WHERE id = :d FOR UPDATE"),
                {"d": document_id},
            ).scalar()
            if ws is None:
                return  # forgotten while it was being indexed: nothing to write
            if claim is not None:
                _check_held(conn, claim)
            conn.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id})
            if chunks:
                conn.execute(
                    text(
                        "INSERT INTO chunks (document_id, workspace_id, ordinal, page_start, "
                        "page_end, location, text, embedding, embedding_model_id) "
                        "VALUES (:d, :w, :o, :ps, :pe, :loc, :t, :e, :m)"
                    ),
                    [
                        {
                            "d": document_id,
                            "w": ws,
                            "o": c.ordinal,
                            "ps": c.page_start,
                            "pe": c.page_end,
                            "loc": c.location,
                            "t": c.text,
                            "e": vector_literal(c.embedding),
                            "m": embedding_model_id,
                        }
                        for c in chunks
                    ],
                )
            conn.execute(
                text(
                    "UPDATE documents SET status = 'ready', error = :n, page_count = :p, "
                    "updated_at = now() WHERE id = :d"
                ),
                {"p": page_count, "d": document_id, "n": notes},
            )

    def fail_document(self, document_id: int, error: str, *, page_count: int | None = None) -> None:
        """Mark a document failed with a plain reason; no chunks are kept."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id})
            conn.execute(
                text(
                    "UPDATE documents SET status = 'failed', error = :e, "
                    "page_count = COALESCE(:p, page_count), updated_at = now() WHERE id = :d"
                ),
                {"e": error, "p": page_count, "d": document_id},
            )

    def ingest_queue_depth(self, workspace_id: int | None = None) -> int:
        """Documents waiting to be indexed or being indexed: of one workspace, or all."""
        where = "status IN ('queued', 'indexing')"
        if workspace_id is not None:
            where += " AND workspace_id = :w"
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM documents WHERE {where}"), {"w": workspace_id}
                ).scalar_one()
            )

    # -- documents by their platform file (deleted on the platform: forgotten here) --------
    # Used by Dispatcher._on_file_removed and the Slack adapter's reconciliation of
    # deleted files.

    def documents_by_source_file(
        self, platform: str, file_id: str, workspace_id: int | None = None
    ) -> list[Document]:
        """The documents indexed from this platform file: in every workspace, or one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DOC_COLS} FROM documents d WHERE d.source_platform = :p "
                    "AND d.source_file_id = :f "
                    "AND (CAST(:w AS bigint) IS NULL OR d.workspace_id = :w) ORDER BY d.id"
                ),
                {"p": platform, "f": file_id, "w": workspace_id},
            ).all()
        return [_document(r) for r in rows]

    def source_file_ids(self, platform: str) -> list[str]:
        """The distinct platform file ids that documents were indexed from."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT DISTINCT source_file_id FROM documents WHERE source_platform = :p "
                        "AND source_file_id IS NOT NULL ORDER BY source_file_id"
                    ),
                    {"p": platform},
                ).scalars()
            )


def _check_held(conn: Connection, claim: DocumentClaim) -> None:
    """Raise ClaimLost unless the claim's session still holds the document's lock."""
    pid, started = claim.session
    held = conn.execute(
        _HELD,
        {"a": LOCK_DOCUMENT, "d": claim.document.id, "pid": pid, "started": started},
    ).scalar()
    if not held:
        raise ClaimLost(claim.document.id)
