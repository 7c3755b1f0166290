"""`librarian status` and `librarian run`."""

from __future__ import annotations

import json
import time

import typer

from bot.config import describe_discord_shards, load_settings
from bot.inference.pool import probe_configured
from bot.store import migrate, server_state
from bot.store.database import DatabaseUnavailable, open_database
from bot.store.repo import Store
from bot.store.status import server_version, table_counts
from bot.supervisor import describe_state, recorded_states


def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the database, its server's state, schema revision, pgvector version and row counts."""
    settings = load_settings()
    # As the running bots last recorded them: restarts of the embedded server, or a
    # DATABASE_URL server they are retrying.  Read first: it is news when the database
    # cannot be reached.
    watched = [
        {**entry, "described": server_state.describe(entry)}
        for entry in server_state.recorded(settings.home)
    ]
    try:
        db = open_database(settings)
    except DatabaseUnavailable as exc:
        # What the running bots see goes to stdout; the error itself, as for every
        # command, is one line on stderr (exit code 2).
        _unreachable(str(exc), watched, json_out)
        raise
    try:
        current = migrate.current_revision(db)
        head = migrate.head_revision()
        counts = table_counts(db) if current == head else {}
        adapters = recorded_states(Store(db)) if current == head else {}
        info = {
            "database": db.display_url,
            "embedded": db.embedded,
            "database_server": {
                "kind": "embedded" if db.embedded else "external",
                "reachable": True,
                "watched_by": watched,
            },
            "home": str(settings.home),
            "postgres_version": server_version(db),
            "pgvector_version": db.pgvector_version,
            # "0.8" (halfvec workspace indexes) or "fallback" (pgvector 0.6's plans).
            "vector_path": db.vector_path,
            "schema_revision": current,
            "head_revision": head,
            "counts": counts,
            # As the running bot last recorded them (bot.supervisor).
            "adapters": {
                name: {**entry, "described": describe_state(entry)}
                for name, entry in sorted(adapters.items())
            },
            "inference_servers": probe_configured(
                {"chat": settings.chat_model, "embedding": settings.embedding_model}
            ),
        }
        # This process's settings: what `librarian run` here would run (absent unsharded).
        if (shards := settings.discord_shards()) is not None:
            info["discord_shards"] = shards
    finally:
        db.close()
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    embedded = " (embedded)" if db.embedded else ""
    typer.echo(f"{'database':<18}{info['database']}{embedded}")
    typer.echo(
        f"{'postgres':<18}{info['postgres_version']}, pgvector {info['pgvector_version']} "
        f"(search path: {info['vector_path']})"
    )
    _print_watched(watched)
    needs = "" if current == head else f" (needs {head}: run `librarian db upgrade`)"
    typer.echo(f"{'schema':<18}{current or 'none'}{needs}")
    for table, count in counts.items():
        typer.echo(f"{table:<18}{count}")
    for name, entry in info["adapters"].items():
        # Recorded by the running bot: say when and by which process, since a process
        # killed outright leaves its last state behind.
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry.get("since", 0))))
        typer.echo(
            f"{'adapter ' + name:<18}{entry['described']} "
            f"(since {since}, process {entry.get('pid', '?')})"
        )
    for server in info["inference_servers"]:
        health = "up" if server["up"] else f"down ({server['error']})"
        typer.echo(f"{server['role'] + ' server':<18}{server['backend']} {health}")
    if "discord_shards" in info:
        typer.echo(f"{'discord shards':<18}{describe_discord_shards(info['discord_shards'])}")


def _print_watched(watched: list[dict], reachable: bool = True) -> None:
    if not watched and reachable:
        typer.echo(f"{'database server':<18}reachable (no running bot is watching it)")
    for entry in watched:
        typer.echo(
            f"{'database server':<18}{entry['described']} "
            f"(seen by process {entry.get('pid', '?')} on {entry.get('host', '?')})"
        )


def _unreachable(reason: str, watched: list[dict], json_out: bool) -> None:
    """What status can say when it cannot reach the database itself."""
    if json_out:
        info = {"database_server": {"reachable": False, "error": reason, "watched_by": watched}}
        typer.echo(json.dumps(info, indent=2))
        return
    _print_watched(watched, reachable=False)
