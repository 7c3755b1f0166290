"""chunks.embedding: storage MAIN, so vectors stay in the row and text goes to TOAST.

pgvector's type defaults to EXTERNAL storage.  A real chunk (~700 bytes of text,
~850 of tsvector, 1,540 of a 384-dim vector) passes the 2 kB TOAST threshold, and
with EXTERNAL the vector was the column moved out of line: every distance of an
exact scan then read it back through the TOAST index.  The 2,573 chunks of SQuAD's
paragraphs, exact scan in EXPLAIN (ANALYZE, BUFFERS): 8,143 buffers, 15.5 ms; the
same chunks copied after this change: 648 buffers, 3.8 ms.  With MAIN,
Postgres compresses and moves the text and tsvector out first and keeps the vector
in the row unless nothing else fits.  Rows written before this migration keep their
layout until they are rewritten (re-indexing the document does).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL")
