"""EPUB e-books: the chapters in reading order, each read as a web page.

ebooklib reads the package (OPF manifest, spine, table of contents); each chapter's
XHTML goes through :mod:`bot.ingest.formats.html`.  A chapter's location starts at its
title in the book's table of contents: "section Chapter III > Davos".
"""

from __future__ import annotations

import posixpath
import warnings
from typing import Any

from bot.ingest.archive import checked_copy
from bot.ingest.document import Extracted, clean_title, title_from_filename
from bot.ingest.filetypes import ExtractionRefused, FileKind
from bot.ingest.formats.common import Sections, broken, extracted, inline
from bot.ingest.formats.html import decode_html, read_html_into

__all__ = ["extract_epub"]


def _toc_titles(toc: Any, out: dict[str, str], depth: int = 0) -> None:
    """href (without #fragment) -> the first table-of-contents title that points at it."""
    if depth > 20:
        return
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, [children])
            section, children = entry
            _toc_titles([section], out, depth + 1)
            _toc_titles(children, out, depth + 1)
            continue
        href = (getattr(entry, "href", "") or "").split("#", 1)[0]
        title = inline(getattr(entry, "title", "") or "")
        if href and title:
            out.setdefault(posixpath.normpath(href), title)


def extract_epub(data: bytes, filename: str) -> Extracted:
    """Read an EPUB: chapters in spine order, sections by TOC title and headings."""
    what = "an EPUB e-book"
    stored = checked_copy(data, filename)
    from ebooklib import ITEM_DOCUMENT, epub

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib's FutureWarnings about its options
            book = epub.read_epub(stored, options={"ignore_ncx": False})
        titles: dict[str, str] = {}
        _toc_titles(book.toc, titles)
        sections = Sections()
        for idref, *_ in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ITEM_DOCUMENT:
                continue
            sections.chapter(titles.get(posixpath.normpath(item.get_name())))
            read_html_into(decode_html(item.get_content(), filename), sections)
        pages = sections.pages()
        meta = book.get_metadata("DC", "title")
        raw_title = meta[0][0] if meta else None
    except ExtractionRefused:
        raise
    except (MemoryError, SystemError):
        raise
    except Exception as exc:
        raise broken(filename, what, exc) from None
    title = clean_title(raw_title) or title_from_filename(filename)
    return extracted(pages, FileKind.EPUB, title, filename)
