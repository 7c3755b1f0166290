"""`librarian run`: start the bot with whatever adapters are configured."""

from __future__ import annotations

import typer

from bot.adapter import Adapter
from bot.app import App
from bot.cli.common import with_app
from bot.config import Settings
from bot.errors import ConfigError


def configured_adapters(settings: Settings, app: App) -> list[Adapter]:
    """The chat platforms whose settings are present (the console is not one of them)."""
    adapters: list[Adapter] = []
    # ---- Matrix (issue 7) ----
    if settings.matrix_homeserver or settings.matrix_user_id:
        if not settings.matrix_configured:
            raise ConfigError(
                "Matrix: set LIBRARIAN_MATRIX_HOMESERVER, LIBRARIAN_MATRIX_USER_ID and "
                "LIBRARIAN_MATRIX_ACCESS_TOKEN (or LIBRARIAN_MATRIX_PASSWORD)"
            )
        try:
            from adapters.matrix import MatrixAdapter
        except ImportError as exc:
            raise ConfigError(
                f"Matrix is configured but matrix-nio is missing ({exc}): "
                "pip install 'librarian[matrix]'"
            ) from None
        adapters.append(MatrixAdapter.from_settings(settings, app.store))
    # ---- end Matrix ----
    # ---- Slack (issue 8) ----
    if settings.slack_bot_token or settings.slack_app_token or settings.slack_signing_secret:
        if not settings.slack_configured:
            raise ConfigError(
                "Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) or "
                "SLACK_SIGNING_SECRET (HTTP Events API); LIBRARIAN_SLACK_* names work too"
            )
        try:
            from adapters.slack import SlackAdapter
        except ImportError as exc:
            raise ConfigError(
                f"Slack is configured but slack-bolt is missing ({exc}): "
                "pip install 'librarian[slack]'"
            ) from None
        try:
            adapters.append(SlackAdapter.from_settings(settings, app.store))
        except ValueError as exc:
            raise ConfigError(f"Slack: {exc}") from None
    # ---- end Slack ----
    # ---- Discord (issue 9) ----
    if settings.discord_token:
        try:
            from adapters.discord import DiscordAdapter
        except ImportError as exc:
            raise ConfigError(
                f"Discord is configured but discord.py is missing ({exc}): "
                "pip install 'librarian[discord]'"
            ) from None
        adapters.append(DiscordAdapter.from_settings(settings, app.dispatcher.commands))
    # ---- end Discord ----
    return adapters


def run(
    channel: str = typer.Option("general", help="Console: the channel to be in."),
    user: str = typer.Option(None, help="Console: who you are (default: your login name)."),
) -> None:
    """Start the bot. With no chat platform configured, the console is the channel."""
    from adapters.console import ConsoleAdapter

    async def work(app: App) -> None:
        adapters = configured_adapters(app.settings, app)
        if not adapters:
            adapters = [ConsoleAdapter(channel=channel, user=user, admins=app.settings.admins)]
        await app.run_adapters(adapters)

    with_app(work)
