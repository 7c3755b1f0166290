"""`librarian run`: start the bot with whatever adapters are configured."""

from __future__ import annotations

import typer

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import opened


def run() -> None:
    """Start the bot (today: the storage only; adapters land with the knowledge pipeline)."""
    settings = load_settings()
    with opened(settings) as db:
        revision = migrate.ensure_schema(db, auto_upgrade=True)
        typer.echo(
            f"Storage ready: {db.display_url}, schema {revision}, pgvector {db.pgvector_version}."
        )
        typer.echo("No chat adapter is available yet; nothing more to run.")
