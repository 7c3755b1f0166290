"""Text in images and in scanned PDF pages, read offline by OCR (English and Chinese).

The engine is RapidOCR 3 (``rapidocr``) on onnxruntime: its wheel carries the PP-OCRv6
small detection and recognition models, so nothing is downloaded at run time.  It was
chosen over ``rapidocr-onnxruntime`` 1.4 (PP-OCRv4) by measuring both on the corpus
with tools/bench_ocr.py (README, "Text in images (OCR)"): word recall 0.99 against
0.89 (PP-OCRv4 drops the spaces between words), and 2.7 against 3.5 CPU seconds per
page.  PDF pages are rendered with pypdfium2.

Everything here is optional: without the ``ocr`` extra, :func:`available` is False
and the callers refuse images and scans with :data:`INSTALL_HINT`.  Like the rest of
extraction this runs inside the sandbox worker (bot/ingest/sandbox.py); the engine
is loaded once per worker, on the first image.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

from bot.ingest.filetypes import ExtractionRefused, FileTooLarge, RefusalCode, display_name

if TYPE_CHECKING:  # Pillow comes with the extra; only the type is needed here
    from PIL.Image import Image

__all__ = [
    "INSTALL_HINT",
    "MAX_IMAGE_PIXELS",
    "OcrOptions",
    "available",
    "image_frames",
    "recognise",
    "render_pdf_pages",
]

INSTALL_HINT = (
    "Reading text in images and scans needs the OCR extra: "
    "install it with pip install -e '.[ocr]' (make install does it)."
)
# Refused before decoding: 64 megapixels is a 300-dpi A2 scan or a 48-MP phone photo
# with room to spare, and 192 MB once decoded as RGB.
MAX_IMAGE_PIXELS = 64_000_000
# What the recogniser sees: RapidOCR shrinks anything larger to 2000 px on the long
# side itself, so decoding or rendering more only costs memory and time.
MAX_SIDE = 2000
# PDF pages are rendered at this resolution unless that would exceed MAX_SIDE.
RENDER_DPI = 200
# Multi-page TIFFs and scanned PDFs: at most this many pages are read.
MAX_OCR_PAGES = 200
# One onnxruntime thread: the worker shares the cores with the bot, the embedder and
# Postgres, and onnxruntime's pool spins while it waits.  On this 2-core machine under
# load, 2 threads took twice the wall time of 1 (and 1.5x the CPU time).
OCR_THREADS = 1
# RapidOCR's text-direction classifier turns lines it believes upside down.  On the
# corpus it turned a correctly oriented page upside down (ocrmypdf_multipage.pdf p. 2:
# "9000x9000 pixels at 300 DPI" read as "Ddl 00 e sexid 0006x0006") and set nothing
# right; page rotation in PDFs is applied by PDFium before OCR.  Measured both ways by
# tools/bench_ocr.py (--angle-classifier).
USE_ANGLE_CLASSIFIER = False

_ENGINE_MODULES = ("rapidocr", "onnxruntime", "pypdfium2", "PIL")


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """How much OCR one file may cost.

    ``deadline`` (``time.monotonic()``): pages not started by then are skipped with a
    warning rather than letting the whole file time out.  ``before_engine`` is called
    once, before the engine is first used for this file: the sandbox raises its
    memory limit there (onnxruntime needs more than PDF parsing).
    """

    deadline: float | None = None
    before_engine: Callable[[], None] | None = None
    max_pages: int = MAX_OCR_PAGES

    def out_of_time(self) -> bool:
        """True once the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline


def available() -> bool:
    """Whether the OCR extra is installed (checked without importing it)."""
    return all(importlib.util.find_spec(name) is not None for name in _ENGINE_MODULES)


_engine: Any = None


def _get_engine() -> Any:
    """The RapidOCR engine, loaded on first use and kept for the worker's life."""
    global _engine
    if _engine is None:
        from rapidocr import RapidOCR

        _engine = RapidOCR(
            params={
                "Global.log_level": "critical",
                "Global.use_cls": USE_ANGLE_CLASSIFIER,
                "EngineConfig.onnxruntime.intra_op_num_threads": OCR_THREADS,
                "EngineConfig.onnxruntime.inter_op_num_threads": OCR_THREADS,
            }
        )
    return _engine


def recognise(image: Image) -> str:
    """The text in ``image`` in reading order: columns one after the other, one line
    per line of text, boxes on a line joined by spaces."""
    result = _get_engine()(image.convert("RGB"))
    if result.boxes is None or not result.txts:
        return ""
    return _reading_order(result.boxes, result.txts, image.width)


# A column gutter: a vertical strip in the middle 70% of the page that no box of
# column width crosses, at least this share of the page wide.
_MIN_GUTTER = 0.012
# Boxes wider than this share of the page are headings or full-width lines, not
# column text: they split the page into bands instead.
_FULL_WIDTH = 0.55


def _reading_order(boxes: Any, texts: Sequence[str], page_width: int) -> str:
    """Join recognised boxes into text, column by column (a one-level XY cut).

    RapidOCR returns boxes top to bottom across the whole width, which interleaves
    the lines of a two- or three-column page ("She sighed. She cause of her sadness").
    Here the page is cut into bands at full-width boxes (titles, headings), each band
    into columns at the gutters no box crosses, and each column is read top to bottom.
    """
    items = []
    for index, (box, text) in enumerate(zip(boxes, texts, strict=False)):
        text = text.strip()
        if text:
            xs = [float(point[0]) for point in box]
            ys = [float(point[1]) for point in box]
            items.append((min(xs), min(ys), max(xs), max(ys), text, index))
    width = float(page_width) or max((item[2] for item in items), default=1.0)
    bands: list[list[tuple[float, float, float, float, str, int]]] = [[]]
    for item in sorted(items, key=lambda it: it[1]):
        if item[2] - item[0] > _FULL_WIDTH * width:
            bands.append([item])
            bands.append([])
        else:
            bands[-1].append(item)
    parts = []
    for band in bands:
        for column in _columns(band, width):
            parts.append(_lines(column))
    return "\n".join(part for part in parts if part)


def _columns(band: list, width: float) -> list[list]:
    """Split a band's boxes at the vertical gutters that none of them crosses."""
    if len(band) < 4:
        return [band]
    covered = sorted((item[0], item[2]) for item in band)
    gutters: list[float] = []
    reach = covered[0][1]
    for start, end in covered[1:]:
        if start - reach >= _MIN_GUTTER * width and 0.15 * width < start < 0.85 * width:
            gutters.append((reach + start) / 2)
        reach = max(reach, end)
    if not gutters:
        return [band]
    columns: list[list] = [[] for _ in range(len(gutters) + 1)]
    for item in band:
        middle = (item[0] + item[2]) / 2
        columns[sum(middle > gutter for gutter in gutters)].append(item)
    return [column for column in columns if column]


def _lines(items: list) -> str:
    """Join boxes into lines, in RapidOCR's order (top to bottom, with its own care for
    boxes that sit side by side): a box whose vertical middle lies within the previous
    box's height continues its line (a label and its value)."""
    lines: list[list[tuple[float, str]]] = []
    previous: tuple[float, float] | None = None
    for left, top, _right, bottom, text, _index in sorted(items, key=lambda it: it[5]):
        middle = (top + bottom) / 2
        if previous is not None and previous[0] <= middle <= previous[1] and lines:
            lines[-1].append((left, text))
        else:
            lines.append([(left, text)])
            previous = (top, bottom)
    return "\n".join(" ".join(text for _, text in sorted(line)) for line in lines)


# --- images ---------------------------------------------------------------------------


def _too_large(filename: str, width: int, height: int) -> FileTooLarge:
    return FileTooLarge(
        f"{display_name(filename)} is an image of {width} x {height} pixels "
        f"({width * height / 1e6:.0f} megapixels); the limit is "
        f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels."
    )


def _broken_image(filename: str, exc: BaseException | None = None) -> ExtractionRefused:
    detail = f" ({' '.join(str(exc).split())[:100]})" if exc is not None and str(exc) else ""
    return ExtractionRefused(
        RefusalCode.BROKEN,
        f"{display_name(filename)} could not be read as an image: it is damaged or "
        f"truncated{detail}.",
    )


def image_frames(data: bytes, filename: str) -> Iterator[Image]:
    """Decode an image file's pages (frames), each at most :data:`MAX_SIDE` px.

    The pixel count of every frame is checked from its header before it is decoded;
    Pillow's own decompression-bomb guard is set to the same limit as a second line.

    Raises:
        FileTooLarge: a frame is over :data:`MAX_IMAGE_PIXELS`.
        ExtractionRefused: code ``broken`` when the bytes cannot be decoded.
    """
    from PIL import Image as PILImage

    PILImage.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # DecompressionBombError above 2x this
    try:
        image = PILImage.open(BytesIO(data))
    except PILImage.DecompressionBombError:
        raise _too_large_unknown(filename) from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL.UnidentifiedImageError is OSError
        raise _broken_image(filename, exc) from None
    frames = min(int(getattr(image, "n_frames", 1) or 1), MAX_OCR_PAGES)
    for index in range(frames):
        try:
            image.seek(index)
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _too_large(filename, width, height)
            # JPEG can decode straight to a smaller size, which saves most of the memory.
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))
            frame = image.convert("RGB")
        except ExtractionRefused:
            raise
        except PILImage.DecompressionBombError:
            raise _too_large_unknown(filename) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if index == 0:
                raise _broken_image(filename, exc) from None
            return  # a damaged later frame: keep what was read
        frame.thumbnail((MAX_SIDE, MAX_SIDE))
        yield frame


def _too_large_unknown(filename: str) -> FileTooLarge:
    return FileTooLarge(
        f"{display_name(filename)} is an image of more than "
        f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, the limit."
    )


# --- PDF pages ------------------------------------------------------------------------


def render_pdf_pages(data: bytes, numbers: list[int]) -> Iterator[tuple[int, Image | None]]:
    """Render the given 1-based pages of a PDF, each at most :data:`MAX_SIDE` px.

    Yields ``(number, image)``, or ``(number, None)`` for a page that holds no image:
    without a text layer and without an image it is blank or vector drawing, and OCR
    would only cost time (and, in the sandbox, a worker restart).  A page that PDFium
    cannot load or render is left out (the caller reports pages it did not get).
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    document = pdfium.PdfDocument(data)
    try:
        for number in numbers:
            try:
                page = document[number - 1]
            except pdfium.PdfiumError:
                continue
            try:
                images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])
                if next(images, None) is None:
                    yield number, None
                    continue
                width_pt, height_pt = page.get_size()
                longest = max(width_pt, height_pt, 1.0)
                scale = min(RENDER_DPI / 72, MAX_SIDE / longest)
                image = page.render(scale=scale).to_pil()
            except pdfium.PdfiumError:
                continue
            finally:
                page.close()
            yield number, image
    finally:
        document.close()
