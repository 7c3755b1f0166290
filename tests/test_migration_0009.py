"""Migration 0009 (workspace owners, channels' own workspaces) on a database of 0007.

The database is made by the previous schema (upgrade to 0007 only) with the rows the
old code wrote; after the upgrade to head, nothing is lost and every channel still
reads its own documents.
"""

from __future__ import annotations

from old_schema import row_counts, write_channels_and_documents
from sqlalchemy import text

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import open_database
from bot.store.repo import Store, WorkspaceDefaults

DEFAULTS = WorkspaceDefaults(200, 40, 4, 0.25)

# (platform, space, channel, workspace name) as the old code bound them.
OLD_BINDINGS = [
    ("console", "", "general", "console:general"),  # its own workspace
    ("slack", "T1", "C1", "slack:T1/C1"),  # its own
    ("slack", "T1", "C2", "support"),  # a named workspace shared in team T1
    ("slack", "T1", "C3", "support"),
    ("matrix", "", "!room:localhost", "matrix:!room:localhost"),  # a room's own
    ("matrix", "", "!other:localhost", "engineering"),  # a room's named workspace
    # Squatting under the old code: guild G1's admin typed `workspace discord:G2/C2`.
    ("discord", "G1", "C9", "discord:G2/C2"),
]
OLD_ORPHANS = ["leftover", "slack:T1/C7"]  # no channel bound any more


def _old_database(engine) -> dict[str, int]:
    """Rows as the code of 0007 wrote them; the workspace ids by name."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        names = [b[3] for b in OLD_BINDINGS] + OLD_ORPHANS
        for name in dict.fromkeys(names):
            ids[name] = conn.execute(
                text(
                    "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, "
                    "relevance_floor) VALUES (:n, 200, 40, 4, 0.25) RETURNING id"
                ),
                {"n": name},
            ).scalar_one()
        conn.execute(
            text(
                "UPDATE workspaces SET chat_model = 'http://attacker.example:8080/v1' "
                "WHERE name = 'support'"
            )
        )
        write_channels_and_documents(conn, ids, OLD_BINDINGS)
    return ids


def test_an_old_database_upgrades_with_nothing_lost_and_every_channel_reading_its_own(
    librarian_env: dict[str, str],
) -> None:
    db = open_database(load_settings())
    try:
        migrate.upgrade(db, "0007")
        ids = _old_database(db.engine)
        before = row_counts(db.engine)
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision()
        assert row_counts(db.engine) == before
        store = Store(db)

        # Every old channel still reads the workspace it read, and its documents.
        for platform, space, channel, name in OLD_BINDINGS:
            binding = store.binding_for(platform, space, channel, DEFAULTS)
            assert binding.workspace.id == ids[name], (channel, name)
            docs = store.list_documents(binding.workspace.id)
            assert [d.file_name for d in docs] == [f"doc of {name}.pdf"]
            assert store.message_count(binding.id) == 1

        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT name, owner_team, home_platform, home_space, home_channel, "
                    "chat_model FROM workspaces"
                )
            ).all()
        ws = {r.name: r for r in rows}
        # Owners: the team of the own channel, else of the oldest binding, else unknown.
        assert ws["console:general"].owner_team == "console:"
        assert ws["slack:T1/C1"].owner_team == "slack:T1"
        assert ws["support"].owner_team == "slack:T1"
        assert ws["matrix:!room:localhost"].owner_team == "matrix:!room:localhost"
        assert ws["engineering"].owner_team == "matrix:!other:localhost"
        assert ws["discord:G2/C2"].owner_team == "discord:G1"  # the squatter's own team
        assert ws["leftover"].owner_team is None and ws["slack:T1/C7"].owner_team is None
        # Homes: only a workspace named after a channel bound to it... or named after a
        # channel that has a binding at all.
        assert (ws["slack:T1/C1"].home_space, ws["slack:T1/C1"].home_channel) == ("T1", "C1")
        assert ws["console:general"].home_channel == "general"
        assert ws["support"].home_channel is None and ws["leftover"].home_channel is None
        assert ws["discord:G2/C2"].home_channel is None  # G2/C2 never had a binding
        # A remote address typed in chat is gone; the workspace answers with the default.
        assert ws["support"].chat_model is None

        # The squatted name no longer captures the victim channel: it gets its own.
        victim = store.binding_for("discord", "G2", "C2", DEFAULTS)
        assert victim.workspace.id != ids["discord:G2/C2"]
        assert victim.workspace.owner_team == "discord:G2"
        assert store.list_documents(victim.workspace.id) == []
        # Orphans of unknown owner: no platform admin may take them (since 0013 a name
        # is looked up within the channel's team: slack:T9 gets a "leftover" of its own).
        for name in ("leftover", "support"):
            binding, created = store.bind("slack", "T9", "C1", name, DEFAULTS)
            assert created and binding.workspace.id != ids[name], name
            assert binding.workspace.owner_team == "slack:T9"
        binding, created = store.bind("slack", "T1", "C8", "support", DEFAULTS)
        assert binding.workspace.id == ids["support"] and not created

        # And back down to 0007, and up again: the old rows survive the round trip.
        migrate.downgrade(db, "0007")
        migrate.upgrade(db)
    finally:
        db.close()
