"""Slack: the bot as a Slack app (slack-bolt), over Socket Mode or the HTTP Events API.

Only this package imports slack_bolt and slack_sdk.  ``translate`` holds the pure
payload rules, ``adapter`` the bolt app, the Web API client and the adapter protocol.
This module names only what ``bot.cli.run`` needs, and imports the SDK (an optional
extra) only once Slack is configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from adapters.base import AdapterServices
from bot.adapter import Adapter
from bot.config import Settings
from bot.errors import ConfigError

__all__ = ["EVENT_TYPES", "EVENTS_PATH", "SlackAdapter", "configured", "from_settings"]


def configured(settings: Settings) -> bool:
    """Whether Slack's settings are present; ConfigError when only some are."""
    present = settings.slack_bot_token or settings.slack_app_token or settings.slack_signing_secret
    if present and not settings.slack_configured:
        raise ConfigError(
            "Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) or "
            "SLACK_SIGNING_SECRET (HTTP Events API); LIBRARIAN_SLACK_* names work too"
        )
    return bool(present)


def from_settings(settings: Settings, services: AdapterServices) -> Adapter:
    """The Slack adapter for these settings (ImportError when slack-bolt is missing)."""
    from adapters.slack.adapter import SlackAdapter

    try:
        return SlackAdapter.from_settings(settings, services.store)
    except ValueError as exc:
        raise ConfigError(f"Slack: {exc}") from None


def __getattr__(name: str) -> Any:
    """``from adapters.slack import ...`` imports the SDK only when the adapter is asked for."""
    if name not in ("EVENT_TYPES", "EVENTS_PATH", "SlackAdapter"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("adapters.slack.adapter"), name)
