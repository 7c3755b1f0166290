"""BM25 keyword ranking: each chunk's token count, and per-workspace collection totals.

BM25 (``bot.store.keyword``) needs, besides a term's frequency in a chunk (read from
``chunks.tsv``), the chunk's length, and the number of chunks and their average length
in the workspace.  Counting those at query time would scan the workspace, so:

* ``chunks.tsv_length``: the number of token positions in ``to_tsvector('english',
  text)`` (stop words excluded, repeats counted), a generated column like ``tsv``
  (a generated column cannot read another one, hence the tsvector is built again).
* ``keyword_stats``: one row per (workspace, embedding model) with its chunk count and
  total token count, kept by statement-level triggers on ``chunks``.  Triggers rather
  than calls in the Store's methods: chunks are written by INSERT, binary COPY,
  re-indexing, failure, forgetting and cascades from a deleted workspace, and every one
  of them must keep the totals right.  Deletes only UPDATE existing rows (never insert):
  a workspace being deleted cascades to its chunks and its stats row in the same
  statement, and re-inserting its row would violate the foreign key.

Document frequencies need no table: the keyword search reads every chunk that holds a
query term anyway, and df falls out of that scan (see ``bot.store.keyword``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IMMUTABLE is honest: to_tsvector with an explicit configuration is immutable.
    op.execute(
        """
        CREATE FUNCTION tsvector_token_count(tsvector) RETURNS integer
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer
            FROM unnest($1)
        $$
        """
    )
    op.execute(
        "ALTER TABLE chunks ADD COLUMN tsv_length integer GENERATED ALWAYS AS "
        "(tsvector_token_count(to_tsvector('english', text))) STORED"
    )
    op.execute(
        """
        CREATE TABLE keyword_stats (
            workspace_id bigint NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            embedding_model_id bigint NOT NULL REFERENCES embedding_models (id),
            chunk_count bigint NOT NULL DEFAULT 0,
            token_count bigint NOT NULL DEFAULT 0,
            CONSTRAINT pk_keyword_stats PRIMARY KEY (workspace_id, embedding_model_id)
        )
        """
    )
    # One function for every event; a branch only names the transition tables its
    # trigger declares (PL/pgSQL plans a statement when it first runs it).
    op.execute(
        """
        CREATE FUNCTION keyword_stats_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                DELETE FROM keyword_stats;
                RETURN NULL;
            END IF;
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE keyword_stats s
                SET chunk_count = s.chunk_count - o.n, token_count = s.token_count - o.t
                FROM (SELECT workspace_id, embedding_model_id, count(*) AS n,
                             coalesce(sum(tsv_length), 0) AS t
                      FROM old_rows GROUP BY workspace_id, embedding_model_id) o
                WHERE s.workspace_id = o.workspace_id
                  AND s.embedding_model_id = o.embedding_model_id;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                -- Sorted keys: two transactions lock the rows they share in one order.
                INSERT INTO keyword_stats AS s
                    (workspace_id, embedding_model_id, chunk_count, token_count)
                SELECT workspace_id, embedding_model_id, count(*),
                       coalesce(sum(tsv_length), 0)
                FROM new_rows GROUP BY workspace_id, embedding_model_id
                ORDER BY workspace_id, embedding_model_id
                ON CONFLICT ON CONSTRAINT pk_keyword_stats DO UPDATE
                SET chunk_count = s.chunk_count + excluded.chunk_count,
                    token_count = s.token_count + excluded.token_count;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_stats_insert AFTER INSERT ON chunks "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_stats_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_stats_delete AFTER DELETE ON chunks "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_stats_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_stats_update AFTER UPDATE ON chunks "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_stats_maintain()"
    )
    op.execute(
        "CREATE TRIGGER chunks_keyword_stats_truncate AFTER TRUNCATE ON chunks "
        "FOR EACH STATEMENT EXECUTE FUNCTION keyword_stats_maintain()"
    )
    # Totals of the chunks already there.
    op.execute(
        "INSERT INTO keyword_stats (workspace_id, embedding_model_id, chunk_count, token_count) "
        "SELECT workspace_id, embedding_model_id, count(*), coalesce(sum(tsv_length), 0) "
        "FROM chunks GROUP BY workspace_id, embedding_model_id"
    )


def downgrade() -> None:
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER chunks_keyword_stats_{event} ON chunks")
    op.execute("DROP FUNCTION keyword_stats_maintain()")
    op.execute("DROP TABLE keyword_stats")
    op.execute("ALTER TABLE chunks DROP COLUMN tsv_length")
    op.execute("DROP FUNCTION tsvector_token_count(tsvector)")
