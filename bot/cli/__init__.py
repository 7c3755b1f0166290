"""The ``librarian`` command line.

Each command group lives in its own module and is registered here; this is the
only place that turns a LibrarianError into one line on stderr and an exit code.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from bot.errors import LibrarianError
from bot.redact import mask_log_handlers, mask_secrets

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Librarian: a self-hosted knowledge bot for team chat.",
)


def _register() -> None:
    # Imported here so that `librarian --help` stays cheap and each group owns its module.
    from bot.cli import bench, db, feedback, knowledge, models, retention, run, status, worker

    app.add_typer(db.app, name="db", help="Create and upgrade the database schema.")
    app.add_typer(models.app, name="models", help="Find, convert, quantize and benchmark models.")
    app.command("status")(status.status)
    app.command("run")(run.run)
    app.command("worker")(worker.worker)
    app.command("ingest")(knowledge.ingest)
    app.command("ask")(knowledge.ask)
    app.add_typer(
        retention.app, name="retention", help="Run the retention job now, or set a channel's."
    )
    app.command("audit")(retention.audit)
    app.command("feedback")(feedback.feedback)
    app.add_typer(bench.app, name="bench", help="Benchmark retrieval, ingestion and grounding.")


def main() -> None:
    """Entry point of the console script."""
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR (services, CI)
    # platformdirs warns on every run although its /tmp fallback is fine for us.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    mask_log_handlers()  # no password of a connection string in any log line
    _register()
    try:
        app()
    except LibrarianError as exc:
        print(f"librarian: {mask_secrets(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
