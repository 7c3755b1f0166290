"""Adapters download exactly the kinds the extractor reads: one predicate, one declaration.

The Discord path is exercised end to end in test_discord.py
(test_every_kind_librarian_reads_is_downloaded_and_nothing_else); here the Matrix
translation of an ``m.file`` event, and the predicate itself.
"""

from __future__ import annotations

import pytest

from adapters.matrix import translate
from bot.ingest.filetypes import KINDS, detect_kind, may_download

UNSUPPORTED = [
    ("setup.exe", "application/x-msdownload"),
    ("backup.zip", "application/zip"),
    ("song.mp3", "audio/mpeg"),
]


def named_and_labelled() -> list[tuple[str, str | None]]:
    """Every way a supported file announces itself: by extension, or by media type only."""
    cases: list[tuple[str, str | None]] = []
    for kind, spec in KINDS.items():
        cases += [(f"file-{kind}{ext.upper()}", None) for ext in sorted(spec.extensions)]
        cases += [(f"file-{kind}", f"{media}; charset=utf-8") for media in sorted(spec.media_types)]
    return cases


def m_file(name: str, media_type: str | None) -> dict:
    info = {"mimetype": media_type, "size": 120} if media_type else {"size": 120}
    return {
        "type": "m.room.message",
        "event_id": "$e1",
        "sender": "@bob:localhost",
        "content": {"msgtype": "m.file", "body": name, "url": "mxc://localhost/abc", "info": info},
    }


@pytest.mark.parametrize(("name", "media_type"), named_and_labelled())
def test_every_supported_kind_is_downloaded_on_matrix(name: str, media_type: str | None) -> None:
    assert may_download(name, media_type)
    ref = translate.file_ref("!room:localhost", m_file(name, media_type))
    assert ref is not None and ref.name == name and ref.file_id == "mxc://localhost/abc"


@pytest.mark.parametrize(("name", "media_type"), UNSUPPORTED)
def test_an_unsupported_file_is_left_alone_on_matrix(name: str, media_type: str) -> None:
    assert not may_download(name, media_type)
    assert translate.file_ref("!room:localhost", m_file(name, media_type)) is None


def test_the_predicate_and_detection_agree_on_every_declared_extension() -> None:
    samples = {"pdf": b"%PDF-1.4\n%%EOF\n", "text": b"Notes.\n", "markdown": b"# Notes\n"}
    for kind, spec in KINDS.items():
        for ext in spec.extensions:
            if str(kind) in samples:  # kinds added later bring their own detection tests
                assert detect_kind(samples[str(kind)], f"n{ext}") is kind


def test_a_file_over_the_size_limit_is_not_downloaded() -> None:
    assert may_download("big.pdf", None, 3 * 2**20, max_mb=5)
    assert not may_download("big.pdf", None, 6 * 2**20, max_mb=5)
