"""One keyword analyzer for every language: CJK runs as character bigrams.

``to_tsvector('english', ...)`` does not segment Chinese or Japanese: the default
parser takes a whole run of CJK letters between two punctuation marks as one "word"
(``显存不足，怎么办？`` gives the lexemes ``显存不足`` and ``怎么办``), and glues a CJK
run to the Latin letters or digits beside it (``DeepMind开发出一款`` is one lexeme).  A
Chinese question therefore shared no lexeme with the passage it was about, unless it
repeated a whole clause verbatim.

``librarian_tsvector(text)`` is the analyzer from now on, for the chunks (``chunks.tsv``,
``chunks.tsv_length``) and for the questions (``bot.store.keyword``):

* Runs of CJK letters (Han, Hiragana, Katakana, Hangul; the ranges are in ``LETTER``)
  become their overlapping character bigrams (``显存不足`` -> ``显存 存不 不足``), a lone
  CJK letter itself.  Bigrams need no dictionary, and a question analysed the same way
  meets every two-character word of the passage (and the pairs across word borders,
  whose IDF keeps them from counting much); see ``bot.store.keyword``.
* Everything else goes to ``to_tsvector('english', ...)`` as before, with the CJK runs
  and CJK punctuation replaced by spaces, so ``DeepMind开发`` yields ``deepmind``.
  Text without a CJK letter takes a shortcut straight to ``to_tsvector('english',
  text)``: English chunks get exactly the vectors (and BM25 statistics) they had.

The English lexemes come first (positions as ``to_tsvector`` gives them), the bigrams
after, numbered on (``||`` shifts them), so ``tsv_length`` counts every token once.

A generated column's expression cannot be changed in Postgres 16, so ``tsv`` and
``tsv_length`` are dropped and added again in one ALTER TABLE (one table rewrite, which
computes every row; the GIN index goes with the column and is built again).  A rewrite
fires no row trigger, so ``keyword_terms`` and ``keyword_stats`` are then counted again
from the new vectors, all in the migration's transaction: nobody reads stale totals.
Upgrading 4.4k SQuAD chunks took 0.8 s on the 2-core development machine (chunks is
locked meanwhile).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# CJK letters (as regex escapes, so the script stays ASCII): Hangul Jamo, the iteration
# marks and ideographic zero (々〆〇), Hiragana, Katakana without the middle dot ・
# (U+30FB, punctuation), Hangul compatibility Jamo, Katakana extensions, CJK Unified
# Ideographs with extension A, Hangul syllables, compatibility ideographs, half-width
# Katakana, and the supplementary ideograph planes (extensions B to G).
LETTER = (
    r"\u1100-\u11FF\u3005-\u3007\u3041-\u309F\u30A1-\u30FA\u30FC-\u30FF\u3131-\u318E"
    r"\u31F0-\u31FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F"
    r"\U00020000-\U0003134F"
)
# What the English side must not see: the letters above, CJK symbols and punctuation
# (U+3000-303F, with the ideographic space) and full-width punctuation.  Replaced by a
# space: the default parser counts them as blanks under a C.UTF-8 locale, but as
# letters under a plain C one, and a database's locale is not ours to choose.
HIDDEN = LETTER + r"\u3000-\u303F\u30A0-\u30FF\uFF01-\uFF0F\uFF1A-\uFF20\uFF3B-\uFF40\uFF5B-\uFF65"

# IMMUTABLE is honest: it reads only its argument, and to_tsvector with an explicit
# configuration is immutable.  PL/pgSQL rather than SQL: a SQL function that cannot be
# inlined (this one has a subquery) is planned again in every statement that calls it,
# and the ingest worker inserts a document's chunks one row per statement (twice per
# row: tsv and tsv_length), which took a 40-chunk document from 18 to 32 ms; PL/pgSQL
# keeps its plans for the session.  The bigram vector is built as tsvector text
# ('gram':pos), which a CJK letter can never break (none is a quote or a backslash),
# rather than by to_tsvector('simple', ...), whose parser splits on whatever the
# database's locale calls a blank.
CREATE_ANALYZER = rf"""
CREATE FUNCTION librarian_tsvector(body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    IF body !~ '[{LETTER}]' THEN
        RETURN to_tsvector('english', body);
    END IF;
    RETURN to_tsvector('english', regexp_replace(body, '[{HIDDEN}]+', ' ', 'g'))
        || coalesce((
            SELECT string_agg(format('%L:%s', g.gram, g.pos), ' ')::tsvector
            FROM (
                SELECT CASE WHEN length(r.run[1]) = 1 THEN r.run[1]
                            ELSE substr(r.run[1], i, 2) END AS gram,
                       row_number() OVER (ORDER BY r.n, i) AS pos
                FROM regexp_matches(body, '[{LETTER}]+', 'g') WITH ORDINALITY AS r(run, n),
                     generate_series(1, greatest(length(r.run[1]) - 1, 1)) AS i
            ) g
        ), ''::tsvector);
END
$fn$
"""


def _set_analyzer(expression: str) -> None:
    """Regenerate chunks.tsv and tsv_length from ``expression`` (of ``text``), and
    count keyword_terms and keyword_stats again from the new vectors."""
    op.execute(
        "ALTER TABLE chunks DROP COLUMN tsv, DROP COLUMN tsv_length, "
        f"ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({expression}) STORED, "
        "ADD COLUMN tsv_length integer GENERATED ALWAYS AS "
        f"(tsvector_token_count({expression})) STORED"
    )
    op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")
    # From scratch, as 0003 and 0006 first filled them; max_tf becomes exact again.
    op.execute("DELETE FROM keyword_terms")
    op.execute(
        "INSERT INTO keyword_terms (workspace_id, embedding_model_id, lexeme, df, max_tf) "
        "SELECT c.workspace_id, c.embedding_model_id, t.lexeme, count(*), "
        "max(coalesce(array_length(t.positions, 1), 1)) "
        "FROM chunks c, unnest(c.tsv) AS t GROUP BY 1, 2, 3"
    )
    op.execute("DELETE FROM keyword_stats")
    op.execute(
        "INSERT INTO keyword_stats (workspace_id, embedding_model_id, chunk_count, token_count) "
        "SELECT workspace_id, embedding_model_id, count(*), coalesce(sum(tsv_length), 0) "
        "FROM chunks GROUP BY workspace_id, embedding_model_id"
    )


def upgrade() -> None:
    op.execute(CREATE_ANALYZER)
    _set_analyzer("librarian_tsvector(text)")


def downgrade() -> None:
    _set_analyzer("to_tsvector('english', text)")
    op.execute("DROP FUNCTION librarian_tsvector(text)")
