"""Searching workspaces: dense and keyword search, bulk loads.

``SearchMixin`` holds the Store's search side (``bot.store.repo.Store`` is composed
of it); these methods are the only ones on the search pool (``Database.searcher``:
plain psycopg, no pre-ping, binary vectors).  The per-workspace HNSW indexes they
search are known, built and upgraded by ``bot.store.workspace_index``.  The plans
and their measurements are in the README's "Dense search plans".
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.store.database import HNSW_EF_SEARCH
from bot.store.hnsw import ef_search_for
from bot.store.keyword import TermStats, analyze, search_bm25, term_stats
from bot.store.records import ChunkHit
from bot.store.workspace_index import (
    EXACT_SCAN_MAX_ROWS,
    LOCK_WORKSPACE_INDEX,
    IndexKind,
    WorkspaceIndexMixin,
    workspace_index_name,
)

__all__ = [
    "EXACT_SCAN_MAX_ROWS",
    "LOCK_WORKSPACE_INDEX",
    "IndexKind",
    "SearchMixin",
    "vector_literal",
    "workspace_index_name",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# A chunk as a ChunkHit (no search scores), with its document's name and origin.
_CHUNK_HIT_SELECT = (
    "SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, c.page_end, c.text, "
    "d.source_channel, d.source_url, c.location "
    "FROM chunks c JOIN documents d ON d.id = c.document_id"
)


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form; exact round trip of float32 values.

    ``str`` of a list formats its floats in C (shortest repr, which round-trips):
    ~3x faster than joining reprs, and pgvector skips the spaces after the commas.
    """
    return str([float(v) for v in values])


def _dense_hit(r: Sequence[Any]) -> ChunkHit:
    """A row of search_dense's SELECT, by position."""
    return ChunkHit(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        similarity=r[6],
        source_channel=r[7],
        source_url=r[8],
        location=r[9],
    )


class SearchMixin(WorkspaceIndexMixin):
    """The Store's searches (state is set up by ``Store.__init__``)."""

    _searcher: Engine
    plan_counts: collections.Counter[str]

    # -- retrieval --------------------------------------------------------------------------

    def workspace_chunk_count(self, workspace_id: int, embedding_model_id: int) -> int:
        """How many chunks of this model a workspace holds (decides exact vs HNSW)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM chunks WHERE workspace_id = :w "
                        "AND embedding_model_id = :m"
                    ),
                    {"w": workspace_id, "m": embedding_model_id},
                ).scalar_one()
            )

    def total_chunk_count(self, embedding_model_id: int) -> int:
        """Chunks of this model across all workspaces (an estimate is enough)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM chunks WHERE embedding_model_id = :m"),
                    {"m": embedding_model_id},
                ).scalar_one()
            )

    def search_dense(
        self,
        workspace_id: int,
        embedding_model_id: int,
        dims: int,
        vector: Sequence[float],
        k: int,
        *,
        exact: bool = False,
    ) -> list[ChunkHit]:
        """The k chunks nearest to ``vector`` by cosine, in one workspace only.

        Two plans (see "Dense search plans" in the README's performance section):

        * a workspace with its own partial HNSW index (``ensure_workspace_index`` builds
          one when it outgrows ``exact_scan_max_rows``): a plain HNSW search of that
          index, which holds this workspace's rows only, so nothing is filtered after
          the scan and recall is that of unfiltered HNSW;
        * any other (or ``exact=True``): an exact scan of the workspace's rows, found
          through the b-tree on ``workspace_id``.  That covers small workspaces and a
          large one whose index is being built.  A model-wide HNSW index filtered by
          workspace used to stand in for the latter; it cost every chunk written an
          HNSW insert (~80% of writing a document).

        The plan is chosen without counting the workspace's rows.  Ids are integers,
        inlined into the SQL: a partial index is only considered when its predicate is
        proved by constants, never by a bound parameter.  The index is searched in the
        type it holds (``IndexKind``): halfvec ones, built on the pgvector 0.8 path, are
        ordered by halfvec distance; the similarity returned is always full precision.
        """
        query = np.asarray(vector, dtype=np.float32)
        dim = int(dims)
        ws, model, limit = int(workspace_id), int(embedding_model_id), int(k)
        select = (
            "SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, c.page_end, "
            f"c.text, 1 - (c.embedding::vector({dim}) <=> CAST(%(q)s AS vector({dim}))) "
            "AS similarity, "
            "d.source_channel, d.source_url, c.location "
        )
        # OFFSET 0 fences the workspace's rows off from the ORDER BY, so the planner
        # cannot answer it with an HNSW index, without materialising them: a MATERIALIZED
        # CTE copied every vector into a tuplestore that spilled to disk past work_mem
        # (20k rows: 3,800 temp blocks written, ~3x slower; EXPLAIN (ANALYZE, BUFFERS)).
        exact_sql = (
            "WITH top AS (SELECT id FROM (SELECT id, embedding FROM chunks "
            f"WHERE workspace_id = {ws} AND embedding_model_id = {model} OFFSET 0) ws "
            # No cast to vector(dim) here: no index is wanted, and the cast copied every
            # row's vector (~20% of the scan).  The model filter guarantees the dims.
            f"ORDER BY embedding <=> CAST(%(q)s AS vector) LIMIT {limit}) "
            + select
            + "FROM top JOIN chunks c ON c.id = top.id JOIN documents d ON d.id = c.document_id "
            "ORDER BY similarity DESC"
        )
        params = {"q": query}

        def run(conn: psycopg.Connection[Any]) -> tuple[str, list[Any]]:
            index = None if exact else self._workspace_indexed(conn, model, ws)
            if index is None:
                return ("forced_exact" if exact else "exact"), conn.execute(
                    exact_sql, params
                ).fetchall()
            kind = index.kind
            approx_sql = (
                select + "FROM chunks c JOIN documents d ON d.id = c.document_id "
                f"WHERE c.workspace_id = {ws} AND c.embedding_model_id = {model} "
                f"ORDER BY c.{kind.of(dim)} <=> CAST(%(q)s AS {kind.type}({dim})) "
                f"LIMIT {limit}"
            )
            # Unfiltered HNSW over this workspace alone, as broad as its size needs
            # (ef_search_for).  HNSW_EF_SEARCH is every session's default (a connect
            # option): a search that needs no more costs one statement.
            ef = ef_search_for(index.rows, limit)
            if ef == HNSW_EF_SEARCH:
                rows = conn.execute(approx_sql, params).fetchall()
            else:
                conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                try:
                    rows = conn.execute(approx_sql, params).fetchall()
                finally:
                    conn.execute(f"SET hnsw.ef_search = {int(HNSW_EF_SEARCH)}")
            if len(rows) < limit:  # a graph cut off around the query, or a tiny workspace
                return "exact_fallback", conn.execute(exact_sql, params).fetchall()
            return "workspace_hnsw", rows

        plan, rows = self._search(run)
        self.plan_counts[plan] += 1
        hits = [_dense_hit(r) for r in rows]
        hits.sort(key=lambda h: h.similarity or 0.0, reverse=True)
        return hits

    def similarities(
        self,
        workspace_id: int,
        embedding_model_id: int,
        dims: int,
        vector: Sequence[float],
        chunk_ids: Sequence[int],
    ) -> dict[int, float]:
        """The cosine similarity of ``vector`` to each of these chunks (of this workspace
        and model): for chunks the keyword search found beyond the dense list's reach."""
        if not chunk_ids:
            return {}
        dim = int(dims)
        sql = (
            f"SELECT id, 1 - (embedding::vector({dim}) <=> CAST(%(q)s AS vector({dim}))) "
            f"FROM chunks WHERE workspace_id = {int(workspace_id)} "
            f"AND embedding_model_id = {int(embedding_model_id)} AND id = ANY(%(ids)s)"
        )
        params = {"q": np.asarray(vector, dtype=np.float32), "ids": [int(i) for i in chunk_ids]}
        rows = self._search(lambda conn: conn.execute(sql, params).fetchall())
        return {int(r[0]): float(r[1]) for r in rows}

    def _search(self, run: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``run`` on a search connection, once more on a new one if it was cut.

        The search pool does not ping before use (a round trip per search); a
        connection the server dropped (a restart, an admin's pg_terminate_backend)
        fails its first statement instead.  Its pooled siblings were most likely
        cut too, so the whole pool is replaced (connections checked out by other
        threads finish their work and are closed on return) before the retry.
        """
        for attempt in (1, 2):
            pooled = self._searcher.raw_connection()
            try:
                return run(pooled.driver_connection)
            except psycopg.OperationalError:
                # Only a lost connection is retried; a cancelled statement is not.
                if not pooled.driver_connection.broken:
                    raise
                pooled.invalidate()
                if attempt == 2:
                    raise
                log.info("a search connection was cut; retrying on a new pool")
                self._searcher.dispose()
            finally:
                pooled.close()
        raise AssertionError("unreachable")

    def search_keyword(
        self, workspace_id: int, embedding_model_id: int, query: str, k: int
    ) -> list[ChunkHit]:
        """Full-text matches in one workspace: any query term, ranked by BM25.

        The SQL and the choice of statistics are in ``bot.store.keyword``.
        """
        return self._search(
            lambda conn: search_bm25(
                conn, workspace_id, embedding_model_id, query, k, plans=self.plan_counts
            )
        )

    def term_stats(self, workspace_id: int, embedding_model_id: int, query: str) -> TermStats:
        """The query's lexemes and their document frequency in the workspace (for weights)."""
        return self._search(lambda conn: term_stats(conn, workspace_id, embedding_model_id, query))

    def analyze(self, texts: Sequence[str], *, question: bool = False) -> list[frozenset[str]]:
        """Each text's distinct lexemes, by the keyword index's own analyzer (``question``:
        by the one it reads questions with)."""
        return self._search(lambda conn: analyze(conn, list(texts), question=question))

    def chunks_by_ids(self, workspace_id: int, ids: Sequence[int]) -> list[ChunkHit]:
        """Chunks by id, within one workspace (forgotten ones are simply absent)."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"{_CHUNK_HIT_SELECT} WHERE c.workspace_id = :w AND c.id = ANY(:ids)"),
                {"w": workspace_id, "ids": list(ids)},
            ).all()
        return [ChunkHit(**r._mapping) for r in rows]

    def next_chunks(self, workspace_id: int, ids: Sequence[int]) -> dict[int, ChunkHit]:
        """The chunk that follows each of these in its document (ordinal + 1), by the id
        of the one it follows; a document's last chunk has none.  Within one workspace."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.id AS after, c.id AS chunk_id, c.document_id, d.file_name, "
                    "c.page_start, c.page_end, c.text, d.source_channel, d.source_url, "
                    "c.location FROM chunks p "
                    "JOIN chunks c ON c.document_id = p.document_id AND c.ordinal = p.ordinal + 1 "
                    "JOIN documents d ON d.id = c.document_id "
                    "WHERE p.workspace_id = :w AND p.id = ANY(:ids) AND c.workspace_id = :w"
                ),
                {"w": workspace_id, "ids": list(ids)},
            ).all()
        return {
            int(r.after): ChunkHit(**{k: v for k, v in r._mapping.items() if k != "after"})
            for r in rows
        }

    def document_openings(
        self,
        workspace_id: int,
        chars: int = 300,
        *,
        shared_in: tuple[str, str, Sequence[str]] | None = None,
    ) -> list[tuple[int, str, str]]:
        """(id, file name, the start of its first chunks) of each ready document: the
        title and first lines, to recognise a document a question names.  The second
        chunk counts too: a first chunk may hold no title at all (an e-book's "Cover",
        seen by hand in session 17: "Who wrote Winter Sports in Switzerland?" named no
        document, the title being in the second).

        In the order they were indexed, except that those shared in the channel
        ``shared_in`` (platform, space, the channel's id and names) come last: several
        channels may read one workspace, and "this document" is this channel's latest.
        """
        platform, space, names = shared_in or ("", "", [])
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT d.id, d.file_name, coalesce(left(string_agg(c.text, "
                    "E'\\n\\n' ORDER BY c.ordinal), :n), '') "
                    "FROM documents d LEFT JOIN chunks c "
                    "ON c.document_id = d.id AND c.ordinal < 2 "
                    "WHERE d.workspace_id = :w AND d.status = 'ready' "
                    "GROUP BY d.id "
                    "ORDER BY (d.source_platform = :p AND d.source_space = :s "
                    "AND d.source_channel = ANY(:names)) IS TRUE, d.id"
                ),
                {"w": workspace_id, "n": chars, "p": platform, "s": space, "names": list(names)},
            ).all()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def opening_chunks(
        self, workspace_id: int, document_id: int, n: int = 2, *, page: int | None = None
    ) -> list[ChunkHit]:
        """A document's first ``n`` chunks (title, abstract, first headings), in order;
        with ``page``, the first ``n`` of that page (slide, sheet)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"{_CHUNK_HIT_SELECT} "
                    "WHERE c.workspace_id = :w AND c.document_id = :d "
                    "AND (CAST(:p AS integer) IS NULL OR (c.page_start <= :p "
                    "AND coalesce(c.page_end, c.page_start) >= :p)) "
                    "ORDER BY c.ordinal LIMIT :n"
                ),
                {"w": workspace_id, "d": document_id, "n": n, "p": page},
            ).all()
        return [ChunkHit(**r._mapping) for r in rows]

    # -- bulk loading ----------------------------------------------------------------------

    def analyze_chunks(self) -> None:
        """Refresh the planner's statistics on chunks (after a bulk load)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE chunks"))

    def bulk_load_vectors(
        self,
        workspace_id: int,
        embedding_model_id: int,
        vectors: Any,
        *,
        file_name: str,
        chunk_text: str = "synthetic chunk",
    ) -> int:
        """Insert ready-made vectors as the chunks of one new 'ready' document, by COPY.

        For benchmarks and imports: ``vectors`` is a float32 array (rows x dims); rows are
        written in PostgreSQL's binary COPY format, built with numpy.  Returns the
        document id.
        """
        import hashlib

        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vecs.shape
        body = chunk_text.encode()
        with self.engine.begin() as conn:
            doc_id = int(
                conn.execute(
                    text(
                        "INSERT INTO documents (workspace_id, file_name, media_type, sha256, "
                        "size_bytes, status, page_count) VALUES (:w, :f, 'text/plain', :s, 0, "
                        "'ready', 1) RETURNING id"
                    ),
                    {
                        "w": int(workspace_id),
                        "f": file_name,
                        "s": hashlib.sha256(f"{workspace_id}/{file_name}".encode()).hexdigest(),
                    },
                ).scalar_one()
            )
        row = np.dtype(
            [
                ("nf", ">i2"),
                ("l1", ">i4"),
                ("doc", ">i8"),
                ("l2", ">i4"),
                ("ws", ">i8"),
                ("l3", ">i4"),
                ("ord", ">i4"),
                ("l4", ">i4"),
                ("txt", f"S{len(body)}"),
                ("l5", ">i4"),
                ("vdim", ">i2"),
                ("vpad", ">i2"),
                ("vec", ">f4", (dim,)),
                ("l6", ">i4"),
                ("model", ">i8"),
            ]
        )
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            copy_sql = (
                "COPY chunks (document_id, workspace_id, ordinal, text, embedding, "
                "embedding_model_id) FROM STDIN WITH (FORMAT BINARY)"
            )
            with cur.copy(copy_sql) as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2)
                for start in range(0, n, 20_000):
                    part = vecs[start : start + 20_000]
                    out = np.empty(len(part), dtype=row)
                    out["nf"] = 6
                    out["l1"], out["doc"] = 8, doc_id
                    out["l2"], out["ws"] = 8, int(workspace_id)
                    out["l3"], out["ord"] = 4, np.arange(start, start + len(part))
                    out["l4"], out["txt"] = len(body), body
                    out["l5"], out["vdim"], out["vpad"] = 4 + 4 * dim, dim, 0
                    out["vec"] = part
                    out["l6"], out["model"] = 8, int(embedding_model_id)
                    copy.write(out.tobytes())
                copy.write((-1).to_bytes(2, "big", signed=True))
            raw.commit()
        finally:
            raw.close()
        return doc_id

    def workspace_vectors(self, workspace_id: int, embedding_model_id: int) -> Any:
        """A workspace's chunk vectors as a float32 array (rows x dims), in chunk order."""

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT embedding::real[] FROM chunks WHERE workspace_id = :w "
                    "AND embedding_model_id = :m ORDER BY id"
                ),
                {"w": int(workspace_id), "m": int(embedding_model_id)},
            ).scalars()
            return np.array(list(rows), dtype=np.float32)

    def document_chunk_ids(self, document_id: int) -> list[int]:
        """The ids of a document's chunks, in chunk order."""
        with self.engine.connect() as conn:
            return [
                int(i)
                for i in conn.execute(
                    text("SELECT id FROM chunks WHERE document_id = :d ORDER BY ordinal"),
                    {"d": int(document_id)},
                ).scalars()
            ]

    def chunk_texts(self, document_ids: Sequence[int]) -> list[str]:
        """The chunk texts of some documents, in document and chunk order."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT text FROM chunks WHERE document_id = ANY(:d) "
                        "ORDER BY document_id, ordinal"
                    ),
                    {"d": [int(d) for d in document_ids]},
                ).scalars()
            )
