"""Hostile files of every family are refused within the sandbox's limits; nothing stalls.

The files are built by tests/hostile_files.py.  Until the extractors of the new
families are merged, most are refused as unsupported types; afterwards they reach
the extractors, and these same tests hold them to the sandbox's limits (time, memory,
the document limits) and to the archive checks of bot/ingest/archive.py.  Either way:
refused, quickly, and the worker alive for the next file.
"""

from __future__ import annotations

import io
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import hostile_files
import pytest

from bot.app import App
from bot.config import Settings
from bot.events import ConversationRef
from bot.ingest.archive import check_xml, checked_copy, open_archive
from bot.ingest.filetypes import ExtractionRefused
from bot.ingest.limits import ArchiveLimits, IngestLimits
from bot.ingest.sandbox import Sandbox

TIMEOUT_S = 20
MEMORY_MB = 512
OFFICE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "office"
ZIPPED = (".docx", ".pptx", ".xlsx", ".odt", ".ods", ".odp", ".epub")


@pytest.fixture(scope="module")
def hostile() -> list[tuple[str, bytes]]:
    return hostile_files.every_family()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        box.warm()
        yield box


def limits() -> IngestLimits:
    return IngestLimits.from_settings(Settings())


# -- the shared archive checks the format extractors call ----------------------------------


def test_zip_bombs_are_refused_from_their_directory_before_inflating() -> None:
    for name, data in hostile_files.zip_bombs():
        started = time.monotonic()
        with pytest.raises(ExtractionRefused) as refused:
            open_archive(data, name)
        assert refused.value.reason_code == "over_limit"
        assert f"{name} was not read: its part" in refused.value.message
        assert "compressed" in refused.value.message or "inflate" in refused.value.message
        assert time.monotonic() - started < 1  # nothing was inflated


def test_a_member_that_lies_about_its_size_is_stopped_while_it_inflates() -> None:
    name, data = hostile_files.zip_bombs(inflated_mb=40)[0]
    tight = ArchiveLimits(max_member_bytes=8 * 2**20, max_total_bytes=8 * 2**20, max_ratio=1e9)
    # The directory is checked first: with honest sizes the bomb is refused there ...
    with pytest.raises(ExtractionRefused, match="would inflate to 40 MB"):
        open_archive(data, name, tight)
    # ... and one whose directory understates the size is refused as it is read: zipfile
    # stops at the declared size and the checksum fails, so no lie inflates past it.
    real = zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml").file_size
    lying = data
    for width in (8, 4):  # the zip64 extra field, and the central directory
        lying = lying.replace(real.to_bytes(width, "little"), (1000).to_bytes(width, "little"))
    assert lying != data
    archive = open_archive(lying, name, ArchiveLimits(max_member_bytes=8 * 2**20))
    with archive, pytest.raises(ExtractionRefused) as refused:
        archive.read("word/document.xml")
    assert refused.value.reason_code in ("broken", "over_limit"), refused.value.message


def test_billion_laughs_are_refused_before_any_parser_sees_them() -> None:
    parts = {".docx": "word/document.xml", ".odt": "content.xml", ".epub": "OEBPS/chapter.xhtml"}
    for name, data in hostile_files.billion_laughs():
        archive = open_archive(data, name)
        with archive, pytest.raises(ExtractionRefused) as refused:
            archive.read(parts[Path(name).suffix])
        assert "declares entities" in refused.value.message and name in refused.value.message
    check_xml(b'<?xml version="1.0"?><a>&amp; &lt;ok&gt;</a>', "fine.xml")  # no declarations


@pytest.mark.skipif(
    not OFFICE.is_dir(), reason="the shared office corpus is not beside this checkout"
)
def test_every_real_office_file_and_e_book_passes_the_archive_checks() -> None:
    files = sorted(p for p in OFFICE.iterdir() if p.suffix in ZIPPED)
    assert len(files) >= 10
    for path in files:
        with open_archive(path.read_bytes(), path.name) as archive:
            for member in archive.names():
                if not member.endswith("/"):
                    archive.read(member)


@pytest.mark.skipif(
    not OFFICE.is_dir(), reason="the shared office corpus is not beside this checkout"
)
def test_a_parser_is_handed_every_part_inflated_once_by_the_checks() -> None:
    path = OFFICE / "docling_word_sample.docx"
    data = path.read_bytes()
    copy = zipfile.ZipFile(checked_copy(data, path.name))
    original = zipfile.ZipFile(io.BytesIO(data))
    files = [n for n in original.namelist() if not n.endswith("/")]
    assert copy.namelist() == files
    # Stored, so python-docx reads each part without inflating it a second time.
    assert {info.compress_type for info in copy.infolist()} == {zipfile.ZIP_STORED}
    assert all(copy.read(n) == original.read(n) for n in files)
    for name, bomb in hostile_files.billion_laughs():  # the copy is made by the checks
        with pytest.raises(ExtractionRefused, match="declares entities"):
            checked_copy(bomb, name)


# -- in the sandbox, and in the ingest worker --------------------------------------------


def test_every_hostile_family_is_refused_in_time_and_the_sandbox_goes_on(
    sandbox: Sandbox, hostile: list[tuple[str, bytes]]
) -> None:
    outcomes = {}
    for name, data in hostile:
        started = time.monotonic()
        with pytest.raises(ExtractionRefused) as refused:
            sandbox.extract(
                data, name, timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, max_mb=50, limits=limits()
            )
        elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT_S + 10, (name, elapsed)
        assert name in refused.value.message
        outcomes[name] = str(refused.value.reason_code)
        after = sandbox.extract(b"Still reading.\n", "after.txt", limits=limits())
        assert after.pages[0].text == "Still reading."
    print(outcomes, file=sys.stderr)


async def test_the_ingest_worker_refuses_every_hostile_family_and_keeps_indexing(
    settings, hostile: list[tuple[str, bytes]]
) -> None:
    app = App.build(settings)
    app.ingest.parse_timeout_s = TIMEOUT_S
    app.ingest.parse_memory_mb = MEMORY_MB
    app.start_background()
    try:
        ws = (await app.dispatcher.binding(ConversationRef("console", "", "general"))).workspace
        queued = []
        started = time.monotonic()
        for name, data in hostile:
            try:
                queued.append(await app.ingest.submit(ws, data, name, uploader="mallory"))
            except ExtractionRefused as refused:  # refused at once, before the queue
                assert name in refused.message
        good = await app.ingest.submit(ws, b"The lift is serviced on Mondays.\n", "lift.txt")
        for sub in queued:
            done = await app.ingest.wait(sub.document.id, timeout=TIMEOUT_S + 30)
            assert done.status == "failed" and done.error, done
        assert (await app.ingest.wait(good.document.id, timeout=60)).status == "ready"
        assert time.monotonic() - started < len(hostile) * (TIMEOUT_S + 5)
    finally:
        await app.close()
