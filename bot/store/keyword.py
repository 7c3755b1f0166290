"""Keyword search ranked by BM25, computed in Postgres, one workspace at a time.

Candidates are the workspace's chunks (of one embedding model) that hold a query
term, found through the GIN index on ``chunks.tsv``.  Each is scored by Okapi BM25
(Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
2009), with Lucene's form of the IDF, which is never negative:

    score(chunk) = sum over query terms t in the chunk of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

Query terms are the distinct lexemes of ``librarian_query_tsvector(query)``, the
analyzer ``chunks.tsv`` is built with (migration 0008), OR-ed like ``plainto_tsquery``
would.  (``chunks.tsv`` is ``librarian_tsvector``: that analyzer and, since migration
0014, the words of camel-case names, "PandocTemplateError" -> "pandoc template
error", which a question writes in plain words; since 0015, also cut after a run of
capitals, "HTTPServer" -> "http server".)

* **English** (any text outside the CJK runs): ``to_tsvector('english', ...)``, words
  stemmed, stop words dropped.  Text without a CJK letter goes straight to it, so an
  English chunk's vector (and its length) is exactly what it was before 0008.
* **Chinese, Japanese, Korean** (runs of Han, Hiragana, Katakana or Hangul letters):
  overlapping character bigrams, ``显存不足`` -> ``显存 存不 不足``; a lone CJK letter
  is its own term.  The English parser took a whole run between two punctuation marks
  for one word (and glued it to adjacent Latin letters: ``DeepMind开发``), so a Chinese
  question matched nothing unless it repeated a clause verbatim.  Mixed text splits at
  the script change: ``GPU 显存不足`` -> ``gpu 显存 存不 不足``.

Bigrams rather than a word segmenter (jieba, MeCab): no dictionary to ship or keep
current, no extension to install in Postgres, and one SQL function serves indexing and
questions alike, so both always split the same way.  Every two-character word of a
question meets the passage's; the pairs spanning a word border ("存不") are noise that
BM25's IDF weighs down.  On real Chinese text (a qq.com article and 172
langchain-ChatGLM issues, tests/test_keyword_search.py), 12 Chinese questions worded
unlike their passages put the passage first 9 times and in the top 3 every time, by
keyword search alone; the English parser found none of them.  Each bigram counts as a
token of ``tsv_length``.  On English text (4,255 SQuAD chunks, side by side with the
English parser) ingest and keyword search took the same time within noise.

Where each statistic comes from, and why (the cost must stay low at 100k chunks):

* **tf**: the number of positions of the term in the chunk's tsvector.  Only the query
  terms are unnested: ``setweight(tsv, 'A', terms)`` marks them and ``ts_filter(...,
  '{a}')`` keeps them (every lexeme of ``librarian_tsvector`` starts at weight D), both in
  C, so a 100-lexeme chunk yields a handful of rows instead of a hundred.
* **dl**: ``chunks.tsv_length``, the number of token positions of the chunk (stop words
  excluded), a generated column (migration 0003) so no query unnests whole vectors.
* **df**, and a bound on tf: the ``keyword_terms`` row of the (workspace, model,
  lexeme), kept by triggers on ``chunks`` (migration 0006).  ``max_tf`` only grows,
  so it stays an upper bound when chunks are forgotten.  One primary-key lookup per
  query term.  (df used to be counted from the candidates, which needed every chunk
  holding any term to be read.)
* **N and avgdl**: the ``keyword_stats`` row of the (workspace, model), kept by
  triggers on ``chunks`` on every insert, COPY, delete and cascade (migration 0003),
  so forgetting a document updates them in the same transaction.  One primary-key
  lookup.

All four are taken within the workspace and the embedding model: another team's
documents never change a score.

**Which chunks are read** (MaxScore; Turtle & Flood, "Query evaluation: strategies
and optimizations", IP&M 1995).  No chunk gets more from a term than ``idf * max_tf *
(k1 + 1) / (max_tf + k1 * (1 - b))`` (a chunk holding the term has dl >= 1).  Terms
held by at most ``RARE_SHARE`` of the workspace (or 4 k chunks) are "rare": the
chunks holding one of them are scored first, fully (every query term counts), and
their k-th score is the bar.  The commonest other terms whose bounds add up to less
than the bar are then set aside, since a chunk holding only those cannot reach the
top k; the chunks holding any remaining term (and no rare one) are scored in a
second pass, and the two lists merge.  The result is the full scan's, exactly: the
split decides what is read, never what a chunk scores.  The statements run one after
another outside a transaction; a document indexed in between can only change whether
this one question sees that new document.

Measured on the 2-core development machine (embedded Postgres 16.2), 40 SQuAD
questions over workspaces of random five-sentence SQuAD mixes (122k chunks in all):
reading every chunk that holds any query term meant a median of 20k chunks per
question in a 100k-chunk workspace (one common word, "name" or "year", is enough),
and 4k in a 20k-chunk one; with the split, 3.7k and 1.3k at k = 20.  Times are in the
README ("Keyword ranking").
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

import psycopg

from bot.store.records import ChunkHit

# Anserini's BM25 defaults (Lin et al., "Anserini: Enabling the Use of Lucene for
# Information Retrieval Research", SIGIR 2017; Yang et al., JDIQ 2018), the usual
# baseline for passage retrieval.  Standard values, not fitted to any evaluation set.
K1 = 0.9
B = 0.4
# Terms held by at most this share of the workspace's chunks (or 4 k chunks) are
# scored first.  A cost choice only: any split gives the exact BM25 top k.
RARE_SHARE = 0.01

# A query term as a tsquery literal: quoted, with quotes and backslashes escaped, so a
# lexeme such as o'brien or a\b cannot break the query syntax.
_QUOTED = r"'''' || replace(replace(t.lexeme, '\', '\\'), '''', '''''') || ''''"


# The query's distinct lexemes (tsvector lexemes are distinct) by the questions'
# analyzer (the chunks' without the words of camel-case names, migration 0014), each
# with its df and max_tf in the workspace, and the workspace's totals, in one statement.
TERMS_SQL = f"""
SELECT t.lexeme, {_QUOTED} AS quoted, coalesce(k.df, 0), coalesce(k.max_tf, 1),
       coalesce(s.chunk_count, 0), coalesce(s.token_count, 0)
FROM unnest(librarian_query_tsvector(%(query)s)) AS t
LEFT JOIN keyword_terms k
       ON k.workspace_id = %(w)s AND k.embedding_model_id = %(m)s AND k.lexeme = t.lexeme
LEFT JOIN keyword_stats s
       ON s.workspace_id = %(w)s AND s.embedding_model_id = %(m)s
"""

# BM25 of the chunks holding any term of %(read)s, with every query term's
# contribution: the top k, with their rows.  SKIP becomes a clause leaving out the
# chunks a first pass already scored.
_SCORE_SQL = """
WITH terms AS (
    SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS t(lexeme, idf)
),
tf AS (
    SELECT c.id, c.tsv_length AS dl, q.lexeme,
           coalesce(array_length(q.positions, 1), 1) AS tf
    FROM chunks c
    CROSS JOIN LATERAL unnest(ts_filter(setweight(c.tsv, 'A', %(lexemes)s::text[]), '{a}')) AS q
    WHERE c.workspace_id = %(w)s AND c.embedding_model_id = %(m)s
      AND c.tsv @@ %(read)s::tsquery SKIP
),
scored AS (
    SELECT tf.id,
           sum(terms.idf * tf.tf * (%(k1)s + 1)
               / (tf.tf + %(k1)s * (1 - %(b)s + %(b)s * tf.dl / %(avgdl)s))) AS score,
           count(*) AS matched
    FROM tf JOIN terms USING (lexeme)
    GROUP BY tf.id
    ORDER BY score DESC, tf.id
    LIMIT %(k)s
)
SELECT c.id AS chunk_id, c.document_id, d.file_name, c.page_start, c.page_end, c.text,
       s.score AS keyword_rank, (s.matched = %(n_terms)s) AS all_terms,
       d.source_channel, d.source_url, c.location
FROM scored s
JOIN chunks c ON c.id = s.id
JOIN documents d ON d.id = c.document_id
ORDER BY s.score DESC, c.id
"""
SCORE_SQL = _SCORE_SQL.replace(" SKIP", "")
SCORE_SKIPPING_SQL = _SCORE_SQL.replace(" SKIP", " AND NOT c.tsv @@ %(skip)s::tsquery")


# Each text's distinct lexemes, by the analyzer the chunks are indexed with (the same
# ``librarian_tsvector`` as ``chunks.tsv``) or the questions' (ANALYZER), so a sentence
# and a question compare as the keyword index would compare them.
ANALYZE_SQL = """
SELECT u.i, array(SELECT t.lexeme FROM unnest(ANALYZER(u.body)) AS t)
FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS u(body, i)
ORDER BY u.i
"""


@dataclass(frozen=True)
class TermStats:
    """A text's lexemes with their document frequency in one workspace."""

    chunk_count: int  # N: the workspace's chunks (of the embedding model)
    df: dict[str, int]  # lexeme -> chunks holding it (0: no chunk does)

    def idf(self, lexeme: str) -> float:
        """Lucene's BM25 idf, as the keyword search weighs the term (never negative)."""
        n, df = self.chunk_count, self.df.get(lexeme, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))


def term_stats(
    conn: psycopg.Connection[Any], workspace_id: int, model_id: int, query: str
) -> TermStats:
    """The query's lexemes with their df in the workspace, and the workspace's N."""
    rows = conn.execute(TERMS_SQL, {"query": query, "w": workspace_id, "m": model_id}).fetchall()
    if not rows:
        return TermStats(0, {})
    return TermStats(int(rows[0][4]), {str(r[0]): int(r[2]) for r in rows})


def analyze(
    conn: psycopg.Connection[Any], texts: list[str], *, question: bool = False
) -> list[frozenset[str]]:
    """Each text's distinct lexemes, as the keyword index sees them (``question``: as
    it sees a question's)."""
    if not texts:
        return []
    analyzer = "librarian_query_tsvector" if question else "librarian_tsvector"
    sql = ANALYZE_SQL.replace("ANALYZER", analyzer)
    rows = conn.execute(sql, {"texts": list(texts)}).fetchall()
    return [frozenset(r[1] or ()) for r in rows]


@dataclass(frozen=True)
class _Term:
    lexeme: str
    quoted: str  # as a tsquery literal
    df: int
    idf: float
    bound: float  # no chunk gets more than this from the term


def _any(terms: list[_Term]) -> str:
    return " | ".join(t.quoted for t in terms)


def search_bm25(
    conn: psycopg.Connection[Any],
    workspace_id: int,
    embedding_model_id: int,
    query: str,
    k: int,
    *,
    k1: float = K1,
    b: float = B,
    plans: collections.Counter[str] | None = None,
) -> list[ChunkHit]:
    """The k chunks of one workspace (and embedding model) that best match ``query`` by BM25.

    ``keyword_rank`` is the BM25 score; ``all_terms`` says the chunk holds every query
    term.  A query of stop words only (or nothing) has no terms and finds nothing.
    ``plans`` counts how each search ran: keyword_full (one pass over the chunks
    holding any term), keyword_pruned (the rare terms' chunks were enough) or
    keyword_two_pass.
    """
    if k <= 0 or not query.strip():
        return []
    w, m = int(workspace_id), int(embedding_model_id)
    rows = conn.execute(TERMS_SQL, {"query": query, "w": w, "m": m}).fetchall()
    if not rows or not rows[0][4]:
        return []
    chunk_count, token_count = int(rows[0][4]), int(rows[0][5])
    terms = []
    for lexeme, quoted, df, max_tf, _n, _tokens in rows:
        if df <= 0:  # no chunk holds it: it adds nothing and reads nothing
            continue
        idf = math.log(1 + (chunk_count - df + 0.5) / (df + 0.5))
        bound = idf * max_tf * (k1 + 1) / (max_tf + k1 * (1 - b))
        terms.append(_Term(lexeme, quoted, int(df), idf, bound))
    if not terms:
        return []
    params: dict[str, Any] = {
        "lexemes": [t.lexeme for t in terms],
        "idf": [t.idf for t in terms],
        "w": w,
        "m": m,
        "k1": float(k1),
        "b": float(b),
        "avgdl": token_count / chunk_count,
        "k": int(k),
        "n_terms": len(rows),  # the question's terms, held here or not
    }

    def score(read: list[_Term], skip: list[_Term] | None = None) -> list[Any]:
        if skip:
            sql, extra = SCORE_SKIPPING_SQL, {"read": _any(read), "skip": _any(skip)}
        else:
            sql, extra = SCORE_SQL, {"read": _any(read)}
        return conn.execute(sql, params | extra).fetchall()

    rare = [t for t in terms if t.df <= max(4 * k, RARE_SHARE * chunk_count)]
    if not rare:
        rare = [min(terms, key=lambda t: t.df)]
    if len(rare) == len(terms):
        plan, hits = "keyword_full", score(terms)
    else:
        hits = score(rare)
        bar = float(hits[k - 1][6]) if len(hits) >= k else 0.0
        # Set the commonest terms aside while their bounds together stay under the bar
        # (each bound is strict; the margin covers the rounding of float sums).
        others = sorted((t for t in terms if t not in rare), key=lambda t: t.bound)
        total, aside = 0.0, 0
        for term in others:
            if total + term.bound > bar * (1 - 1e-9):
                break
            total += term.bound
            aside += 1
        rest = others[aside:]
        if rest:
            plan = "keyword_two_pass"
            hits = sorted(hits + score(rest, skip=rare), key=lambda r: (-r[6], r[0]))[:k]
        else:
            plan = "keyword_pruned"
    if plans is not None:
        plans[plan] += 1
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
            location=r[10],
        )
        for r in hits
    ]
