"""chunks: one b-tree on (workspace_id, embedding_model_id) instead of (workspace_id).

Every dense search filters on both columns and decides its plan from the number of
such rows.  With workspace_id alone, that count fetched every row from the heap
(a 100k-row workspace: 25k buffers, ~0.5 s cold); with both columns it is an
index-only scan.  The new index also serves every query on workspace_id alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunks_workspace_model", "chunks", ["workspace_id", "embedding_model_id"])
    op.drop_index("ix_chunks_workspace", table_name="chunks")


def downgrade() -> None:
    op.create_index("ix_chunks_workspace", "chunks", ["workspace_id"])
    op.drop_index("ix_chunks_workspace_model", table_name="chunks")
