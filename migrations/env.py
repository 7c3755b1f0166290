"""Alembic environment: runs migrations on the connection handed over by bot.store.migrate."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we never run alembic's own CLI
    raise RuntimeError("run migrations through `librarian db upgrade`")

context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
