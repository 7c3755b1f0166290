"""Librarian: the platform-neutral core of the knowledge bot."""

__version__ = "0.1.0"
