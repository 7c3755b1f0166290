"""`librarian retention` (run the job now, set a channel's retention) and `librarian audit`.

These need only the database: no model is loaded, so they start in about a second.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import typer

from bot.cli.common import parse_channel
from bot.config import load_settings
from bot.errors import LibrarianError
from bot.retention import DurationError, format_duration, parse_duration, run_retention
from bot.store import migrate
from bot.store.database import opened
from bot.store.repo import Store, WorkspaceDefaults, channel_spec
from bot.teams import qualified_workspace

app = typer.Typer(no_args_is_help=True, help="Per-channel retention of conversation history.")

CLI_ACTOR = "cli"


@contextlib.contextmanager
def _store() -> Iterator[tuple[Store, Any]]:
    settings = load_settings()
    with opened(settings) as db:
        migrate.ensure_schema(db, auto_upgrade=True)
        yield Store(db), settings


@app.command("run")
def run(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run the retention job once now and print what it deleted, per channel.

    Safe beside running bots: if another process is running the job, this run is
    skipped (reported as such) rather than deleting twice.
    """
    with _store() as (store, settings):
        result = run_retention(store, actor=CLI_ACTOR, audit_days=settings.audit_retention_days)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    if not result.ran:
        typer.echo(result.describe())
        return
    if not result.deleted and not result.feedback:
        typer.echo("retention: nothing to delete")
        return
    for channel, count in result.deleted.items():
        typer.echo(f"{channel:<32}{count} deleted")
    typer.echo(f"{'total':<32}{result.total} deleted")
    for channel, count in result.feedback.items():
        typer.echo(f"{channel:<32}{count} verdict{'s' if count != 1 else ''} on answers deleted")


@app.command("set")
def set_retention(
    channel: str = typer.Argument(..., help="PLATFORM:CHANNEL, e.g. console:general."),
    duration: str = typer.Argument(..., help="<N>d, <N>h, or off."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Set how long a channel's conversation history is kept (7d, 12h, off)."""
    conversation = parse_channel(channel)
    try:
        seconds = parse_duration(duration)
    except DurationError as exc:
        raise LibrarianError(f"DURATION: {exc}") from None
    with _store() as (store, settings):
        binding = store.binding_for(
            conversation.platform,
            conversation.space_id,
            conversation.channel_id,
            WorkspaceDefaults.from_settings(settings),
            conversation.channel_name,
        )
        store.update_binding(binding.id, retention_seconds=seconds)
        spec = channel_spec(binding.platform, binding.space_id, binding.channel_id)
        store.audit(
            CLI_ACTOR,
            "retention",
            spec,
            {
                "channel": spec,
                "from": format_duration(binding.retention_seconds),
                "to": format_duration(seconds),
                "seconds": seconds,
            },
        )
    if json_out:
        typer.echo(
            json.dumps({"channel": spec, "retention": format_duration(seconds), "seconds": seconds})
        )
    else:
        typer.echo(f"{spec}: retention {format_duration(seconds)}")


@app.command("list")
def list_retention(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every known channel with its retention and workspace."""
    with _store() as (store, _settings):
        bindings = store.bindings()
    rows = [
        {
            "channel": channel_spec(b.platform, b.space_id, b.channel_id),
            "retention": format_duration(b.retention_seconds),
            "seconds": b.retention_seconds,
            "workspace": b.workspace.name,
            "team": b.workspace.owner_team,
            # As LIBRARIAN_ADMINS type it in `/librarian workspace` from another team.
            "workspace_ref": (
                qualified_workspace(b.workspace.owner_team, b.workspace.name)
                if not b.workspace.own
                else b.workspace.name
            ),
        }
        for b in bindings
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no channels yet")
        return
    width = max(len(r["channel"]) for r in rows) + 2
    for r in rows:
        typer.echo(f"{r['channel']:<{width}}{r['retention']:<8}{r['workspace_ref']}")


def audit(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(50, "--limit", min=1, help="How many entries, newest first."),
) -> None:
    """Show the audit log: refusals, admin actions, forgets, retention runs."""
    with _store() as (store, _settings):
        entries = store.audit_entries(limit)
    if json_out:
        typer.echo(
            json.dumps([{**e, "at": e["at"].isoformat()} for e in entries], indent=2, default=str)
        )
        return
    if not entries:
        typer.echo("the audit log is empty")
        return
    for e in entries:
        details = json.dumps(e["details"], separators=(", ", ": "), default=str)
        target = e["target"] or "-"
        typer.echo(
            f"{e['at']:%Y-%m-%d %H:%M:%S}  {e['actor']:<18} {e['action']:<10} {target}  {details}"
        )
