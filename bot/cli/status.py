"""`librarian status` and `librarian run`."""

from __future__ import annotations

import json

import typer

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import opened
from bot.store.status import server_version, table_counts


def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the database, schema revision, pgvector version and row counts."""
    settings = load_settings()
    with opened(settings) as db:
        current = migrate.current_revision(db)
        head = migrate.head_revision()
        counts = table_counts(db) if current == head else {}
        info = {
            "database": db.display_url,
            "embedded": db.embedded,
            "home": str(settings.home),
            "postgres_version": server_version(db),
            "pgvector_version": db.pgvector_version,
            "schema_revision": current,
            "head_revision": head,
            "counts": counts,
        }
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    embedded = " (embedded)" if db.embedded else ""
    typer.echo(f"{'database':<18}{info['database']}{embedded}")
    typer.echo(f"{'postgres':<18}{info['postgres_version']}, pgvector {info['pgvector_version']}")
    needs = "" if current == head else f" (needs {head}: run `librarian db upgrade`)"
    typer.echo(f"{'schema':<18}{current or 'none'}{needs}")
    for table, count in counts.items():
        typer.echo(f"{table:<18}{count}")
