"""At-least-once handling with exactly-once effects, for every event of every platform.

An event is claimed in Postgres before it is handled (``bot.store.events``), with
what is needed to run it again.  Its effect is recorded on the claim in the
transaction that stores it (the dispatcher hands the claim to the answer's and the
queued document's store calls), and the event is recorded done once the user was
told.  So:

* a duplicate delivery, in parallel or later, finds the event claimed or done and
  does nothing: one answer;
* a re-run finds what earlier attempts stored: a stored answer is posted, not made
  and stored again; a queued document is waited for, not downloaded again;
* a failed attempt is tried again after a pause (``event_retry_seconds``, doubled
  each time) until ``event_attempts`` were made, then the user is told in plain words;
* a database that cannot be reached is waited for (up to ``DATABASE_WAIT_S``), without
  counting attempts: the event is held in memory and handled once it is back;
* a process that dies mid-event leaves its claim to expire (``event_lease_seconds``;
  a live owner renews it); any process serving that platform then runs the event
  again from the stored payload, at its start and every lease period after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.events import (
    CommandInvoked,
    Event,
    FileRemoved,
    FileShared,
    MessageReceived,
    UserRef,
    event_from_payload,
    event_payload,
)
from bot.store.database import is_unavailable
from bot.store.events import Claim, EventTakenOver
from bot.store.repo import Store

log = logging.getLogger(__name__)

# How long an event waits in memory for an unreachable database before the user is
# told: Slack stops redelivering after about an hour, so nothing is gained later.
DATABASE_WAIT_S = 3600.0
# The longest pause between two tries (of an attempt, or to reach the database).
MAX_PAUSE_S = 30.0

Handler = Callable[[Event, Claim], Awaitable[None]]


@dataclass(frozen=True)
class Failure:
    """Why an event was given up: after its attempts, or with the database away."""

    attempts: int
    database_away: bool = False


FailureReport = Callable[[Event, Failure], Awaitable[None]]


class Deliveries:
    """Runs events under claims: retried, recorded, and finished after a crash."""

    def __init__(
        self,
        store: Store,
        *,
        attempts: int,
        retry_seconds: float,
        lease_seconds: float,
        database_wait_seconds: float = DATABASE_WAIT_S,
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.retry_seconds = retry_seconds
        self.lease_seconds = lease_seconds
        self.database_wait_seconds = database_wait_seconds
        # Names this process in claims; each attempt adds its own suffix, so two
        # deliveries of one event inside this process are two owners, not one.
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    def _pause(self, tries: int) -> float:
        return min(self.retry_seconds * (2 ** max(0, tries - 1)), MAX_PAUSE_S)

    async def run(self, event: Event, handler: Handler, report: FailureReport) -> None:
        """Handle ``event`` at least once and record its effect once; never raises."""
        platform = event.conversation.platform
        owner = f"{self.process}:{uuid.uuid4().hex[:12]}"
        payload = event_payload(event)
        retry = False  # whether the next claim starts a new (counted) attempt
        waited = 0.0
        away = 0
        while True:
            try:
                claim = await asyncio.to_thread(
                    self.store.claim_event,
                    platform,
                    event.event_id,
                    owner,
                    payload,
                    lease_seconds=self.lease_seconds,
                    retry=retry,
                )
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                if waited >= self.database_wait_seconds:
                    log.error("event %s: the database stayed away; giving up", event.event_id)
                    await report(event, Failure(0, database_away=True))
                    return
                away += 1
                pause = self._pause(away)
                log.warning(
                    "event %s waits for the database (%s); trying again in %.1f s",
                    event.event_id,
                    type(exc).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                waited += pause
                continue
            away = 0
            if claim is None:
                log.info("skipping event %s: done, failed, or in flight elsewhere", event.event_id)
                return
            if claim.attempts > self.attempts:
                # Its owners died while handling it (a crash each time): stop here.
                await self._give_up(event, claim, report)
                return
            try:
                await self._attempt(event, claim, handler)
                return
            except asyncio.CancelledError:
                raise  # shutting down: the claim expires and the event is run again
            except EventTakenOver:
                log.warning("event %s was taken over by another owner", event.event_id)
                return
            except Exception:
                log.exception(
                    "event %s failed (attempt %d of %d)",
                    event.event_id,
                    claim.attempts,
                    self.attempts,
                )
                if claim.attempts >= self.attempts:
                    await self._give_up(event, claim, report)
                    return
            retry = True
            await asyncio.sleep(self._pause(claim.attempts))

    async def _attempt(self, event: Event, claim: Claim, handler: Handler) -> None:
        """One attempt: the handler, under a renewed lease, then the record."""
        renewer = asyncio.create_task(self._renew(claim), name=f"lease-{event.event_id}")
        try:
            await handler(event, claim)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if not await asyncio.to_thread(self.store.finish_event, claim):
            raise EventTakenOver(claim)

    async def _renew(self, claim: Claim) -> None:
        """Renew the claim's lease while its attempt runs."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await asyncio.to_thread(self.store.renew_event, claim, self.lease_seconds):
                    log.warning("event %s: the claim was lost", claim.event_id)
                    return
            except Exception as exc:  # the database away: the attempt will notice too
                log.warning("event %s: could not renew its lease (%s)", claim.event_id, exc)

    async def _give_up(self, event: Event, claim: Claim, report: FailureReport) -> None:
        log.error("event %s failed %d times; telling the user", event.event_id, claim.attempts)
        try:
            await asyncio.to_thread(self.store.fail_event, claim)
        except Exception:
            # Still in flight: the next start tries once more, then reports it again.
            log.exception("could not record event %s as failed", event.event_id)
        await report(event, Failure(min(claim.attempts, self.attempts)))

    async def stale(self, platforms: list[str]) -> list[Event]:
        """Events left in flight by dead owners (expired leases), to run again."""
        found = await asyncio.to_thread(self.store.stale_events, platforms)
        events: list[Event] = []
        for stale in found:
            try:
                events.append(event_from_payload(stale.payload))
            except (TypeError, ValueError, KeyError):
                # Written by another version of the bot, say: nobody can run it again.
                log.exception("event %s: its stored payload cannot be read", stale.event_id)
                await asyncio.to_thread(self.store.abandon_event, stale.platform, stale.event_id)
        return events


@dataclass(frozen=True)
class Notice:
    """What to tell whom when an event is given up."""

    text: str
    reply_to: str | None = None
    private_to: UserRef | None = None


def failure_notice(event: Event, failure: Failure) -> Notice | None:
    """The plain words for a user whose event was given up (None: nobody is waiting)."""
    why = (
        "I could not reach my database"
        if failure.database_away
        else f"it failed {failure.attempts} time{'s' if failure.attempts != 1 else ''}"
    )
    details = "The details are in the bot's log."
    if isinstance(event, MessageReceived):
        names = ", ".join(f.name for f in event.files)
        if event.mentions_bot and event.text.strip():
            text = f"Sorry, I could not answer your question ({why}). {details} Please ask again."
        elif names:
            text = f"Sorry, I could not index {names} ({why}). {details} Please share it again."
        else:
            return None  # a message that was not for the bot
        return Notice(text, reply_to=event.message_id)
    if isinstance(event, FileShared):
        return Notice(
            f"Sorry, I could not index {event.file.name} ({why}). {details} Please share it again.",
            reply_to=event.file.message_id,
        )
    if isinstance(event, CommandInvoked):
        verb = event.text.split(maxsplit=1)[0] if event.text.strip() else "help"
        return Notice(
            f"Sorry, I could not run /librarian {verb} ({why}). {details} Please try again.",
            reply_to=event.message_id,
            private_to=event.author,
        )
    if isinstance(event, FileRemoved):
        return Notice(
            f"I could not forget the documents indexed from a deleted file ({why}). "
            f"{details} An admin can forget them with /librarian forget."
        )
    return None  # a reaction is a quiet gesture: no reply, as when it works
