"""`librarian run`: start the bot with whatever adapters are configured."""

from __future__ import annotations

import typer

from bot.app import App
from bot.cli.common import with_app


def run(
    channel: str = typer.Option("general", help="Console: the channel to be in."),
    user: str = typer.Option(None, help="Console: who you are (default: your login name)."),
) -> None:
    """Start the bot. With no chat platform configured, the console is the channel."""
    from adapters.console import ConsoleAdapter

    async def work(app: App) -> None:
        console = ConsoleAdapter(channel=channel, user=user, admins=app.settings.admins)
        await app.run_adapters([console])

    with_app(work)
