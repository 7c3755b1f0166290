"""Workspace names are unique per owning team, not across the deployment.

``workspaces.name`` was unique across every team, so ``/librarian workspace NAME``
told a platform admin of one team whether another team already had a workspace of
that name (refused, or not), and one team's name blocked every other team from using
it.  The constraint is now ``UNIQUE NULLS NOT DISTINCT (owner_team, name)``: a name
is found only among the workspaces of the caller's team (``bot.store.repo.Store.bind``),
and two teams may each have a "finance".  NULLS NOT DISTINCT keeps one name per
workspace of unknown owner (orphans from before 0009) as before.  It needs Postgres 15
or newer, which the README already requires.

No row changes on the way up: names unique across the deployment are unique per team.

On the way down, names used by more than one team would break ``UNIQUE (name)``:
every such workspace but the oldest is renamed ``<name>~<id>`` (printed), so the
downgrade loses no binding and no document.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import text

log = logging.getLogger("alembic.runtime.migration")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE workspaces DROP CONSTRAINT workspaces_name_key")
    op.execute(
        "ALTER TABLE workspaces ADD CONSTRAINT uq_workspaces_team_name "
        "UNIQUE NULLS NOT DISTINCT (owner_team, name)"
    )


def downgrade() -> None:
    renamed = (
        op.get_bind()
        .execute(
            text(
                "UPDATE workspaces w SET name = w.name || '~' || w.id FROM workspaces older "
                "WHERE older.name = w.name AND older.id < w.id "
                "RETURNING w.id, w.name, w.owner_team"
            )
        )
        .all()
    )
    for row in renamed:
        log.warning(
            "0013 down: workspace #%s of team %s renamed %s (its name is used by another team)",
            row.id,
            row.owner_team,
            row.name,
        )
    op.execute("ALTER TABLE workspaces DROP CONSTRAINT uq_workspaces_team_name")
    op.execute("ALTER TABLE workspaces ADD CONSTRAINT workspaces_name_key UNIQUE (name)")
