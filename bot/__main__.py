"""`python -m bot` is the `librarian` command."""

from bot.cli import main

main()
