"""Errors that are meant to be read by a person.

Each carries a plain one-line message; the CLI prints it without a traceback and
exits with ``exit_code``.  Anything else that escapes is a bug.
"""

from __future__ import annotations


class LibrarianError(Exception):
    """An error with a message fit for the user who caused it."""

    exit_code: int = 1


class ConfigError(LibrarianError):
    """A setting is invalid or the environment cannot satisfy it."""

    exit_code = 2
