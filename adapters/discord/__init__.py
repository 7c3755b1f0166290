"""Discord: the bot as a Discord application (discord.py), answering in guild channels.

Only this package imports discord.py.  ``text`` holds the pure rules (splitting at
Discord's 2,000-character limit, cleaning mentions, which attachments to index),
``adapter`` the client, the slash commands and the adapter protocol.
"""

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.text import MESSAGE_LIMIT, split_message

__all__ = ["MESSAGE_LIMIT", "DiscordAdapter", "split_message"]
