"""Per-channel retention of conversation history.

A channel's ``retention_seconds`` (NULL: off) says how long its stored turns, and
the verdicts people gave on its answers, are kept.  :func:`run_retention` is one
run of the job: it deletes every expired message and verdict of every channel in
one transaction that holds a Postgres advisory lock,
so several bot processes sharing a database never delete twice at once, and
writes one audit entry with the counts per channel.  It is idempotent: a second
run right after the first finds nothing left to delete.  The scheduler
(:mod:`bot.scheduler`) calls it on an interval; ``librarian retention run``
calls it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.store.repo import Store

#: The audit actor of scheduled runs.
SCHEDULER_ACTOR = "scheduler"

_UNITS = {"d": 86_400, "h": 3_600}
_DURATION = re.compile(r"^(\d{1,6})\s*([dh])$")
#: The longest retention accepted (ten years).
MAX_RETENTION_SECONDS = 3650 * 86_400
OFF_WORDS = frozenset({"off", "none", "forever", "never"})


class DurationError(ValueError):
    """A retention duration that could not be read; the message says why."""


def parse_duration(value: str) -> int | None:
    """'7d' -> 604800, '12h' -> 43200, 'off' -> None (keep history)."""
    text = value.strip().lower()
    if text in OFF_WORDS:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise DurationError(
            f"'{value}' is not a duration: write a number of days or hours like 7d or 12h, or off"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds == 0:
        raise DurationError("a retention of zero would keep nothing: use 1h or more, or off")
    if seconds > MAX_RETENTION_SECONDS:
        raise DurationError("that is longer than ten years: use off to keep history")
    return seconds


def format_duration(seconds: int | None) -> str:
    """The inverse of :func:`parse_duration`: 604800 -> '7d', 5400 -> '1h30m', None -> 'off'."""
    if seconds is None:
        return "off"
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400}d"
    if seconds % 3_600 == 0:
        return f"{seconds // 3_600}h"
    hours, rest = divmod(seconds, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{secs}s" if secs else "")
    return "".join(parts)


def describe_retention(seconds: int | None) -> str:
    """A sentence for people: what the channel's retention does."""
    if seconds is None:
        return "off: the conversation history of this channel is kept"
    return (
        f"{format_duration(seconds)}: stored messages older than that are deleted "
        "by the retention job"
    )


# How long a platform event id is remembered to drop redeliveries of it.
EVENT_IDS_KEPT_DAYS = 7.0
#: How long audit entries are kept unless LIBRARIAN_AUDIT_RETENTION_DAYS says otherwise.
AUDIT_KEPT_DAYS = 90.0


@dataclass(frozen=True)
class RetentionRun:
    """What one run of the retention job did."""

    ran: bool  # False: another process held the lock, so this run deleted nothing
    deleted: dict[str, int] = field(default_factory=dict)  # channel -> messages deleted
    feedback: dict[str, int] = field(default_factory=dict)  # channel -> verdicts deleted
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def total(self) -> int:
        """Messages deleted in every channel."""
        return sum(self.deleted.values())

    @property
    def feedback_total(self) -> int:
        """Verdicts on answers deleted in every channel."""
        return sum(self.feedback.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the CLI's --json)."""
        return {
            "ran": self.ran,
            "skipped": not self.ran,
            "deleted": dict(self.deleted),
            "total": self.total,
            "feedback": dict(self.feedback),
            "feedback_total": self.feedback_total,
            "at": self.at.isoformat(),
        }

    def describe(self) -> str:
        """One line for logs and the CLI."""
        if not self.ran:
            return "skipped: another process is running the retention job"
        if not self.deleted and not self.feedback:
            return "nothing to delete"
        parts = []
        if self.deleted:
            per = ", ".join(f"{channel}: {n}" for channel, n in self.deleted.items())
            parts.append(f"deleted {self.total} message{'s' if self.total != 1 else ''} ({per})")
        if self.feedback:
            per = ", ".join(f"{channel}: {n}" for channel, n in self.feedback.items())
            n = self.feedback_total
            parts.append(f"deleted {n} verdict{'s' if n != 1 else ''} on answers ({per})")
        return "; ".join(parts)


def run_retention(
    store: Store, *, actor: str = SCHEDULER_ACTOR, audit_days: float = AUDIT_KEPT_DAYS
) -> RetentionRun:
    """Delete expired history now (blocking: call it in a thread from async code).

    Writes one audit entry (by ``actor``) with the counts per channel on every run that
    took the lock; a run skipped because another process held it writes none.
    """
    expired = store.expire_messages(audit_actor=actor)
    if expired is None:
        return RetentionRun(ran=False)
    # Housekeeping in the same run: the de-duplication table is not history (no event
    # text is kept) and needs no audit entry, only a bound on its size.
    store.prune_events(EVENT_IDS_KEPT_DAYS)
    # The audit log holds who did what (ids, names, counts, hashes; no message text),
    # which is personal data too: kept for ``audit_days``, then deleted.
    store.prune_audit(audit_days)
    return RetentionRun(ran=True, deleted=expired.messages, feedback=expired.feedback)
