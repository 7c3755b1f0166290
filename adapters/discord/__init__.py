"""Discord: the bot as a Discord application (discord.py), answering in guild channels.

Only this package imports discord.py.  ``text`` holds the pure rules (splitting at
Discord's 2,000-character limit, cleaning mentions, which attachments to index),
``commands`` the slash commands made from the core's declarations, ``adapter`` the
client and the adapter protocol.  This module names only what ``bot.cli.run``
needs, and imports the SDK (an optional extra) only once Discord is configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from adapters.base import AdapterServices
from bot.adapter import Adapter
from bot.config import Settings

__all__ = ["MESSAGE_LIMIT", "DiscordAdapter", "configured", "from_settings", "split_message"]


def configured(settings: Settings) -> bool:
    """Whether Discord's token is set."""
    return bool(settings.discord_token)


def from_settings(settings: Settings, services: AdapterServices) -> Adapter:
    """The Discord adapter for these settings (ImportError when discord.py is missing)."""
    from adapters.discord.adapter import DiscordAdapter

    return DiscordAdapter.from_settings(settings, services.commands)


def __getattr__(name: str) -> Any:
    """``from adapters.discord import ...`` imports the SDK only when the adapter is asked for."""
    if name == "DiscordAdapter":
        return importlib.import_module("adapters.discord.adapter").DiscordAdapter
    if name in ("MESSAGE_LIMIT", "split_message"):
        return getattr(importlib.import_module("adapters.discord.text"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
