"""Matrix: the bot as a Matrix account (matrix-nio), answering in rooms it is invited to.

Only this package imports matrix-nio.  ``translate`` holds the pure event rules,
``adapter`` the client, the sync loop and the adapter protocol.  This module names
only what ``bot.cli.run`` needs, and imports the SDK (an optional extra) only once
Matrix is configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from adapters.base import AdapterServices
from bot.adapter import Adapter
from bot.config import Settings
from bot.errors import ConfigError

__all__ = ["MatrixAdapter", "MatrixError", "configured", "from_settings"]


def configured(settings: Settings) -> bool:
    """Whether Matrix's settings are present; ConfigError when only some are."""
    present = settings.matrix_homeserver or settings.matrix_user_id
    if present and not settings.matrix_configured:
        raise ConfigError(
            "Matrix: set LIBRARIAN_MATRIX_HOMESERVER, LIBRARIAN_MATRIX_USER_ID and "
            "LIBRARIAN_MATRIX_ACCESS_TOKEN (or LIBRARIAN_MATRIX_PASSWORD)"
        )
    return bool(present)


def from_settings(settings: Settings, services: AdapterServices) -> Adapter:
    """The Matrix adapter for these settings (ImportError when matrix-nio is missing)."""
    from adapters.matrix.adapter import MatrixAdapter

    return MatrixAdapter.from_settings(settings, services.store)


def __getattr__(name: str) -> Any:
    """``from adapters.matrix import ...`` imports the SDK only when the adapter is asked for."""
    if name not in ("MatrixAdapter", "MatrixError"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("adapters.matrix.adapter"), name)
