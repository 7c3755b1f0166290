"""Per-workspace document frequencies, so keyword search can skip common words' chunks.

BM25 (``bot.store.keyword``) used to count each query term's df from its candidates:
every chunk holding any query term was read, and a question with one common word
("name", "year") read a fifth of a 100k-chunk workspace (~240 ms).  Knowing df, and
an upper bound of each term's contribution, before the scan lets the search score
the chunks of the rare terms first and prove that chunks holding only common terms
cannot reach the top k (MaxScore; Turtle & Flood, "Query evaluation: strategies and
optimizations", IP&M 1995).

``keyword_terms`` holds one row per (workspace, embedding model, lexeme):

* ``df``: how many of the workspace's chunks hold the lexeme;
* ``max_tf``: the most times one chunk ever held it.  It only grows (forgetting a
  chunk leaves it), so it stays an upper bound, which is all the search needs.

Writing a 40-chunk document upserts ~1,500 of these rows: 59-68 ms without the
trigger, 120-150 ms with it (on 2 cores; a fillfactor of 50, for updates on the same
page, made no difference that this noise could show).

Kept by statement-level triggers on ``chunks``, like ``keyword_stats`` (0003), for
the same reasons: every way chunks are written or removed keeps it right, in the
same transaction.  Deletes only UPDATE existing rows; rows whose df reached 0 stay
(the search skips them) and are reused.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE keyword_terms (
            workspace_id bigint NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            embedding_model_id bigint NOT NULL REFERENCES embedding_models (id),
            lexeme text NOT NULL,
            df bigint NOT NULL,
            max_tf integer NOT NULL,
            CONSTRAINT pk_keyword_terms PRIMARY KEY (workspace_id, embedding_model_id, lexeme)
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION keyword_terms_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                DELETE FROM keyword_terms;
                RETURN NULL;
            END IF;
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE keyword_terms k
                SET df = k.df - o.n
                FROM (SELECT r.workspace_id, r.embedding_model_id, t.lexeme, count(*) AS n
                      FROM old_rows r, unnest(tsvector_to_array(r.tsv)) AS t(lexeme)
                      GROUP BY 1, 2, 3) o
                WHERE k.workspace_id = o.workspace_id
                  AND k.embedding_model_id = o.embedding_model_id
                  AND k.lexeme = o.lexeme;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                -- Sorted keys: two transactions lock the rows they share in one order.
                INSERT INTO keyword_terms AS k
                    (workspace_id, embedding_model_id, lexeme, df, max_tf)
                SELECT r.workspace_id, r.embedding_model_id, t.lexeme, count(*),
                       max(coalesce(array_length(t.positions, 1), 1))
                FROM new_rows r, unnest(r.tsv) AS t
                GROUP BY 1, 2, 3
                ORDER BY 1, 2, 3
                ON CONFLICT ON CONSTRAINT pk_keyword_terms DO UPDATE
                SET df = k.df + excluded.df, max_tf = greatest(k.max_tf, excluded.max_tf);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_terms_insert AFTER INSERT ON chunks "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_terms_delete AFTER DELETE ON chunks "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_terms_update AFTER UPDATE ON chunks "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_terms_truncate AFTER TRUNCATE ON chunks "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_maintain()"
    )
    # Frequencies of the chunks already there (~5 s for 122k chunks on 2 cores).
    op.execute(
        "INSERT INTO keyword_terms (workspace_id, embedding_model_id, lexeme, df, max_tf) "
        "SELECT c.workspace_id, c.embedding_model_id, t.lexeme, count(*), "
        "max(coalesce(array_length(t.positions, 1), 1)) "
        "FROM chunks c, unnest(c.tsv) AS t GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER chunks_keyword_terms_{event} ON chunks")
    op.execute("DROP FUNCTION keyword_terms_maintain()")
    op.execute("DROP TABLE keyword_terms")
