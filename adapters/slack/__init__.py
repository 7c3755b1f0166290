"""Slack: the bot as a Slack app (slack-bolt), over Socket Mode or the HTTP Events API.

Only this package imports slack_bolt and slack_sdk.  ``translate`` holds the pure
payload rules, ``adapter`` the bolt app, the Web API client and the adapter protocol.
"""

from adapters.slack.adapter import EVENT_TYPES, EVENTS_PATH, SlackAdapter

__all__ = ["EVENT_TYPES", "EVENTS_PATH", "SlackAdapter"]
