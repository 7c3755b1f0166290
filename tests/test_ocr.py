"""Text in images and scanned PDF pages, read by OCR inside the sandbox (real files, real engine).

The files are real: the scanned PDFs of ../shared/corpus/pdfs and the images of
../shared/corpus/office (SOURCES.txt there says where each comes from).  OCR takes a
few seconds a page on 2 cores, so these tests read a few small pages, not the whole
corpus; ``tools/bench_ocr.py`` measures all of it.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import converse

from bot.app import App
from bot.ingest.extract import extract
from bot.ingest.filetypes import ExtractionRefused, FileKind, detect_kind
from bot.ingest.ocr import INSTALL_HINT, available
from bot.ingest.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not available(), reason="the OCR extra is not installed (pip install -e '.[ocr]')"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def office(corpus_dir: Path) -> Path:
    return corpus_dir / "office"


def _huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` white pixels: tiny on disk, huge decoded."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row * 100) for _ in range(height // 100))
    body += packer.compress(row * (height % 100)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def _mixed_pdf(corpus_dir: Path) -> bytes:
    """Page 1: a born-digital page with a text layer; page 2: a scan without one."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for name in ("pypdf-samples_002_libreoffice-writer.pdf", "ocrmypdf_c02-22.pdf"):
        writer.add_page(PdfReader(corpus_dir / "pdfs" / name).pages[0])
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- through the bot ------------------------------------------------------------------


async def test_scans_and_images_become_searchable(settings, corpus_dir: Path, office: Path) -> None:
    """A scanned PDF, an English image and a Chinese image are shared; questions whose
    answers are only in their pixels cite them."""
    app = App.build(settings)
    app.start_background()
    try:
        scan = corpus_dir / "pdfs" / "ocrmypdf_linn.pdf"
        english = office / "unstructured_DA-1p.png"
        chinese = office / "unstructured_chi_sim_image.jpeg"
        out = await converse(
            app, [f"/librarian upload {path}" for path in (scan, english, chinese)]
        )
        text = out.getvalue()
        for name in (scan.name, english.name, chinese.name):
            assert f"Indexed {name}: 1 page" in text, text

        out = await converse(
            app, ["@librarian How many tracks does the LinnSequencer MIDI sequence recorder have?"]
        )
        assert f"[1] {scan.name}, p. 1" in out.getvalue(), out.getvalue()

        out = await converse(app, ["@librarian Who stood atop the spire of the village chantry?"])
        assert f"[1] {english.name}" in out.getvalue(), out.getvalue()

        out = await converse(app, ["@librarian 甘草黄酮有什么作用？"])
        assert f"[1] {chinese.name}" in out.getvalue(), out.getvalue()
    finally:
        await app.close()


# --- extraction in the sandbox --------------------------------------------------------


def test_images_are_detected_by_their_bytes(office: Path) -> None:
    png = (office / "unstructured_DA-1p.png").read_bytes()
    assert detect_kind(png, "notes.txt") is FileKind.PNG  # the bytes win over the name
    assert detect_kind((office / "tika_testTIFF_multipage.tif").read_bytes(), None) is FileKind.TIFF
    assert detect_kind(b"BM is how this text file starts.\n", "bm.txt") is FileKind.TEXT


def test_a_multipage_tiff_gives_one_page_per_frame(sandbox: Sandbox, office: Path) -> None:
    path = office / "tika_testTIFF_multipage.tif"
    result = sandbox.extract(path.read_bytes(), path.name)
    assert result.media_type == "image/tiff"
    assert result.page_count == 2 and result.ocr_pages == [1, 2]
    assert "Example" in result.pages[0].text and "Page 1" in result.pages[0].text
    assert "Page 2" in result.pages[1].text


def test_a_mixed_pdf_has_only_its_textless_pages_read_by_ocr(
    sandbox: Sandbox, corpus_dir: Path
) -> None:
    data = _mixed_pdf(corpus_dir)
    result = sandbox.extract(data, "mixed.pdf")
    assert result.page_count == 2
    assert [p.number for p in result.pages] == [1, 2]
    assert result.ocr_pages == [2]
    # Page 1 is the text layer itself, untouched by OCR.
    from pypdf import PdfReader

    layer = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert result.pages[0].text.split() == layer.split()
    assert "tip-toeing along a path" in result.pages[1].text
    assert "widow's garden" in result.pages[1].text


def test_two_columns_are_read_one_after_the_other(sandbox: Sandbox, corpus_dir: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()  # page 5 of the scans: a two-column book page, no text layer
    writer.add_page(PdfReader(corpus_dir / "pdfs" / "ocrmypdf_multipage.pdf").pages[4])
    buffer = io.BytesIO()
    writer.write(buffer)
    result = sandbox.extract(buffer.getvalue(), "two-columns.pdf")
    assert result.ocr_pages == [1]
    text = " ".join(result.text.split())
    # Each column's sentences stay whole, not interleaved line by line with the other's.
    assert "on the throne of England; there were a king with a large jaw and a queen" in text
    assert "his tongue torn out with pincers, and his body burned alive, because" in text
    assert text.index("settled for ever") < text.index("hands cut off")


@pytest.mark.parametrize(
    ("width", "height", "said"),
    [
        (9000, 9000, "9000 x 9000 pixels (81 megapixels); the limit is 64 megapixels"),
        (20000, 20000, "more than 64 megapixels"),  # past Pillow's own bomb guard (2x)
    ],
)
def test_a_huge_image_is_refused_and_the_worker_lives_on(
    sandbox: Sandbox, office: Path, width: int, height: int, said: str
) -> None:
    sandbox.warm()
    pids = sandbox.worker_pids()
    bomb = _huge_png(width, height)
    assert len(bomb) < 1_000_000  # small on disk; gigabytes once decoded
    with pytest.raises(ExtractionRefused) as caught:
        sandbox.extract(bomb, "poster.png")
    assert caught.value.reason_code == "too_large"
    assert said in caught.value.message and "poster.png" in caught.value.message
    assert sandbox.worker_pids() == pids  # refused before decoding: the worker lives on
    small = office / "tika_testTIFF_multipage.tif"
    assert "Page 1" in sandbox.extract(small.read_bytes(), small.name).text


def test_without_the_extra_the_refusal_says_how_to_enable_it(
    office: Path, corpus_dir: Path
) -> None:
    """Run extraction where the engine cannot be imported, as on an install without it."""
    script = f"""
import sys
sys.modules["rapidocr"] = None  # hidden: find_spec and import both fail
from pathlib import Path
from bot.ingest.extract import extract
from bot.ingest.filetypes import ExtractionRefused
for path in ({str(office / "unstructured_DA-1p.png")!r},
             {str(corpus_dir / "pdfs" / "ocrmypdf_linn.pdf")!r}):
    try:
        extract(Path(path).read_bytes(), Path(path).name)
        print("extracted")
    except ExtractionRefused as exc:
        print(exc.reason_code, exc.message)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stderr
    image, scan = lines
    assert image.startswith("unsupported_type unstructured_DA-1p.png is an image.")
    assert scan.startswith("scanned ocrmypdf_linn.pdf looks scanned: its only page")
    for line in (image, scan):
        assert INSTALL_HINT in line and "pip install -e '.[ocr]'" in line


def test_a_damaged_image_is_refused_in_plain_words() -> None:
    png = _huge_png(100, 100)
    with pytest.raises(ExtractionRefused) as caught:
        extract(png[: len(png) // 2 - 20], "cut.png")
    assert caught.value.reason_code == "broken"
    assert caught.value.message.startswith("cut.png could not be read as an image")
