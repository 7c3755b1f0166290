"""The command declarations: parsing, arity, choices, admin refusal, and what is made of them.

The fast tier (``make test-fast``): no Postgres, no model, no server.  What a person
types after ``/librarian`` goes through the same ``Command.arguments_for`` the
dispatcher calls; help, Discord's slash commands and the README's table are checked
against the same declarations.
"""

from __future__ import annotations

import re
from pathlib import Path

import discord
import pytest

from adapters.discord.commands import GROUP_NAME, command_group, description, is_required
from bot.command_spec import (
    ADMINS_ONLY,
    FILE,
    Refused,
    UsageError,
    argument,
    by_name,
    command,
    help_for,
    help_list,
    split_command,
    suggest,
)
from bot.commands import COMMANDS, base_commands
from bot.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
DECLARED = base_commands()


def typed(text: str, *, admin: bool = False) -> tuple[str, dict]:
    """What the dispatcher makes of ``/librarian <text>``: the command and its arguments."""
    name, raw = split_command(text)
    return name, DECLARED[name].arguments_for(raw, by_admin=admin)


def usage_error(text: str, *, admin: bool = True) -> str:
    with pytest.raises(UsageError) as caught:
        typed(text, admin=admin)
    return str(caught.value)


# -- what people type ---------------------------------------------------------------------


def test_an_empty_command_is_help_and_names_are_case_insensitive() -> None:
    assert typed("") == ("help", {"command": None})
    assert typed("HELP forget") == ("help", {"command": "forget"})


def test_free_text_arguments_take_the_rest_of_the_line() -> None:
    assert typed("ask What is the warranty of the X200?")[1] == {
        "question": "What is the warranty of the X200?"
    }
    assert typed("forget my report 2024.pdf")[1] == {"document": "my report 2024.pdf"}
    assert typed('forget "my report.pdf"')[1] == {"document": "my report.pdf"}
    assert typed("compare q4_0 q8_0 how long is the warranty?", admin=True)[1] == {
        "level_a": "q4_0",
        "level_b": "q8_0",
        "question": "how long is the warranty?",
    }
    assert typed("feedback bad the price is wrong")[1] == {
        "verdict": "bad",
        "note": "the price is wrong",
    }


def test_choices_accept_their_synonyms_and_refuse_the_rest() -> None:
    assert typed("autoindex YES", admin=True)[1] == {"state": "on"}
    assert typed("autoindex false", admin=True)[1] == {"state": "off"}
    assert typed("feedback 👍")[1] == {"verdict": "good", "note": None}
    assert typed("settings k 5", admin=True)[1] == {"name": "top_k", "value": "5"}
    assert typed("settings chunk-size 300", admin=True)[1]["name"] == "chunk_tokens"
    assert usage_error("autoindex maybe") == "'maybe' is neither on nor off"
    assert usage_error("uploads nobody") == "'nobody' is neither everyone nor admins"
    assert usage_error("feedback meh") == "say good or bad, then a note if you like"
    assert usage_error("settings colour blue").startswith("'colour' is not a setting")


def test_missing_and_extra_arguments_are_usage_errors_in_plain_words() -> None:
    assert usage_error("ask") == "ask what? Write the question after the command"
    assert usage_error("forget").startswith("say which document to forget")
    assert usage_error("compare q4_0 q8_0") == "give two quantization levels and a question"
    assert usage_error("settings top_k").startswith("give a setting's name and its new value")
    assert usage_error("status please", admin=False) == "status takes no arguments"
    assert usage_error("clear everything") == "clear takes no arguments"
    assert usage_error("workspace a b").startswith("a workspace name is one word")
    assert usage_error("retention 7d 12h") == "give one duration, like 7d, 12h or off"
    assert usage_error("autoindex on off") == "'off' is more than autoindex takes"
    # Optional arguments may be left out.
    assert typed("settings", admin=True)[1] == {"name": None, "value": None}
    assert typed("retention", admin=True)[1] == {"duration": None}


def test_admin_commands_refuse_others_before_reading_their_arguments() -> None:
    admin_only = [c.name for c in COMMANDS if c.admin]
    assert admin_only == [
        "retention",
        "clear",
        "workspace",
        "model",
        "compare",
        "autoindex",
        "uploads",
        "settings",
    ]
    for name in admin_only:
        with pytest.raises(Refused, match=ADMINS_ONLY):
            typed(f"{name} nonsense words", admin=False)
    # Everyone's commands are everyone's.
    assert typed("docs", admin=False) == ("docs", {})


# -- what is made of the declarations -----------------------------------------------------


def test_usage_lines_come_from_the_arguments() -> None:
    assert {c.name: c.usage for c in COMMANDS} == {
        "help": "help [<command>]",
        "ask": "ask <question>",
        "feedback": "feedback good|bad [<note>]",
        "upload": "upload [<file>]",
        "docs": "docs",
        "forget": "forget <document name or #id>",
        "status": "status",
        "retention": "retention [<N>d|<N>h|off]",
        "clear": "clear",
        "workspace": "workspace <name>",
        "model": "model [<model>|<level>|default]",
        "compare": "compare <level-a> <level-b> <question>",
        "autoindex": "autoindex [on|off]",
        "uploads": "uploads [everyone|admins]",
        "settings": "settings [<name> <value>]",
    }


def test_every_command_has_help_from_its_docstring() -> None:
    forget = help_for(DECLARED["forget"])
    assert forget.startswith("/librarian forget <document name or #id> (the uploader or an admin)")
    assert "The uploader of a document or an admin may forget it." in forget
    assert help_for(DECLARED["clear"]).startswith("/librarian clear (admins only)")
    for declared in COMMANDS:
        assert declared.summary and declared.summary.endswith("."), declared.name
        assert declared.summary == declared.handler.__doc__.splitlines()[0]


def test_an_unknown_name_points_to_the_command_it_probably_means() -> None:
    commands = base_commands()
    assert suggest(commands, "documents") == "docs"  # a synonym
    assert suggest(commands, "Delete") == "forget"
    assert suggest(commands, "stauts") == "status"  # a typo
    assert suggest(commands, "frobnicate") is None
    # A synonym is no command's name and belongs to one command only.
    synonyms = [s for declared in COMMANDS for s in declared.synonyms]
    assert len(synonyms) == len(set(synonyms)) and not set(synonyms) & set(commands)


def test_the_settings_bounds_are_the_configurations() -> None:
    from bot.commands import _SETTINGS, _Setting

    for key in _SETTINGS:
        kind, low, high = _Setting.bounds(key)
        field = Settings.model_fields[key]
        assert kind is field.annotation and low is not None and high is not None, key
    assert _Setting.bounds("top_k") == (int, 1, 50)
    assert _Setting.bounds("relevance_floor") == (float, 0.0, 1.0)


def _readme_commands() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### In the chat", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section.replace("\\|", "\0"), re.M)
    return [(usage.replace("\0", "|"), who.replace("\0", "|")) for usage, who in rows]


def test_the_readme_table_lists_the_declared_commands() -> None:
    assert _readme_commands() == [(c.usage, c.who_may) for c in COMMANDS]


def test_the_discord_slash_commands_are_the_declarations() -> None:
    async def run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("not invoked here")

    group = command_group(DECLARED, run)
    assert group.name == GROUP_NAME
    assert [c.name for c in group.commands] == list(DECLARED)
    for sub in group.commands:
        declared = DECLARED[sub.name]
        assert sub.description == description(declared) and len(sub.description) <= 100
        assert sub.description.endswith("(admins)") == declared.admin
        options = {p.name: p for p in sub.parameters}
        assert sorted(options) == sorted(a.name for a in declared.arguments), sub.name
        for arg in declared.arguments:
            option = options[arg.name]
            assert option.required == is_required(arg), (sub.name, arg.name)
            assert option.description == arg.help
            assert [c.value for c in option.choices] == list(arg.choices)
            wanted = (
                discord.AppCommandOptionType.attachment
                if arg.kind is FILE
                else discord.AppCommandOptionType.string
            )
            assert option.type == wanted
    assert {n for n, c in DECLARED.items() if c.private} == {"ask", "feedback"}


def test_removing_a_declaration_removes_it_everywhere_at_once() -> None:
    fewer = by_name([c for c in COMMANDS if c.name != "compare"])

    async def run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("not invoked here")

    assert "compare <level-a> <level-b> <question>" in help_list(DECLARED)
    assert "compare" not in help_list(fewer)
    assert "compare" not in [c.name for c in command_group(fewer, run).commands]
    assert ("compare <level-a> <level-b> <question>", "admins") in _readme_commands()
    assert _readme_commands() != [(c.usage, c.who_may) for c in fewer.values()]


def test_a_declaration_is_checked_when_it_is_made() -> None:
    @command(admin=True)
    @argument("first", "The first")
    @argument("rest", "What follows", optional=True, rest=True)
    async def cmd_example(ctx: object, first: str, rest: str | None) -> None:
        """An example.

        With details.
        """

    assert cmd_example.name == "example" and cmd_example.usage == "example <first> [<rest>]"
    assert (cmd_example.summary, cmd_example.details) == ("An example.", "With details.")
    with pytest.raises(ValueError, match="declared twice"):
        by_name([cmd_example, cmd_example])
