"""Workspaces belong to a team, and a channel's own workspace is keyed by the channel.

* ``workspaces.owner_team``: the team (``bot.teams``) whose platform admins may bind
  channels to the workspace.  Recorded when a workspace is created, kept when its last
  channel leaves.  NULL: unknown (an orphan from before this revision); only
  ``LIBRARIAN_ADMINS`` may bind to it.
* ``workspaces.home_platform, home_space, home_channel``: the channel whose own
  workspace this is (NULL for named workspaces).  A channel's own workspace used to be
  found by its name (``discord:<guild>/<channel>``), which anyone could type first with
  ``/librarian workspace`` and so receive another team's uploads.

Existing rows: a workspace whose name is the channel spec of a bound channel becomes
that channel's own; a workspace's owner is the team of its own channel, else of its
oldest binding.  No binding, document or message changes.  Bindings that already
cross teams (made by a deployment admin, or through the holes this closes) are kept
and printed, for an operator to review.

Also: a workspace chat model that is an http(s) address could only have been typed
in chat (``/librarian model http://...``), which sent its questions and documents to
that address; such references are cleared (the workspace answers with the default
model) and printed.  Remote servers are now named in ``LIBRARIAN_REMOTE_MODELS``.

And ``ix_messages_cited``: forgetting a document deletes the stored answers that cited
its chunks (``cited_chunk_ids && ...``), found by this GIN index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import text

# Alembic's own logger: shown where the upgrade's other messages are, never on stdout
# (the CLI's --json output).
log = logging.getLogger("alembic.runtime.migration")

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _team(alias: str, platform: str, space: str, channel: str) -> str:
    """SQL for bot.teams.channel_team over three columns of ``alias`` (keep them equal)."""
    p, s, c = (f"{alias}.{platform}", f"{alias}.{space}", f"{alias}.{channel}")
    return (
        f"CASE WHEN {s} <> '' THEN {p} || ':' || {s} "
        f"WHEN {p} = 'console' THEN 'console:' "
        f"ELSE {p} || ':' || {c} END"
    )


def _spec(alias: str) -> str:
    """SQL for bot.store.repo.channel_spec of a binding row."""
    return (
        f"CASE WHEN {alias}.space_id <> '' "
        f"THEN {alias}.platform || ':' || {alias}.space_id || '/' || {alias}.channel_id "
        f"ELSE {alias}.platform || ':' || {alias}.channel_id END"
    )


def upgrade() -> None:
    op.execute("ALTER TABLE workspaces ADD COLUMN owner_team text")
    op.execute("ALTER TABLE workspaces ADD COLUMN home_platform text")
    op.execute("ALTER TABLE workspaces ADD COLUMN home_space text")
    op.execute("ALTER TABLE workspaces ADD COLUMN home_channel text")
    op.execute(
        "ALTER TABLE workspaces ADD CONSTRAINT ck_workspaces_home CHECK ("
        "(home_platform IS NULL AND home_space IS NULL AND home_channel IS NULL) OR "
        "(home_platform IS NOT NULL AND home_space IS NOT NULL AND home_channel IS NOT NULL))"
    )
    op.execute(
        "ALTER TABLE workspaces ADD CONSTRAINT uq_workspaces_home "
        "UNIQUE (home_platform, home_space, home_channel)"
    )
    # A channel's own workspace was the one named after it.
    op.execute(
        "UPDATE workspaces w SET home_platform = b.platform, home_space = b.space_id, "
        f"home_channel = b.channel_id FROM channel_bindings b WHERE w.name = {_spec('b')}"
    )
    op.execute(
        "UPDATE workspaces w SET owner_team = "
        f"{_team('w', 'home_platform', 'home_space', 'home_channel')} "
        "WHERE w.home_platform IS NOT NULL"
    )
    op.execute(
        "UPDATE workspaces w SET owner_team = ("
        f"SELECT {_team('b', 'platform', 'space_id', 'channel_id')} FROM channel_bindings b "
        "WHERE b.workspace_id = w.id ORDER BY b.id LIMIT 1) WHERE w.owner_team IS NULL"
    )
    op.execute("CREATE INDEX ix_messages_cited ON messages USING gin (cited_chunk_ids)")
    bind = op.get_bind()
    team = _team("b", "platform", "space_id", "channel_id")
    crossing = bind.execute(
        text(
            f"SELECT w.name, {_spec('b')} AS channel FROM channel_bindings b "
            "JOIN workspaces w ON w.id = b.workspace_id "
            f"WHERE w.owner_team IS DISTINCT FROM {team} "
            "ORDER BY w.name, b.id"
        )
    ).all()
    for row in crossing:
        log.warning("0009: channel %s reads workspace %s of another team", row.channel, row.name)
    remote = bind.execute(
        text(
            "UPDATE workspaces SET chat_model = NULL WHERE chat_model ~* '^https?://' "
            "RETURNING name"
        )
    ).all()
    for row in remote:
        log.warning(
            "0009: workspace %s answered with a remote address typed in chat; it now uses "
            "the default model (name servers in LIBRARIAN_REMOTE_MODELS)",
            row.name,
        )


def downgrade() -> None:
    op.execute("DROP INDEX ix_messages_cited")
    op.execute("ALTER TABLE workspaces DROP CONSTRAINT uq_workspaces_home")
    op.execute("ALTER TABLE workspaces DROP CONSTRAINT ck_workspaces_home")
    for column in ("home_channel", "home_space", "home_platform", "owner_team"):
        op.execute(f"ALTER TABLE workspaces DROP COLUMN {column}")
