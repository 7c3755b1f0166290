"""Platform events: claimed before they are handled, recorded as done after their effect.

One row of ``processed_events`` per (platform, event id), in one of three states
(migration 0010):

* ``in_flight``: claimed by ``owner`` (one attempt of one process) until
  ``lease_until``, which the owner renews while it works.  ``payload`` holds what is
  needed to run the event again if the owner dies (``bot.events.event_payload``),
  and under ``effect`` what its attempts already stored: written in the transaction
  that stores the effect (``record_effect_in``: an answer's turns, a queued
  document), so an effect and its record commit together or not at all, and a
  re-run posts the stored answer instead of storing a second one.
* ``done``: the effect is stored and the user was told; the payload is cleared.
* ``failed``: the last allowed attempt failed and the user was told.

A claim succeeds for a new event, for the owner itself (again after a lost
connection, or counted as a retry), or for anyone once the owner's lease has
expired (the owner died).  Two deliveries of one event racing for the row serialise
on it in Postgres: exactly one of them gets it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

__all__ = ["Claim", "EventTakenOver", "EventsMixin", "StaleEvent", "record_effect_in"]


@dataclass(frozen=True)
class Claim:
    """An event this attempt holds: whoever holds the claim may record the event done."""

    platform: str
    event_id: str
    owner: str
    attempts: int  # how many attempts were made, this one included
    # What earlier attempts stored, by kind: {"answer": {...}, "document:<file>": id}.
    effect: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaleEvent:
    """An event left in flight by an owner whose lease expired, with its payload."""

    platform: str
    event_id: str
    attempts: int
    payload: dict[str, Any]


class EventTakenOver(Exception):
    """The claim was lost (its lease expired and another owner took the event)."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(f"event {claim.event_id} was taken over by another owner")
        self.claim = claim


_CLAIM = text(
    "INSERT INTO processed_events AS e (platform, event_id, state, owner, attempts, "
    " lease_until, payload) "
    "VALUES (:p, :e, 'in_flight', :o, 1, now() + make_interval(secs => :lease), "
    " CAST(:payload AS jsonb)) "
    "ON CONFLICT (platform, event_id) DO UPDATE SET owner = :o, "
    " lease_until = now() + make_interval(secs => :lease), "
    # The same owner again after a lost connection is the same attempt; a retry after
    # a failure, or another owner after this one died, is a new one.
    " attempts = e.attempts + CASE WHEN e.owner = :o AND NOT :retry THEN 0 ELSE 1 END, "
    " payload = COALESCE(e.payload, EXCLUDED.payload) "
    "WHERE e.state = 'in_flight' AND (e.owner = :o OR e.lease_until < now()) "
    "RETURNING e.attempts, e.payload -> 'effect' AS effect"
)
_FINISH = text(
    "UPDATE processed_events SET state = 'done', payload = NULL, lease_until = NULL "
    "WHERE platform = :p AND event_id = :e AND owner = :o AND state = 'in_flight' "
    "RETURNING 1"
)
_RECORD = text(
    "UPDATE processed_events SET payload = jsonb_set(COALESCE(payload, '{}'), '{effect}', "
    " COALESCE(payload -> 'effect', '{}') || CAST(:effect AS jsonb)) "
    "WHERE platform = :p AND event_id = :e AND owner = :o AND state = 'in_flight' "
    "RETURNING 1"
)


def record_effect_in(conn: Connection, claim: Claim, effect: dict[str, Any]) -> None:
    """Record what the claimed event stored, inside the transaction that stores it.

    Raises EventTakenOver (rolling the effect back with the transaction) when the
    event is no longer this claim's: its new owner's effect is the one that counts.
    """
    mine = conn.execute(
        _RECORD,
        {"p": claim.platform, "e": claim.event_id, "o": claim.owner, "effect": json.dumps(effect)},
    ).scalar()
    if mine is None:
        raise EventTakenOver(claim)


class EventsMixin:
    """The event-state side of ``Store`` (uses ``self.engine``)."""

    engine: Engine

    def claim_event(
        self,
        platform: str,
        event_id: str,
        owner: str,
        payload: dict[str, Any],
        *,
        lease_seconds: float,
        retry: bool = False,
    ) -> Claim | None:
        """Claim an event for ``owner``; None when it is done, failed, or someone else's.

        ``retry``: this owner failed an attempt and starts the next (counted).
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                _CLAIM,
                {
                    "p": platform,
                    "e": event_id,
                    "o": owner,
                    "lease": float(lease_seconds),
                    "payload": json.dumps(payload),
                    "retry": retry,
                },
            ).first()
        if row is None:
            return None
        return Claim(platform, event_id, owner, int(row.attempts), dict(row.effect or {}))

    def renew_event(self, claim: Claim, lease_seconds: float) -> bool:
        """Extend the claim's lease (the owner is alive); False if it is no longer ours."""
        with self.engine.begin() as conn:
            renewed = conn.execute(
                text(
                    "UPDATE processed_events "
                    "SET lease_until = now() + make_interval(secs => :lease) "
                    "WHERE platform = :p AND event_id = :e AND owner = :o "
                    "AND state = 'in_flight' RETURNING 1"
                ),
                {
                    "p": claim.platform,
                    "e": claim.event_id,
                    "o": claim.owner,
                    "lease": float(lease_seconds),
                },
            ).scalar()
        return renewed is not None

    def finish_event(self, claim: Claim) -> bool:
        """Record the event done (its effect stored, the user told); False if not ours."""
        with self.engine.begin() as conn:
            finished = conn.execute(
                _FINISH, {"p": claim.platform, "e": claim.event_id, "o": claim.owner}
            ).scalar()
        return finished is not None

    def fail_event(self, claim: Claim) -> bool:
        """Record that the event's last allowed attempt failed; False if not ours."""
        with self.engine.begin() as conn:
            failed = conn.execute(
                text(
                    "UPDATE processed_events SET state = 'failed', payload = NULL, "
                    "lease_until = NULL WHERE platform = :p AND event_id = :e AND owner = :o "
                    "AND state = 'in_flight' RETURNING 1"
                ),
                {"p": claim.platform, "e": claim.event_id, "o": claim.owner},
            ).scalar()
        return failed is not None

    def abandon_event(self, platform: str, event_id: str) -> None:
        """Record as failed an event left in flight that cannot be run again."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE processed_events SET state = 'failed', payload = NULL, "
                    "lease_until = NULL WHERE platform = :p AND event_id = :e "
                    "AND state = 'in_flight'"
                ),
                {"p": platform, "e": event_id},
            )

    def event_state(self, platform: str, event_id: str) -> tuple[str, int] | None:
        """An event's state and attempts (None: never seen, or pruned)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT state, attempts FROM processed_events "
                    "WHERE platform = :p AND event_id = :e"
                ),
                {"p": platform, "e": event_id},
            ).first()
        return None if row is None else (str(row.state), int(row.attempts))

    def message_exists(self, message_id: int) -> bool:
        """Whether a stored turn is still there (an event's stored answer may have been
        deleted since, by ``forget`` or retention: it is then not posted again)."""
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    text("SELECT 1 FROM messages WHERE id = :id"), {"id": message_id}
                ).scalar()
                is not None
            )

    def stale_events(self, platforms: list[str], limit: int = 100) -> list[StaleEvent]:
        """Events of these platforms left in flight by an owner whose lease expired."""
        if not platforms:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT platform, event_id, attempts, payload FROM processed_events "
                    "WHERE state = 'in_flight' AND lease_until < now() "
                    "AND platform = ANY(:ps) AND payload IS NOT NULL "
                    "ORDER BY lease_until LIMIT :n"
                ),
                {"ps": list(platforms), "n": limit},
            ).all()
        return [StaleEvent(r.platform, r.event_id, int(r.attempts), r.payload) for r in rows]

    def prune_events(self, older_than_days: float) -> int:
        """Forget events first seen more than ``older_than_days`` ago; how many.

        Platforms redeliver an event within minutes (Slack retries for about an
        hour at most), so old ids only grow the table; an event still in flight
        after that long will not be finished by anyone, and its payload (the
        question or file reference) goes with it.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                text(
                    "DELETE FROM processed_events "
                    "WHERE processed_at < now() - make_interval(secs => :s)"
                ),
                {"s": float(older_than_days) * 86400.0},
            )
        return int(result.rowcount or 0)
