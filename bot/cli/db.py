"""`librarian db ...`: create, upgrade and inspect the schema; back up and restore."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bot.config import load_settings
from bot.store import backup as backup_store
from bot.store import migrate
from bot.store.database import opened

app = typer.Typer(no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create the schema, or bring it up to date."""
    settings = load_settings()
    with opened(settings) as db:
        before = migrate.current_revision(db)
        after = migrate.upgrade(db, revision)
    if before == after:
        typer.echo(f"Schema already at revision {after} ({db.display_url}).")
    else:
        typer.echo(f"Schema upgraded from {before or 'empty'} to {after} ({db.display_url}).")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Step the schema back (``base`` removes every table: all data is lost)."""
    settings = load_settings()
    with opened(settings) as db:
        after = migrate.downgrade(db, revision)
    typer.echo(f"Schema now at revision {after or 'base (empty)'}.")


@app.command()
def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the schema revision the database is at, and the newest one known."""
    settings = load_settings()
    with opened(settings) as db:
        current = migrate.current_revision(db)
    head = migrate.head_revision()
    info = {
        "database": db.display_url,
        "schema_revision": current,
        "head_revision": head,
        "up_to_date": current == head,
    }
    if json_out:
        typer.echo(json.dumps(info))
        return
    state = "up to date" if current == head else "out of date: run `librarian db upgrade`"
    typer.echo(f"{db.display_url}: revision {current or 'none'} (newest {head}), {state}")


@app.command()
def backup(
    path: Path = typer.Argument(..., help="The backup file to write (a tar)."),
) -> None:
    """Back up the database and the stored files into one file."""
    settings = load_settings()
    with opened(settings) as db:
        try:
            held = backup_store.backup(db, settings.files_dir, path)
        except backup_store.BackupError as exc:
            typer.echo(f"Backup failed: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"Backed up {db.display_url} and {held['files']} stored files to {path} "
        f"({held['bytes'] / 1e6:.1f} MB)."
    )


@app.command()
def restore(
    path: Path = typer.Argument(..., help="A file written by `librarian db backup`."),
    replace: bool = typer.Option(
        False, "--replace", help="Replace the tables the database already holds."
    ),
) -> None:
    """Restore the database and the stored files from a backup."""
    settings = load_settings()
    with opened(settings) as db:
        try:
            done = backup_store.restore(db, settings.files_dir, path, replace=replace)
        except backup_store.BackupError as exc:
            typer.echo(f"Restore failed: {exc}", err=True)
            raise typer.Exit(1) from None
        after = migrate.current_revision(db)
    typer.echo(
        f"Restored {path} into {db.display_url} (schema {after}) and {done['files']} stored files."
    )
