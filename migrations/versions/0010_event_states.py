"""Events are claimed before they are handled and recorded as done after their effect.

``processed_events`` held one row per event id, written *before* the event was
handled: a crash or a database outage mid-event lost the question or the file for
good.  Each row now has a state:

* ``in_flight``: claimed by ``owner`` (a process and attempt) until ``lease_until``
  (renewed while it works); ``payload`` holds what is needed to run the event again
  (platform, channel, thread, user, text or file reference) if that process dies.
* ``done``: its effect is stored (in the same transaction where the effect allows:
  an answer's stored messages, a queued document); the payload is cleared.
* ``failed``: every attempt failed (``attempts``); the user was told; no payload.

Existing rows were handled (or lost) by the old code: they become ``done``, so
redeliveries of those events are still dropped.  No row is removed; pruning stays
the retention job's (7 days).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE processed_events "
        "ADD COLUMN state text NOT NULL DEFAULT 'done', "
        "ADD COLUMN owner text, "
        "ADD COLUMN attempts integer NOT NULL DEFAULT 1, "
        "ADD COLUMN lease_until timestamptz, "
        "ADD COLUMN payload jsonb, "
        "ADD CONSTRAINT ck_processed_events_state "
        "CHECK (state IN ('in_flight', 'done', 'failed'))"
    )
    # New rows are claims: their state is always given; the default only filled old rows.
    op.execute("ALTER TABLE processed_events ALTER COLUMN state DROP DEFAULT")
    # What a restart (or a live process's periodic pass) looks for: small, partial.
    op.execute(
        "CREATE INDEX ix_processed_events_in_flight ON processed_events (lease_until) "
        "WHERE state = 'in_flight'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_processed_events_in_flight")
    op.execute(
        "ALTER TABLE processed_events DROP CONSTRAINT ck_processed_events_state, "
        "DROP COLUMN payload, DROP COLUMN lease_until, DROP COLUMN attempts, "
        "DROP COLUMN owner, DROP COLUMN state"
    )
