"""Ingestion that one file or one team cannot stall: limits, fair claims, bounded retries.

Real Postgres, the real sandbox and the real embedding model, through the console
adapter where a channel is told something, and through the ingest worker itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import converse, wait_until
from sqlalchemy import text

from bot.app import App
from bot.events import ConversationRef
from bot.store.records import Document


def note(team: str, i: int) -> bytes:
    """A small text file, different for every (team, i) so that none is a duplicate."""
    return (
        f"Meeting note {i} of team {team}. The {team} team agreed on item {i} of the plan "
        f"and will report on it in week {i % 52 + 1}.\n"
    ).encode()


async def workspace_of(app: App, channel: str):
    return (await app.dispatcher.binding(ConversationRef("console", "", channel))).workspace


async def test_a_team_with_50_queued_files_does_not_hold_back_another_teams_file(
    settings,
) -> None:
    app = App.build(settings)
    finished: list[Document] = []

    async def record(doc: Document) -> None:
        finished.append(doc)

    app.ingest.on_finished(record)
    try:
        busy = await workspace_of(app, "team-busy")
        quiet = await workspace_of(app, "team-quiet")
        for i in range(50):
            await app.ingest.submit(busy, note("busy", i), f"busy-{i:02d}.txt", uploader="alice")
        app.start_background()
        # The busy team's first file is being indexed (and its second read ahead) ...
        assert await wait_until(lambda: len(finished) >= 1, 60)
        # ... when the quiet team shares one file.
        single = await app.ingest.submit(quiet, note("quiet", 1), "quiet.txt", uploader="bob")
        done = await app.ingest.wait(single.document.id, timeout=60)
        assert done.status == "ready"
        # Which of the busy team's files were finished between the moment the quiet
        # team's file was queued and the moment it was ready (the database's clock)?
        with app.store.engine.connect() as conn:
            in_between = (
                conn.execute(
                    text(
                        "SELECT b.file_name FROM documents b, documents q WHERE q.id = :q "
                        "AND b.workspace_id = :busy AND b.status = 'ready' "
                        "AND b.updated_at > q.created_at AND b.updated_at < q.updated_at"
                    ),
                    {"q": single.document.id, "busy": busy.id},
                )
                .scalars()
                .all()
            )
        # At most the one document being indexed when it arrived.
        assert len(in_between) <= 1, in_between
        # And the busy team's files still all get indexed, in the order they were shared.
        assert await wait_until(lambda: len(finished) == 51, 120)
        busy_order = [d.file_name for d in finished if d.workspace_id == busy.id]
        assert busy_order == [f"busy-{i:02d}.txt" for i in range(50)]
        assert all(d.status == "ready" for d in finished)
    finally:
        await app.close()


async def test_two_busy_teams_take_turns(settings) -> None:
    app = App.build(settings)
    try:
        a = await workspace_of(app, "team-a")
        b = await workspace_of(app, "team-b")
        for i in range(4):
            await app.ingest.submit(a, note("a", i), f"a-{i}.txt", uploader="alice")
        for i in range(4):
            await app.ingest.submit(b, note("b", i), f"b-{i}.txt", uploader="bob")
        order: list[str] = []

        async def record(doc: Document) -> None:
            order.append(doc.file_name)

        app.ingest.on_finished(record)
        assert await app.ingest.drain() == 8
        assert order == ["a-0.txt", "b-0.txt", "a-1.txt", "b-1.txt"] + [
            "a-2.txt",
            "b-2.txt",
            "a-3.txt",
            "b-3.txt",
        ]
    finally:
        await app.close()


async def test_a_file_that_makes_preparation_fail_is_failed_after_its_attempts(
    settings, tmp_path: Path
) -> None:
    bad = tmp_path / "minutes.txt"
    bad.write_bytes(note("ops", 1))
    app = App.build(settings)
    finished: list[Document] = []

    async def record(doc: Document) -> None:
        finished.append(doc)

    app.ingest.on_finished(record)
    try:
        ops = await workspace_of(app, "general")
        # alice shares minutes.txt; the worker is not running yet.
        talking = asyncio.create_task(converse(app, [f"/librarian upload {bad}"]))
        assert await wait_until(lambda: len(app.store.list_documents(ops.id)) == 1, 30)
        doc = app.store.list_documents(ops.id)[0]
        # Its stored copy becomes unreadable (a disk fault: a directory where the file was),
        # which no refusal covers: reading it raises IsADirectoryError.
        stored = app.ingest.files.path_for(doc.sha256)
        stored.unlink()
        stored.mkdir()
        # Another file of the same team is queued behind it.
        later = await app.ingest.submit(ops, note("ops", 2), "agenda.txt", uploader="alice")
        app.start_background()
        out = await asyncio.wait_for(talking, 60)

        failed = app.store.get_document(doc.id)
        assert failed.status == "failed" and failed.attempts == settings.ingest_attempts
        assert "I can't index that: minutes.txt could not be prepared for indexing in 3" in (
            out.getvalue()
        )
        assert "IsADirectoryError" in out.getvalue()
        assert await wait_until(
            lambda: app.store.get_document(later.document.id).status == "ready", 30
        )
        # The file behind it did not wait for its three attempts.
        names = [d.file_name for d in finished]
        assert names.index("agenda.txt") < names.index("minutes.txt"), names
    finally:
        await app.close()


async def test_a_text_file_of_form_feeds_is_refused_by_the_page_limit(
    settings, tmp_path: Path
) -> None:
    # 120 KB: before the limits, 20,001 pages (the last one empty) and 20,000 chunks.
    flood = tmp_path / "flood.txt"
    flood.write_bytes(b"page\n\f" * 20_000)
    assert flood.stat().st_size == 120_000
    kept = tmp_path / "kept.txt"
    kept.write_bytes(note("general", 7))
    app = App.build(settings)
    app.start_background()
    try:
        out = await converse(app, [f"/librarian upload {kept}", f"/librarian upload {flood}"])
        text = out.getvalue()
        assert "Indexed kept.txt" in text
        assert (
            "I can't index that: flood.txt has 20,001 pages; the limit is 5,000 pages per "
            "document (LIBRARIAN_MAX_DOCUMENT_PAGES)." in text
        ), text
        general = await workspace_of(app, "general")
        docs = {d.file_name: d for d in app.store.list_documents(general.id)}
        assert docs["flood.txt"].status == "failed" and docs["flood.txt"].chunk_count == 0
        # Nothing stored was lost.
        assert docs["kept.txt"].status == "ready" and docs["kept.txt"].chunk_count == 1
    finally:
        await app.close()


async def test_chunk_and_workspace_limits_name_themselves(
    settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARIAN_MAX_DOCUMENT_CHUNKS", "3")
    monkeypatch.setenv("LIBRARIAN_MAX_WORKSPACE_CHUNKS", "5")
    from bot.config import load_settings

    small = load_settings()
    long = tmp_path / "long.md"
    long.write_text("\n\n".join(f"# Part {p}\n\n" + "word " * 300 for p in range(4)))
    app = App.build(small)
    app.start_background()
    try:
        names = []
        for i in range(3):
            path = tmp_path / f"short-{i}.txt"
            path.write_bytes(note("general", 100 + i) * 8)  # two chunks each
            names.append(path)
        out = await converse(app, [f"/librarian upload {p}" for p in [long, *names]])
        text = out.getvalue()
        assert "long.md would be" in text and (
            "the limit is 3 per document (LIBRARIAN_MAX_DOCUMENT_CHUNKS)" in text
        ), text
        assert "Indexed short-0.txt" in text and "Indexed short-1.txt" in text
        assert (
            "short-2.txt would add 2 chunks to a workspace that holds 4; the limit is 5 "
            "chunks per workspace (LIBRARIAN_MAX_WORKSPACE_CHUNKS)" in text
        ), text
        general = await workspace_of(app, "general")
        assert app.store.workspace_totals(general.id)["chunks"] == 4
    finally:
        await app.close()


def test_a_limit_out_of_its_bounds_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    monkeypatch.setenv("LIBRARIAN_MAX_DOCUMENT_PAGES", "0")
    with pytest.raises(ConfigError, match="LIBRARIAN_MAX_DOCUMENT_PAGES: Input should be greater"):
        load_settings()
