"""The extraction sandbox: limits, recovery, and the malformed-PDF corpus.

The corpus tests run every file of shared/corpus/bad-pdfs (about 290, ~5 s on 2
cores with pypdf 7) and a sample of shared/corpus/pdfs through a real worker process.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FIGURES, build_slow_pdf

from bot.ingest.extract import Extracted, ExtractionRefused
from bot.ingest.sandbox import Sandbox, SandboxError, extract_sandboxed, shutdown_default_sandbox

# Tight limits, as the brief for the corpus run asks: a file that needs more is hostile.
# 20 s was the bound for parsing alone; OCR came later, and one dense scanned page takes
# 14-23 s on its one onnxruntime thread on 2 cores (misc/ocrmypdf_jbig2_baddevicen.pdf:
# 82 lines, 18 s, nearly all of it in the recognition model), so the bound is parsing
# plus one such page.  The bot's own default is 60 s (sandbox.DEFAULT_TIMEOUT_S).
CORPUS_TIMEOUT_S = 40
CORPUS_MEMORY_MB = 512


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Sandbox]:
    """One warm worker for the corpus tests (start-up paid once)."""
    with Sandbox() as box:
        box.warm()
        yield box


@pytest.fixture(scope="module")
def small_pdf(make_pdf: Callable[..., bytes]) -> bytes:
    return make_pdf(["Hello from page one.", "And page two."])


def _assert_small_pdf(result: Extracted) -> None:
    assert [p.number for p in result.pages] == [1, 2]
    assert "page two" in result.pages[1].text


# --- the basic path ----------------------------------------------------------------------


def test_extracts_in_a_reused_worker(sandbox: Sandbox, small_pdf: bytes) -> None:
    _assert_small_pdf(sandbox.extract(small_pdf, "a.pdf"))
    pids = sandbox.worker_pids()
    assert len(pids) == 1 and pids[0] != os.getpid()
    text = sandbox.extract("Grüße\fSeite zwei".encode(), "b.txt", "text/plain")
    assert [p.text for p in text.pages] == ["Grüße", "Seite zwei"]
    assert sandbox.worker_pids() == pids  # same process served both
    assert sandbox.starts == 1


def test_refusals_come_back_with_their_codes(
    sandbox: Sandbox, make_pdf: Callable[..., bytes]
) -> None:
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(make_pdf([None, None]), "scan.pdf")
    assert caught.value.reason_code == "scanned"
    assert "no text layer on any of its 2 pages" in caught.value.message
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(b"GIF89a" + bytes(30), "cat.gif")
    assert caught.value.reason_code == "unsupported_type"
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(b"x" * 3000, "big.txt", max_mb=0.001)
    assert caught.value.reason_code == "too_large"
    assert sandbox.starts <= 1  # refusals do not cost a worker


def test_module_level_function(small_pdf: bytes) -> None:
    try:
        _assert_small_pdf(extract_sandboxed(small_pdf, "a.pdf", None, timeout_s=30))
    finally:
        shutdown_default_sandbox()


async def test_usable_from_asyncio_via_to_thread(small_pdf: bytes) -> None:
    with Sandbox(workers=2) as box:
        results = await asyncio.gather(
            *(asyncio.to_thread(box.extract, small_pdf, f"{i}.pdf") for i in range(4))
        )
    for result in results:
        _assert_small_pdf(result)


def test_threads_get_their_own_results(make_pdf: Callable[..., bytes]) -> None:
    files = {f"doc{i}.pdf": make_pdf([f"Marker number {i}."]) for i in range(6)}
    out: dict[str, str] = {}
    errors: list[BaseException] = []

    with Sandbox(workers=2) as box:

        def run(name: str) -> None:
            try:
                out[name] = box.extract(files[name], name).text
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(name,)) for name in files]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert box.starts <= 2
    assert not errors
    assert out == {f"doc{i}.pdf": f"Marker number {i}." for i in range(6)}


def test_per_file_overhead_is_small(sandbox: Sandbox) -> None:
    sandbox.warm()
    start = time.perf_counter()
    for i in range(50):
        sandbox.extract(b"tiny file %d" % i, "t.txt")
    per_file = (time.perf_counter() - start) / 50
    # Measured ~0.5 ms; a fresh interpreter per file would be ~250 ms.
    assert per_file < 0.05, f"{per_file * 1000:.1f} ms per file"


# --- limits and recovery -----------------------------------------------------------------


def test_timeout_kills_the_worker_and_the_next_file_works(
    sandbox: Sandbox, small_pdf: bytes
) -> None:
    slow = build_slow_pdf(content_mb=3)  # ~12 s of pypdf work in a 5 KB file
    sandbox.warm()
    first_pid = sandbox.worker_pids()[0]
    start = time.monotonic()
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(slow, "slow.pdf", timeout_s=1.0, memory_mb=1024)
    elapsed = time.monotonic() - start
    assert caught.value.reason_code == "timeout"
    assert caught.value.message == "slow.pdf: parsing took longer than 1 s and was stopped."
    assert elapsed < 4
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)  # killed, and reaped
    _assert_small_pdf(sandbox.extract(small_pdf, "after.pdf"))
    assert sandbox.worker_pids()[0] != first_pid


def test_memory_limit_stops_a_blow_up_and_the_next_file_works(
    sandbox: Sandbox, small_pdf: bytes
) -> None:
    hungry = build_slow_pdf(content_mb=3)  # needs ~150 MB; the worker itself ~40-60 MB
    start = time.monotonic()
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(hungry, "hungry.pdf", timeout_s=30, memory_mb=110)
    assert caught.value.reason_code == "memory"
    assert "more than 110 MB of memory" in caught.value.message
    assert time.monotonic() - start < 30
    _assert_small_pdf(sandbox.extract(small_pdf, "after.pdf"))
    assert sandbox.starts == 2  # a worker that hit the limit is replaced


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGSEGV, "crashed"), (signal.SIGKILL, "memory")])
def test_a_worker_that_dies_is_reported_and_replaced(
    sandbox: Sandbox, small_pdf: bytes, sig: signal.Signals, code: str
) -> None:
    """SIGSEGV stands for a parser crash; a SIGKILL we did not send for the OOM killer."""
    sandbox.warm()
    pid = sandbox.worker_pids()[0]
    killer = threading.Timer(0.5, os.kill, (pid, sig))
    killer.start()
    try:
        with pytest.raises(ExtractionRefused) as caught:
            sandbox.extract(build_slow_pdf(content_mb=3), "victim.pdf", timeout_s=30)
    finally:
        killer.cancel()
    assert caught.value.reason_code == code, caught.value.message
    if code == "crashed":
        assert "SIGSEGV" in caught.value.message
    _assert_small_pdf(sandbox.extract(small_pdf, "after.pdf"))


def test_worker_that_cannot_start_is_a_sandbox_error(tmp_path: Path) -> None:
    with Sandbox(python="/bin/false") as box, pytest.raises(SandboxError):
        box.extract(b"hello", "a.txt")
    with Sandbox(python=str(tmp_path / "no-such-python")) as box, pytest.raises(SandboxError):
        box.extract(b"hello", "a.txt")


def test_closed_sandbox_refuses_work(small_pdf: bytes) -> None:
    box = Sandbox()
    box.close()
    with pytest.raises(SandboxError):
        box.extract(small_pdf, "a.pdf")


# --- the shared corpus -------------------------------------------------------------------


def _bad_pdfs(corpus_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in (corpus_dir / "bad-pdfs").rglob("*")
        if p.is_file() and p.suffix.lower() == ".pdf"
    )


#: Per family of shared/corpus/bad-pdfs: the outcomes its files may have, and how many
#: of them at least must give text.  Measured on the whole corpus (291 files, 20 s and
#: 512 MB each): a parser change that loses text, or a new kind of refusal, shows here.
#: OCR may turn "scanned" into "extracted"; that only raises the counts.
FAMILIES: dict[str, tuple[frozenset[str], int]] = {
    "cabinet_of_horrors": (frozenset({"extracted", "scanned", "encrypted"}), 10),
    "govdocs1_error": (frozenset({"extracted"}), 14),
    "jhove_handbuilt": (frozenset({"extracted", "broken", "empty", "scanned"}), 53),
    "misc": (frozenset({"extracted", "scanned", "broken", "empty", "encrypted"}), 5),
    # bomb_giant: a decompression bomb, refused as broken, memory or timeout (below).
    "pdfjs": (frozenset({"extracted", "broken", "scanned", "memory", "timeout"}), 9),
    "qpdf_ossfuzz": (frozenset({"broken", "scanned", "extracted", "unsupported_type"}), 1),
    "qpdf_qtest": (frozenset({"broken", "extracted", "encrypted", "scanned"}), 51),
}


def test_every_malformed_pdf_extracts_or_is_refused(
    corpus_dir: Path, shared_sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    """Never another exception, never a hang: each file ends as its family's files may."""
    files = _bad_pdfs(corpus_dir)
    assert len(files) > 250
    outcomes: collections.Counter[str] = collections.Counter()
    by_family: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    slowest: list[tuple[float, str]] = []
    start = time.monotonic()
    for path in files:
        t0 = time.monotonic()
        family = path.relative_to(corpus_dir / "bad-pdfs").parts[0]
        try:
            result = shared_sandbox.extract(
                path.read_bytes(),
                path.name,
                None,
                timeout_s=CORPUS_TIMEOUT_S,
                memory_mb=CORPUS_MEMORY_MB,
            )
        except ExtractionRefused as exc:
            outcome = str(exc.reason_code)
            assert exc.message and "\n" not in exc.message
            assert path.name in exc.message or "the file" in exc.message
        else:
            outcome = "extracted"
            assert result.pages and result.page_count >= len(result.pages)
        outcomes[outcome] += 1
        by_family[family][outcome] += 1
        assert outcome in FAMILIES[family][0], f"{path.relative_to(corpus_dir)}: {outcome}"
        slowest.append((time.monotonic() - t0, str(path.relative_to(corpus_dir))))
    total = time.monotonic() - start
    record_property(
        FIGURES,
        f"bad-pdfs: {len(files)} files in {total:.1f} s; {dict(outcomes)}; "
        f"slowest {max(slowest)[0]:.2f} s of {CORPUS_TIMEOUT_S} ({max(slowest)[1]}); "
        f"workers started {shared_sandbox.starts}",
    )
    assert sorted(by_family) == sorted(FAMILIES)
    for family, (_, floor) in FAMILIES.items():
        assert by_family[family]["extracted"] >= floor, (family, dict(by_family[family]))
    assert outcomes["extracted"] >= sum(floor for _, floor in FAMILIES.values()) == 143


@pytest.mark.parametrize(
    ("relative", "codes"),
    [
        # Page-tree loops and trees deeper than pypdf allows.
        ("qpdf_qtest/pages-loop.pdf", {"broken", "extracted"}),
        ("jhove_handbuilt/T02-02_002_page-tree-kids-links-recursive.pdf", {"broken"}),
        ("qpdf_qtest/deep-pages.pdf", {"broken", "extracted"}),
        ("pdfjs/ContentStreamCycleType3insideType3.pdf", {"broken", "extracted"}),
        # Contents that are 1.16 GB JBIG2 images each: a decompression bomb.  pypdf either
        # lacks jbig2dec (broken) or stops at its output limit; both are refusals.
        ("pdfjs/bomb_giant.pdf", {"broken", "memory", "timeout"}),
        ("misc/pdfplumber_empty.pdf", {"empty"}),
        # A damaged JPEG named .pdf: the bytes make it an image, for OCR if installed.
        # libjpeg takes about 30 s to give up on its data stream: the time limit ends it.
        ("qpdf_ossfuzz/69977b.fuzz.pdf", {"broken", "timeout", "unsupported_type"}),
    ],
)
def test_hostile_corpus_files_are_contained(
    corpus_dir: Path,
    shared_sandbox: Sandbox,
    small_pdf: bytes,
    relative: str,
    codes: set[str],
) -> None:
    path = corpus_dir / "bad-pdfs" / relative
    start = time.monotonic()
    try:
        shared_sandbox.extract(path.read_bytes(), path.name, timeout_s=10, memory_mb=512)
        outcome = "extracted"
    except ExtractionRefused as exc:
        outcome = str(exc.reason_code)
    assert outcome in codes
    assert time.monotonic() - start < 12
    _assert_small_pdf(shared_sandbox.extract(small_pdf, "next.pdf"))


@pytest.mark.parametrize(
    ("name", "page_count", "text_pages", "needle"),
    [
        ("pypdf-samples_004_pdflatex-4-pages.pdf", 4, 4, None),
        ("pdfplumber_federal-register-2020-17221.pdf", 15, 15, "Federal Register"),  # 3 columns
        ("pypdf-samples_015_arabic-habibi-rotated.pdf", 4, 4, "habibi"),  # rotated, RTL
        ("pypdf_Seige_of_Vicksburg_Sample_OCR.pdf", 6, 6, "Vicksburg"),  # scan + OCR layer
    ],
)
def test_real_pdfs_through_the_sandbox(
    corpus_dir: Path,
    shared_sandbox: Sandbox,
    name: str,
    page_count: int,
    text_pages: int,
    needle: str | None,
) -> None:
    result = shared_sandbox.extract((corpus_dir / "pdfs" / name).read_bytes(), name, None)
    assert result.page_count == page_count
    assert len(result.pages) == text_pages
    assert all(p.text.strip() for p in result.pages)
    if needle:
        assert needle in result.text


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pypdf-samples_005_encrypted-openpassword.pdf", "encrypted"),
    ],
)
def test_real_pdfs_refused_through_the_sandbox(
    corpus_dir: Path, shared_sandbox: Sandbox, name: str, code: str
) -> None:
    with pytest.raises(ExtractionRefused) as caught:
        shared_sandbox.extract((corpus_dir / "pdfs" / name).read_bytes(), name, None)
    assert caught.value.reason_code == code


# --- document limits and the reply cap (issue 17) -------------------------------------------


def _limits(**overrides: int):
    from bot.ingest.limits import IngestLimits

    values = {"max_pages": 10, "max_chars": 1_000, "max_chunks": 100, "max_workspace_chunks": 1000}
    return IngestLimits(**{**values, **overrides})


def test_a_result_over_the_document_limits_never_leaves_the_worker(sandbox: Sandbox) -> None:
    with pytest.raises(ExtractionRefused) as pages:
        sandbox.extract(b"page\n\f" * 20, "pages.txt", limits=_limits())
    assert pages.value.reason_code == "over_limit"
    assert pages.value.message == (
        "pages.txt has 21 pages; the limit is 10 pages per document (LIBRARIAN_MAX_DOCUMENT_PAGES)."
    )
    with pytest.raises(ExtractionRefused) as chars:
        sandbox.extract(b"word " * 400, "words.txt", limits=_limits())
    assert "words.txt holds 1,999 characters of text; the limit is 1,000" in chars.value.message
    assert sandbox.extract(b"short\n", "ok.txt", limits=_limits()).pages[0].text == "short"
    assert sandbox.starts == 1  # a refusal by the limits costs no worker


def test_a_reply_longer_than_the_limits_allow_is_refused_unread(tmp_path: Path) -> None:
    """A worker subverted by a file announces a 1 TB reply and streams garbage: cut off."""
    child = tmp_path / "subverted-python"
    child.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "out = sys.stdout.buffer\n"
        'hello = json.dumps({"ready": True, "pid": os.getpid()}).encode()\n'
        'out.write(str(len(hello)).encode() + b"\\n" + hello); out.flush()\n'
        "header = json.loads(sys.stdin.buffer.readline())\n"
        'sys.stdin.buffer.read(header["size"])\n'
        'out.write(b"%d\\n" % 10**12); out.flush()\n'
        "while True:\n"
        '    out.write(b"x" * (1 << 20))\n'
    )
    child.chmod(0o755)
    with Sandbox(python=str(child)) as box:
        started = time.monotonic()
        with pytest.raises(ExtractionRefused) as refused:
            box.extract(b"hello\n", "notes.txt", timeout_s=30, limits=_limits())
        assert time.monotonic() - started < 5
        assert refused.value.reason_code == "over_limit"
        assert refused.value.message.startswith("notes.txt: the text read from it (953,674 MB)")
        assert "LIBRARIAN_MAX_DOCUMENT_CHARS" in refused.value.message
        assert box.worker_pids() == []  # the worker was killed, not read to the end
