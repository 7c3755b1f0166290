"""Keyword search ranked by BM25, computed in Postgres, one workspace at a time.

Candidates are the workspace's chunks (of one embedding model) that hold ANY query
term, found through the GIN index on ``chunks.tsv`` as before.  Each is scored by
Okapi BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond", 2009), with Lucene's form of the IDF, which is never negative:

    score(chunk) = sum over query terms t in the chunk of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

Query terms are the distinct lexemes of ``to_tsvector('english', query)``: the words
``plainto_tsquery`` would keep, stemmed, stop words dropped.

Where each statistic comes from, and why (the cost must stay low at 100k chunks):

* **tf**: the number of positions of the term in the chunk's tsvector.  Only the query
  terms are unnested: ``setweight(tsv, 'A', terms)`` marks them and ``ts_filter(...,
  '{a}')`` keeps them (every lexeme of a ``to_tsvector`` starts at weight D), both in
  C, so a 100-lexeme chunk yields a handful of rows instead of a hundred.
* **dl**: ``chunks.tsv_length``, the number of token positions of the chunk (stop words
  excluded), a generated column (migration 0003) so no query unnests whole vectors.
* **df**: counted from the candidates themselves.  Every chunk that holds a query term
  is a candidate, so the number of candidates holding t *is* df(t) within the
  workspace; it costs nothing beyond the scan the search does anyway, and needs no
  per-term table (whose hot rows every ingest would update) nor an extra index probe
  per term (the GIN index is not per workspace: a probe would count other teams' rows
  before filtering them out).
* **N and avgdl**: the ``keyword_stats`` row of the (workspace, model), kept by
  triggers on ``chunks`` on every insert, COPY, delete and cascade (migration 0003),
  so forgetting a document updates them in the same transaction.  One primary-key
  lookup.

All four are taken within the workspace and the embedding model: another team's
documents never change a score.  Everything is read in one statement, hence from one
snapshot.

Measured on the 2-core development machine (embedded Postgres 16.2, other jobs running):

* SQuAD v1.1, 2,067 chunks, 2,000 questions through ``Retriever.search``: keyword
  search p50 8.9 ms / p95 15.1 ms (``ts_rank_cd`` before: 12.2 / 25.1 ms).
* ``EXPLAIN (ANALYZE, BUFFERS)`` of "What is the name of the stadium where Super Bowl
  50 was played?" in workspaces of random five-sentence SQuAD mixes (122k chunks in
  all): 2k-chunk workspace, 294 candidates, 662 buffers, 8.5 ms; 100k-chunk workspace,
  15,554 candidates (the question's common words, "name" and "play"), 28.7k buffers,
  192 ms.  100 questions: p50 / p95 15 / 36 ms at 2k, 59 / 138 ms at 20k, 294 / 576 ms
  at 100k; ``ts_rank_cd`` on the same: 19 / 71, 106 / 412, 547 / 1,960 ms.

So the statistics cost nothing measurable; the time is the candidate scan, as before:
every chunk holding any query term is read (heap and tsvector), and a common word
makes that a large share of a big workspace.  Bounding it needs dynamic pruning
(MaxScore/WAND: score the rare terms' chunks first, stop when the common terms'
maximum contribution cannot reach the k-th score), which needs per-term df ahead of
the scan, i.e. a per-workspace term table; not done yet.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bot.store.records import ChunkHit

# Anserini's BM25 defaults (Lin et al., "Anserini: Enabling the Use of Lucene for
# Information Retrieval Research", SIGIR 2017; Yang et al., JDIQ 2018), the usual
# baseline for passage retrieval.  Standard values, not fitted to any evaluation set.
K1 = 0.9
B = 0.4

# A query term as a tsquery literal: quoted, with quotes and backslashes escaped, so a
# lexeme such as o'brien or a\b cannot break the query syntax.
_QUOTED = r"'''' || replace(replace(t.lexeme, '\', '\\'), '''', '''''') || ''''"

SEARCH_SQL = f"""
WITH terms AS (
    SELECT array_agg(t.lexeme) AS lexemes,
           count(*) AS n_terms,
           string_agg({_QUOTED}, ' | ')::tsquery AS any_q
    FROM unnest(to_tsvector('english', %(query)s)) AS t
),
stats AS (
    SELECT s.chunk_count::float8 AS n,
           s.token_count::float8 / greatest(s.chunk_count, 1) AS avgdl
    FROM keyword_stats s
    WHERE s.workspace_id = %(w)s AND s.embedding_model_id = %(m)s
),
tf AS (
    SELECT c.id, c.tsv_length AS dl, q.lexeme,
           coalesce(array_length(q.positions, 1), 1) AS tf
    FROM chunks c
    CROSS JOIN terms
    CROSS JOIN LATERAL unnest(ts_filter(setweight(c.tsv, 'A', terms.lexemes), '{{a}}')) AS q
    WHERE c.workspace_id = %(w)s AND c.embedding_model_id = %(m)s AND c.tsv @@ terms.any_q
),
df AS (
    SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme
),
scored AS (
    SELECT tf.id,
           sum(ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5))
               * tf.tf * (%(k1)s + 1)
               / (tf.tf + %(k1)s * (1 - %(b)s + %(b)s * tf.dl / nullif(stats.avgdl, 0))))
               AS score,
           count(*) AS matched
    FROM tf JOIN df USING (lexeme) CROSS JOIN stats
    GROUP BY tf.id
    ORDER BY score DESC, tf.id
    LIMIT %(k)s
)
SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, c.page_end, c.text,
       s.score AS keyword_rank, (s.matched = terms.n_terms) AS all_terms,
       d.source_channel, d.source_url
FROM scored s
JOIN chunks c ON c.id = s.id
JOIN documents d ON d.id = c.document_id
CROSS JOIN terms
ORDER BY s.score DESC, c.id
"""


def search_bm25(
    conn: psycopg.Connection[Any],
    workspace_id: int,
    embedding_model_id: int,
    query: str,
    k: int,
    *,
    k1: float = K1,
    b: float = B,
) -> list[ChunkHit]:
    """The k chunks of one workspace (and embedding model) that best match ``query`` by BM25.

    ``keyword_rank`` is the BM25 score; ``all_terms`` says the chunk holds every query
    term.  A query of stop words only (or nothing) has no terms and finds nothing.
    """
    if k <= 0 or not query.strip():
        return []
    rows = conn.execute(
        SEARCH_SQL,
        {
            "w": int(workspace_id),
            "m": int(embedding_model_id),
            "query": query,
            "k": int(k),
            "k1": float(k1),
            "b": float(b),
        },
    ).fetchall()
    return [
        ChunkHit(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            keyword_rank=r[6],
            all_terms=r[7],
            source_channel=r[8],
            source_url=r[9],
        )
        for r in rows
    ]
