"""`librarian run`: start the bot with whatever adapters are configured."""

from __future__ import annotations

import importlib

import typer

from adapters.base import AdapterServices
from bot import roles
from bot.adapter import Adapter
from bot.app import App
from bot.cli.common import with_app
from bot.cli.serve import serve_gateways
from bot.config import Settings
from bot.errors import ConfigError

#: The chat platforms, each an adapter package with ``configured`` and ``from_settings``.
PLATFORMS = ("matrix", "slack", "discord")


def configured_adapters(settings: Settings, app: App) -> list[Adapter]:
    """The chat platforms whose settings are present (the console is not one of them)."""
    services = AdapterServices(store=app.store, commands=app.dispatcher.commands)
    adapters: list[Adapter] = []
    for platform in PLATFORMS:
        package = importlib.import_module(f"adapters.{platform}")
        if not package.configured(settings):
            continue
        try:
            adapters.append(package.from_settings(settings, services))
        except ImportError as exc:
            raise ConfigError(
                f"{platform.capitalize()} is configured but its package is missing ({exc}): "
                f"pip install 'librarian[{platform}]'"
            ) from None
    return adapters


def run(
    channel: str = typer.Option("general", help="Console: the channel to be in."),
    user: str = typer.Option(None, help="Console: who you are (default: your login name)."),
    adapters_spec: str = typer.Option(
        None,
        "--adapters",
        help="Gateways only: these platforms (e.g. slack,matrix), no ingest worker or "
        "scheduled jobs (run `librarian worker` for those). Default: everything.",
    ),
    with_worker: bool = typer.Option(
        False, "--with-worker", help="With --adapters: index files and run jobs here too."
    ),
) -> None:
    """Start the bot. With no chat platform configured, the console is the channel."""
    from adapters.console import ConsoleAdapter

    role = roles.run_role(roles.parse_adapters(adapters_spec), with_worker)

    async def work(app: App) -> None:
        adapters = configured_adapters(app.settings, app)
        if role.adapters is not None:
            adapters = roles.select(adapters, role.adapters)
        if not adapters and (role.adapters is None or "console" in role.adapters):
            adapters = [ConsoleAdapter(channel=channel, user=user, admins=app.settings.admins)]
        if not adapters:
            raise ConfigError("--adapters: no chat platform to connect to")
        await serve_gateways(app, role, adapters)

    with_app(work)
