"""Discord's `/librarian` application command group, built from the core's declarations.

Each declared command becomes a subcommand; each declared argument an option: its
type (choices become Discord's choices), whether it is required, its description.
A file argument is an attachment, required here: a slash command has no message to
attach a file to.  Nothing about a command is written down twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Optional

import discord
from discord import app_commands

from bot.command_spec import FILE, Argument, Command

GROUP_NAME = "librarian"
GROUP_DESCRIPTION = "Answers from the documents shared in this channel"
DESCRIPTION_LIMIT = 100  # Discord's limit on a command's and an option's description

#: (interaction, command name, its arguments as text (None when not given), attachments)
Runner = Callable[..., Awaitable[None]]


def description(declared: Command) -> str:
    """A subcommand's description: the declared summary, marked for admins."""
    text = declared.summary.removesuffix(".")
    if declared.admin:
        text += " (admins)"
    return text[:DESCRIPTION_LIMIT]


def is_required(arg: Argument) -> bool:
    """Whether Discord must ask for the option."""
    return arg.kind is FILE or not (arg.optional or arg.with_previous)


def option_type(arg: Argument) -> Any:
    """The annotation discord.py turns into the option's type and choices."""
    if arg.kind is FILE:
        return discord.Attachment
    if arg.choices:
        return Literal[arg.choices]
    return arg.kind


def command_group(declared: Mapping[str, Command], run: Runner) -> app_commands.Group:
    """/librarian and one subcommand per declared command."""
    group = app_commands.Group(name=GROUP_NAME, description=GROUP_DESCRIPTION)
    for spec in declared.values():
        group.add_command(_subcommand(spec, run))
    return group


def _subcommand(spec: Command, run: Runner) -> app_commands.Command:
    async def callback(interaction: discord.Interaction, **options: Any) -> None:
        texts: list[str | None] = []
        files: list[discord.Attachment] = []
        for arg in spec.arguments:
            value = options.get(arg.name)
            if arg.kind is FILE:
                files.extend([value] if value is not None else [])
            else:
                texts.append(None if value is None else str(value))
        await run(interaction, spec.name, *texts, files=tuple(files))

    parameters = [
        inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        )
    ]
    for arg in spec.arguments:
        required = is_required(arg)
        kind = option_type(arg)
        parameters.append(
            inspect.Parameter(
                arg.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=kind if required else Optional[kind],  # noqa: UP045 (a runtime value)
                default=inspect.Parameter.empty if required else None,
            )
        )
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    callback.__name__ = callback.__qualname__ = f"librarian_{spec.name}"
    described = app_commands.describe(
        **{arg.name: arg.help[:DESCRIPTION_LIMIT] for arg in spec.arguments}
    )(callback)
    return app_commands.Command(name=spec.name, description=description(spec), callback=described)
