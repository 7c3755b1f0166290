"""Ingest claims rotate across workspaces.

* ``workspaces.ingest_served_at``: when the ingest worker last took one of the
  workspace's documents.  Claims prefer the workspace served least recently (never
  served first), so one team's large upload no longer holds every other team's files
  behind it.  NULL for every existing workspace: they start equal.
* ``ix_documents_waiting``: the queued and indexing documents by workspace, the rows
  every claim reads.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0012"
# Issue 17 is split among three branches: 0010 and 0011 are the others' (re-chained at
# merge).  For a run of this branch alone, 0009 is the revision below this one.
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE workspaces ADD COLUMN ingest_served_at timestamptz")
    op.execute(
        "CREATE INDEX ix_documents_waiting ON documents (workspace_id, attempts, id) "
        "WHERE status IN ('queued', 'indexing')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_documents_waiting")
    op.execute("ALTER TABLE workspaces DROP COLUMN ingest_served_at")
