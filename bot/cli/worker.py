"""`librarian worker`: the ingest queue and the scheduled jobs, no chat connection."""

from __future__ import annotations

from bot.app import App
from bot.cli.common import with_app
from bot.cli.serve import serve_process
from bot.roles import Role


def worker() -> None:
    """Index queued documents and run scheduled jobs until stopped (SIGTERM or Ctrl-C).

    Run any number of workers against one database: each document is indexed once
    (advisory lock per document) and each retention run happens once.
    """

    async def work(app: App) -> None:
        await serve_process(app, Role((), True), app.run_worker)

    with_app(work)
