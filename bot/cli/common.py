"""Helpers shared by CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.app import App
from bot.config import load_settings
from bot.errors import LibrarianError
from bot.events import ConversationRef

T = TypeVar("T")


def parse_channel(spec: str) -> ConversationRef:
    """'console:general', 'slack:T01/C02' or 'matrix:!room:example.org' as a conversation."""
    platform, sep, rest = spec.partition(":")
    if not sep or not rest or not platform.isalpha():
        raise LibrarianError(
            f"--channel {spec!r}: write it as PLATFORM:CHANNEL, e.g. console:general"
        )
    space, slash, channel = (
        rest.partition("/") if platform in ("slack", "discord") else ("", "", rest)
    )
    if not slash:
        space, channel = "", rest
    name = f"#{channel}" if platform == "console" else None
    return ConversationRef(platform.lower(), space, channel, None, name)


def with_app(work: Callable[[App], Awaitable[T]]) -> T:
    """Build the app, run ``work`` in an event loop, and always close it."""
    settings = load_settings()

    async def main() -> T:
        app = App.build(settings)
        try:
            return await work(app)
        finally:
            await app.close()

    return asyncio.run(main())
