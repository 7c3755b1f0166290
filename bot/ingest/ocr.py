"""Text in images and in scanned PDF pages, read offline by OCR (English and Chinese).

The engine is RapidOCR 3 (``rapidocr``) on onnxruntime: its wheel carries the PP-OCRv6
small detection and recognition models, so nothing is downloaded at run time.  It was
chosen over ``rapidocr-onnxruntime`` 1.4 (PP-OCRv4) by measuring both on the corpus
(README, "Text in images (OCR)"): about five times faster on 2 cores and better at
spaces between English words.  PDF pages are rendered with pypdfium2.

Everything here is optional: without the ``ocr`` extra, :func:`available` is False
and the callers refuse images and scans with :data:`INSTALL_HINT`.  Like the rest of
extraction this runs inside the sandbox worker (bot/ingest/sandbox.py); the engine
is loaded once per worker, on the first image.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
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
    """The text in ``image``: one line per line of text, boxes on a line joined by spaces."""
    result = _get_engine()(image.convert("RGB"))
    if result.boxes is None or not result.txts:
        return ""
    return _lines(result.boxes, result.txts)


def _lines(boxes: Any, texts: tuple[str, ...]) -> str:
    """Join recognised boxes into lines of text.

    RapidOCR returns boxes top to bottom; a box whose vertical middle lies inside the
    previous box's height continues that line (two columns, a label and its value).
    """
    lines: list[list[str]] = []
    previous: tuple[float, float] | None = None
    for box, text in zip(boxes, texts, strict=False):
        text = text.strip()
        if not text:
            continue
        ys = [float(point[1]) for point in box]
        top, bottom = min(ys), max(ys)
        middle = (top + bottom) / 2
        if previous is not None and previous[0] <= middle <= previous[1] and lines:
            lines[-1].append(text)
        else:
            lines.append([text])
        previous = (top, bottom)
    return "\n".join(" ".join(parts) for parts in lines)


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
