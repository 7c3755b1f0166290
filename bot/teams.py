"""Teams: who owns a workspace, and so whose platform admins may bind channels to it.

A team is the unit a platform's own roles govern: a Slack team, a Discord guild, a
Matrix room (Matrix rooms have no enclosing space we could trust: anyone can create
a room and be its admin), or the console.  An operator may declare a set of Matrix
rooms one team (``LIBRARIAN_MATRIX_TEAMS``); nobody in chat can.

Team ids are strings:

* ``<platform>:<space>`` where the platform has spaces (``slack:T01``, ``discord:42``,
  ``console:team-a``);
* ``console:`` for the console without a space: one local operator, one team;
* ``<platform>:<channel>`` where there is no space (``matrix:!abc:example.org``, a
  Discord DM): the channel is its own team;
* ``<platform>:team:<name>`` for rooms an operator declared one team.

Migration 0009 computes the first three in SQL for existing workspaces; the rule here
and there must stay the same.

Workspace names are unique per team (migration 0013): a typed name is looked up
among the workspaces of the channel's team only, and ``<team>/<name>`` names one
across teams (for LIBRARIAN_ADMINS and the operator).  A workspace of no team (an
orphan from before migration 0009, whose owner nobody knew) is ``no-team/<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.events import ConversationRef

#: Platforms whose channels without a space still form one team.
SINGLE_TEAM_PLATFORMS = frozenset({"console"})


def channel_team(platform: str, space_id: str, channel_id: str) -> str:
    """The team of a channel by the platform's own structure (no declared teams)."""
    if space_id:
        return f"{platform}:{space_id}"
    if platform in SINGLE_TEAM_PLATFORMS:
        return f"{platform}:"
    return f"{platform}:{channel_id}"


#: Between a team and a workspace name: how LIBRARIAN_ADMINS name another team's
#: workspace (``slack:T0123/finance``).  Typed names hold no ``/`` or ``:``.
TEAM_SEPARATOR = "/"


#: The team part of ``<team>/<name>`` for a workspace of no team (NULL ``owner_team``:
#: made before migration 0009 and bound by no channel then).  Every team id holds a
#: ``:``, so this word is never one.
NO_TEAM = "no-team"


def qualified_workspace(team: str | None, name: str) -> str:
    """A workspace named with its team, ``<team>/<name>``: unique across the deployment.

    A workspace of no team is ``no-team/<name>``.
    """
    return f"{team or NO_TEAM}{TEAM_SEPARATOR}{name}"


def is_team_part(typed: str) -> bool:
    """Whether what was typed before ``/`` can name a team: a team id, or ``no-team``."""
    return ":" in typed or typed == NO_TEAM


def declared_team(platform: str, name: str) -> str:
    """The id of a team an operator declared in configuration."""
    return f"{platform}:team:{name}"


class Teams:
    """Turns a conversation into its team, knowing the teams declared in configuration."""

    def __init__(self, declared: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> None:
        """``declared``: platform -> team name -> channel ids (e.g. Matrix room ids)."""
        self._declared: dict[tuple[str, str], str] = {}
        for platform, teams in (declared or {}).items():
            for name, channels in teams.items():
                for channel in channels:
                    self._declared[(platform, channel)] = declared_team(platform, name)

    @classmethod
    def from_settings(cls, settings: object) -> Teams:
        """The teams declared by ``LIBRARIAN_MATRIX_TEAMS``."""
        matrix = getattr(settings, "matrix_teams", None) or {}
        return cls({"matrix": matrix})

    def team_of(self, conversation: ConversationRef) -> str:
        """The team that owns what this conversation's admins create."""
        return self.teams_of(conversation)[0]

    def teams_of(self, conversation: ConversationRef) -> tuple[str, ...]:
        """Every team whose workspaces this conversation's admins may bind to.

        The declared team first (if any), then the channel's own: a room declared part
        of a team later keeps the workspaces it owned as a room of its own.
        """
        own = channel_team(conversation.platform, conversation.space_id, conversation.channel_id)
        declared = self._declared.get((conversation.platform, conversation.channel_id))
        if declared is not None and not conversation.space_id:
            return (declared, own)
        return (own,)
