"""Drop the model-wide HNSW indexes: every chunk written paid an HNSW insert for them.

Each embedding model had a partial HNSW index over all workspaces,
``chunks_embedding_hnsw_m{M}``, made at runtime when the model was first used.  Since
workspaces of more than 3,000 chunks get an index of their own and smaller ones are
scanned exactly, it only served a large workspace while its own index was being built
(and pgvector < 0.8 filters such a search after the scan, so it needed a fallback).
Its insert cost was most of writing a document: 38 chunks took ~250 ms with it and
~60 ms without (``complete_document`` on a scratch database), which kept ingestion
below 90% of the embedder's speed.  A workspace without its own index is now scanned
exactly until the index is there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The names are made at runtime, one per model; per-workspace ones end in _w{W}.
    op.execute(
        """
        DO $$
        DECLARE name text;
        BEGIN
            FOR name IN
                SELECT indexname FROM pg_indexes
                WHERE tablename = 'chunks' AND indexname ~ '^chunks_embedding_hnsw_m[0-9]+$'
            LOOP
                EXECUTE format('DROP INDEX IF EXISTS %I', name);
            END LOOP;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE m record;
        BEGIN
            FOR m IN SELECT id, dims FROM embedding_models LOOP
                EXECUTE format(
                    'CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_m%s ON chunks '
                    'USING hnsw ((embedding::vector(%s)) vector_cosine_ops) '
                    'WHERE embedding_model_id = %s',
                    m.id, m.dims, m.id);
            END LOOP;
        END $$
        """
    )
