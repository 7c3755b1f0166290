"""How a `/librarian` command is declared, parsed and described: once, for every platform.

A handler is declared with its arguments where it is written::

    @command(admin=True, private=False)
    @argument("state", "on or off", choices=("on", "off"), optional=True)
    async def cmd_autoindex(ctx, state): ...

The declaration gives its name (the handler's, without ``cmd_``), its arguments
(a type or choices, optional or not, or the rest of the line), who may run it,
whether its reply is private, and its help (the handler's docstring: the first
line is the summary, the rest the details).  From it come the usage line, the
one parser that turns typed text into the handler's arguments (or a usage error
in plain words), ``help``, Discord's application commands and the README check.
This module imports nothing of ours, so adapters and the fast tests use it
without a database or a model.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class UsageError(Exception):
    """A command was given wrong arguments; the message says how to use it."""


class Refused(Exception):
    """The author may not run the command; the message says why."""


ADMINS_ONLY = "only admins may do that"


class FileArgument:
    """The type of an argument that is a file: attached, or (on the console) a local path."""


FILE = FileArgument


@dataclass(frozen=True)
class Argument:
    """One argument of a command, as declared."""

    name: str  # the handler's keyword (a Python identifier; Discord's option name)
    help: str  # one line for Discord's option description and `help <command>`
    kind: type = str  # str, int, float or FILE
    choices: tuple[str, ...] = ()  # the values offered (usage line, Discord's choices)
    # Maps what was typed to one of the choices (or None); default: the choice itself,
    # case-insensitively.  For synonyms such as "yes" for "on" or 👍 for "good".
    normalize: Callable[[str], str | None] | None = None
    optional: bool = False
    rest: bool = False  # takes the rest of the line, spaces included
    with_previous: bool = False  # optional, but given whenever the previous one is
    label: str = ""  # how the usage line shows it, instead of <name> or a|b
    missing: str = ""  # the usage error when a required argument is not given
    invalid: str = ""  # the usage error for a value not among the choices ({value})

    def shown(self) -> str:
        """The argument in a usage line, without brackets: ``<name>``, ``on|off``."""
        if self.label:
            return self.label
        if self.choices:
            return "|".join(self.choices)
        return f"<{self.name.replace('_', '-')}>"

    def convert(self, text: str) -> Any:
        """The typed text as the handler's value; UsageError if it is not one."""
        if self.choices:
            chosen = (
                self.normalize(text)
                if self.normalize is not None
                else next((c for c in self.choices if c.lower() == text.lower()), None)
            )
            if chosen is None:
                raise UsageError(
                    self.invalid.format(value=text)
                    if self.invalid
                    else f"'{text}' is not one of {', '.join(self.choices)}"
                )
            return chosen
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                raise UsageError(f"{self.name} must be a whole number, not '{text}'") from None
        if self.kind is float:
            try:
                return float(text)
            except ValueError:
                raise UsageError(f"{self.name} must be a number, not '{text}'") from None
        return text


Handler = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Command:
    """A command as declared: name, arguments, who may run it, its reply, its help."""

    name: str
    handler: Handler
    arguments: tuple[Argument, ...] = ()
    admin: bool = False
    private: bool = False  # its replies are ephemeral where the platform has them
    who: str = ""  # who may run it, when more is said than "everyone" or "admins"
    too_many: str = ""  # the usage error for extra words
    # Other words for it a user may type ("documents" for docs): the unknown-command
    # reply points to this command, nothing runs (one name per command on every platform).
    synonyms: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        """The usage line after ``/librarian``: ``settings [<name> <value>]``."""
        parts = [self.name]
        args = list(self.arguments)
        while args:
            arg = args.pop(0)
            group = [arg.shown()]
            while args and args[0].with_previous:
                group.append(args.pop(0).shown())
            text = " ".join(group)
            parts.append(f"[{text}]" if arg.optional else text)
        return " ".join(parts)

    @property
    def summary(self) -> str:
        """The first line of the handler's docstring."""
        return _doc(self.handler)[0]

    @property
    def details(self) -> str:
        """The rest of the handler's docstring, as one paragraph."""
        return _doc(self.handler)[1]

    @property
    def who_may(self) -> str:
        """Who may run it, as `help` and the README say."""
        return self.who or ("admins" if self.admin else "everyone")

    def arguments_for(self, raw: str, *, by_admin: bool) -> dict[str, Any]:
        """The handler's keyword arguments for this author, or why not.

        Raises Refused when the command is for admins and the author is not one
        (before looking at the arguments), and UsageError for wrong arguments.
        """
        if self.admin and not by_admin:
            raise Refused(ADMINS_ONLY)
        return self.parse(raw)

    def parse(self, raw: str) -> dict[str, Any]:
        """The handler's keyword arguments from the text after the command's name.

        Words are split like a shell's (quotes group words); an argument that takes
        the rest of the line gets it as typed, unquoted when it is one quoted string.
        Raises UsageError saying what was wrong.
        """
        words = _words(raw)
        values: dict[str, Any] = {}
        given_previous = True
        for arg in self.arguments:
            if arg.rest:
                text = raw[words[0][1] :].strip() if words else ""
                if len(words) == 1 and words[0][2]:
                    text = words[0][0]  # one quoted string: its content
                words = []
            elif words:
                text = words.pop(0)[0]
            else:
                text = ""
            if not text:
                if arg.with_previous and given_previous:
                    raise UsageError(arg.missing or f"give {arg.shown()} too")
                if not arg.optional:
                    raise UsageError(arg.missing or f"give {arg.shown()}")
                values[arg.name] = None
                given_previous = False
                continue
            values[arg.name] = text if arg.kind is FILE else arg.convert(text)
            given_previous = True
        if words:
            if self.too_many:
                raise UsageError(self.too_many)
            if not self.arguments:
                raise UsageError(f"{self.name} takes no arguments")
            extra = " ".join(word for word, _, _ in words)
            raise UsageError(f"'{extra}' is more than {self.name} takes")
        return values


# A word: a quoted string (its quotes removed) or a run of non-space characters.
_WORD = re.compile(r'"([^"]*)"|\'([^\']*)\'|(\S+)')


def _words(raw: str) -> list[tuple[str, int, bool]]:
    """(word, where it starts in ``raw``, whether it was quoted) for each word."""
    found = []
    for match in _WORD.finditer(raw):
        quoted = match.group(3) is None
        word = match.group(1) if match.group(1) is not None else match.group(2)
        found.append((word if quoted else match.group(3), match.start(), quoted))
    return found


def words(raw: str) -> list[str]:
    """The words of a command's text, split like a shell's (quotes group words)."""
    return [word for word, _, _ in _words(raw)]


def _doc(handler: Handler) -> tuple[str, str]:
    doc = inspect.getdoc(handler) or ""
    first, _, rest = doc.partition("\n")
    return first.strip(), " ".join(rest.split())


def split_command(text: str) -> tuple[str, str]:
    """'upload "my file.pdf"' (prefix already removed) -> ("upload", '"my file.pdf"').

    An empty command is ``help``.
    """
    stripped = text.strip()
    if not stripped:
        return "help", ""
    name, _, rest = stripped.partition(" ")
    return name.lower(), rest.strip()


# -- help ----------------------------------------------------------------------------------


def help_list(commands: Mapping[str, Command]) -> str:
    """`/librarian help`: every command's usage and summary, everyone's first."""
    lines = ["Librarian commands (type /librarian <command>, or !librarian <command>):"]
    for admin in (False, True):
        if admin:
            lines.append("For admins:")
        for declared in commands.values():
            if declared.admin == admin:
                lines.append(f"  {declared.usage:<34} {_lower_first(declared.summary)}")
    lines.append("Ask a question by mentioning me: @librarian <question>")
    lines.append("/librarian help <command> explains one command.")
    return "\n".join(lines)


def help_for(declared: Command) -> str:
    """`/librarian help <command>`: its usage, who may run it, its summary and details."""
    who = "admins only" if declared.admin else declared.who_may
    text = f"/librarian {declared.usage} ({who})\n{declared.summary}"
    return f"{text}\n{declared.details}" if declared.details else text


def _lower_first(text: str) -> str:
    """A summary as one line of a list: "Index the attached file." -> "index the attached file"."""
    text = text.removesuffix(".")
    return text[:1].lower() + text[1:]


# -- declaring --------------------------------------------------------------------------


@dataclass
class _Pending:
    arguments: list[Argument] = field(default_factory=list)


def argument(name: str, help: str, **options: Any) -> Callable[[Handler], Handler]:
    """Declare an argument of the command below (arguments are listed top to bottom)."""

    def add(handler: Handler) -> Handler:
        pending: _Pending = handler.__dict__.setdefault("_librarian_arguments", _Pending())
        pending.arguments.insert(0, Argument(name, help, **options))
        return handler

    return add


def command(**options: Any) -> Callable[[Handler], Command]:
    """Declare a command: its handler below, ``admin``, ``private``, ``who``, ``too_many``,
    ``synonyms``."""

    def declare(handler: Handler) -> Command:
        pending: _Pending = handler.__dict__.get("_librarian_arguments", _Pending())
        name = options.pop("name", handler.__name__.removeprefix("cmd_"))
        return Command(name, handler, tuple(pending.arguments), **options)

    return declare


def suggest(commands: Mapping[str, Command], typed: str) -> str | None:
    """The command a user probably meant by an unknown name: one it is a synonym of
    ("documents" -> docs), else the closest name ("stauts" -> status); None if none."""
    typed = typed.lower()
    for declared in commands.values():
        if typed in declared.synonyms:
            return declared.name
    close = difflib.get_close_matches(typed, list(commands), n=1, cutoff=0.6)
    return close[0] if close else None


def by_name(commands: list[Command] | tuple[Command, ...]) -> Mapping[str, Command]:
    """The commands by name, refusing two declarations of one name."""
    found: dict[str, Command] = {}
    for declared in commands:
        if declared.name in found:
            raise ValueError(f"the command {declared.name!r} is declared twice")
        found[declared.name] = declared
    return found
