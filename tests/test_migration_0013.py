"""Migration 0013 (workspace names unique per team) on a database of 0012.

The database is made by the previous schema (upgrade to 0012 only) with the rows the
code of 0012 wrote for two teams, an orphan of unknown owner and a binding a deployment
admin made across teams.  After the upgrade to head nothing is lost, every channel
still reads its own workspace and documents, and a name one team uses no longer stops
another from having its own.  Down again, a name two teams use is renamed, not lost.
"""

from __future__ import annotations

import pytest
from old_schema import row_counts, write_channels_and_documents
from sqlalchemy import exc, text

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import open_database
from bot.store.repo import Store, WorkspaceDefaults

DEFAULTS = WorkspaceDefaults(200, 40, 4, 0.25)

# name -> (owner team, home channel or None) as the code of 0012 made them.
OLD_WORKSPACES = {
    "slack:TA/CA1": ("slack:TA", ("slack", "TA", "CA1")),
    "finance": ("slack:TA", None),  # team A's, shared by two of its channels
    "slack:TB/CB1": ("slack:TB", ("slack", "TB", "CB1")),
    "support": ("slack:TB", None),
    "matrix:!a:hs": ("matrix:!a:hs", ("matrix", "", "!a:hs")),
    "engineering": ("matrix:!a:hs", None),
    "leftover": (None, None),  # an orphan from before 0009: owner unknown
}
# (platform, space, channel, workspace name)
OLD_BINDINGS = [
    ("slack", "TA", "CA1", "slack:TA/CA1"),
    ("slack", "TA", "CA2", "finance"),
    ("slack", "TA", "CA3", "finance"),
    ("slack", "TB", "CB1", "slack:TB/CB1"),
    ("slack", "TB", "CB2", "support"),
    ("slack", "TB", "CB3", "finance"),  # crossed by a LIBRARIAN_ADMINS admin
    ("matrix", "", "!a:hs", "engineering"),
]


def _old_database(engine) -> dict[str, int]:
    """Rows as the code of 0012 wrote them; the workspace ids by name."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for name, (team, home) in OLD_WORKSPACES.items():
            hp, hs, hc = home or (None, None, None)
            ids[name] = conn.execute(
                text(
                    "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, "
                    "relevance_floor, owner_team, home_platform, home_space, home_channel) "
                    "VALUES (:n, 200, 40, 4, 0.25, :t, :hp, :hs, :hc) RETURNING id"
                ),
                {"n": name, "t": team, "hp": hp, "hs": hs, "hc": hc},
            ).scalar_one()
        write_channels_and_documents(conn, ids, OLD_BINDINGS)
    return ids


def _every_old_channel_reads_its_own(store: Store, ids: dict[str, int]) -> None:
    for platform, space, channel, name in OLD_BINDINGS:
        binding = store.binding_for(platform, space, channel, DEFAULTS)
        assert binding.workspace.id == ids[name], (channel, name)
        docs = store.list_documents(binding.workspace.id)
        assert [d.file_name for d in docs] == [f"doc of {name}.pdf"], (channel, name)
        assert store.message_count(binding.id) == 1


def test_a_database_of_0012_upgrades_with_nothing_lost_and_names_become_per_team(
    librarian_env: dict[str, str],
) -> None:
    db = open_database(load_settings())
    try:
        migrate.upgrade(db, "0012")
        ids = _old_database(db.engine)
        before = row_counts(db.engine)
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision()
        assert row_counts(db.engine) == before
        store = Store(db)
        _every_old_channel_reads_its_own(store, ids)

        # Team B may now have a "finance" of its own; team A's channels keep theirs, and
        # a new channel of team A finds team A's by its name.
        binding, created = store.bind("slack", "TB", "CB4", "finance", DEFAULTS)
        assert created and binding.workspace.id != ids["finance"]
        assert binding.workspace.owner_team == "slack:TB"
        assert store.list_documents(binding.workspace.id) == []
        binding, created = store.bind("slack", "TA", "CA4", "finance", DEFAULTS)
        assert not created and binding.workspace.id == ids["finance"]
        # The channel a deployment admin crossed still reads team A's, until moved.
        cross = store.binding_for("slack", "TB", "CB3", DEFAULTS)
        assert cross.workspace.id == ids["finance"]
        # The orphan of unknown owner is nobody's to find by name.
        binding, created = store.bind("slack", "TA", "CA5", "leftover", DEFAULTS)
        assert created and binding.workspace.id != ids["leftover"]
        # Within one team (and among workspaces of unknown owner) a name is still one.
        for team in ("slack:TA", None):
            with pytest.raises(exc.IntegrityError), db.engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, "
                        "relevance_floor, owner_team) VALUES (:n, 200, 40, 4, 0.25, :t)"
                    ),
                    {"n": "finance" if team else "leftover", "t": team},
                )

        # Down to 0012: the name two teams use is renamed (the newer workspace), so
        # nothing is lost and every channel still reads what it read.
        after = row_counts(db.engine)
        migrate.downgrade(db, "0012")
        assert row_counts(db.engine) == after
        with db.engine.connect() as conn:
            names = dict(
                conn.execute(
                    text("SELECT name, owner_team FROM workspaces WHERE name LIKE 'finance%'")
                ).all()
            )
        renamed = store.binding_for("slack", "TB", "CB4", DEFAULTS).workspace
        assert renamed.name == f"finance~{renamed.id}"
        assert names == {"finance": "slack:TA", renamed.name: "slack:TB"}
        _every_old_channel_reads_its_own(store, ids)
        migrate.upgrade(db)
        _every_old_channel_reads_its_own(store, ids)
    finally:
        db.close()
