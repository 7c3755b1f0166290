"""Rows written the way an older schema's code wrote them, for the migration tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

# The tables whose rows an upgrade must keep, counted before and after.
KEPT_TABLES = ("workspaces", "channel_bindings", "documents", "messages")


def write_channels_and_documents(
    conn: Any, ids: dict[str, int], bindings: list[tuple[str, str, str, str]]
) -> None:
    """Bindings ``(platform, space, channel, workspace name)`` with one stored message
    each, and one ready document per workspace (``doc of <name>.pdf``), in columns every
    schema since 0001 has."""
    for platform, space, channel, name in bindings:
        binding = conn.execute(
            text(
                "INSERT INTO channel_bindings (platform, space_id, channel_id, workspace_id) "
                "VALUES (:p, :s, :c, :w) RETURNING id"
            ),
            {"p": platform, "s": space, "c": channel, "w": ids[name]},
        ).scalar_one()
        conn.execute(
            text("INSERT INTO messages (binding_id, role, text) VALUES (:b, 'user', 'hello')"),
            {"b": binding},
        )
    for name, ws in ids.items():
        conn.execute(
            text(
                "INSERT INTO documents (workspace_id, file_name, media_type, sha256, "
                "size_bytes, status) VALUES (:w, :f, 'application/pdf', :h, 10, 'ready')"
            ),
            {"w": ws, "f": f"doc of {name}.pdf", "h": f"{ws:064x}"},
        )


def row_counts(engine: Any) -> tuple[int, ...]:
    """The row count of each of KEPT_TABLES."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in KEPT_TABLES
        )
