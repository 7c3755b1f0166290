"""Chunks say where they are in their document's own terms.

* ``chunks.location``: "slide 7 (Roadmap)", "sheet Budget, rows 12-40", "section
  Onboarding > Laptops"; NULL where the page numbers say it (PDF and text files, and
  every chunk written before this revision), empty where the file has no finer place
  than itself (an RTF document).  Citations show it instead of "p. N" when set.

Existing rows keep NULL: they were all PDF, text or Markdown chunks.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS location text")


def downgrade() -> None:
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS location")
