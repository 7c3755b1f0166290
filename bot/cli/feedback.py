"""`librarian feedback`: export the verdicts people gave on answers.

Needs only the database (no model is loaded).  Verdicts are kept as long as the
channel's history (retention deletes them with it), so an export is a snapshot.
"""

from __future__ import annotations

import json

import typer

from bot.cli.common import parse_channel
from bot.config import load_settings
from bot.store import migrate
from bot.store.database import opened
from bot.store.records import FeedbackEntry
from bot.store.repo import Store


def _sources(entry: FeedbackEntry) -> str:
    parts = []
    for source in entry.sources:
        name = str(source.get("document") or "?")
        pages = source.get("pages")
        parts.append(f"{name}, {pages}" if pages else name)
    return "; ".join(parts) or "none"


def _clip(text: str | None, limit: int = 300) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def feedback(
    json_out: bool = typer.Option(False, "--json", help="Print JSON (a list, newest first)."),
    channel: str | None = typer.Option(
        None, "--channel", help="Only this channel: PLATFORM:CHANNEL, e.g. console:general."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="At most this many, newest first (default: all)."
    ),
) -> None:
    """Export the 👍/👎 verdicts on answers, with their questions, answers and sources."""
    where = parse_channel(channel) if channel else None
    settings = load_settings()
    with opened(settings) as db:
        migrate.ensure_schema(db, auto_upgrade=True)
        store = Store(db)
        if where is None:
            entries = store.feedback_entries(limit=limit)
        else:
            entries = store.feedback_entries(
                platform=where.platform,
                space_id=where.space_id,
                channel_id=where.channel_id,
                limit=limit,
            )
    if json_out:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        typer.echo("no feedback yet")
        return
    for e in entries:
        note = f"  {e.note!r}" if e.note else ""
        typer.echo(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}  {e.channel}  {e.author or '?'}  {e.verdict}{note}"
        )
        typer.echo(f"  Q: {_clip(e.question) or '?'}")
        typer.echo(f"  A: {_clip(e.answer) or '?'}")
        typer.echo(f"  Sources: {_sources(e)}")
