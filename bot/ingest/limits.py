"""How much one document, and one workspace, may hold.

The bounds and defaults are declared once, in :class:`bot.config.Settings`
(``LIBRARIAN_MAX_DOCUMENT_PAGES`` and its neighbours); this module carries them to the
places that enforce them and words the refusals.  Every check raises an
:class:`ExtractionRefused` with code ``over_limit`` whose message names the file, what
it holds, the limit and the setting that raises it.  Nothing already stored is touched
by a refusal: the document is refused before any of its chunks are written.

Pages and characters are checked inside the sandbox's child process, right after any
extractor returns, so an oversized result never crosses the pipe; chunks are counted
by the worker after chunking, before anything is embedded.

The bounds on a ZIP-based document's archive (:class:`ArchiveLimits`, enforced by
:mod:`bot.ingest.archive`) are declared here too, as constants rather than settings:
no real document comes near them, so there is nothing for an operator to tune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.ingest.filetypes import ExtractionRefused, RefusalCode, display_name

__all__ = ["ArchiveLimits", "IngestLimits"]

_MB = 1024 * 1024

# The child's reply is ASCII JSON: a character may take up to 12 bytes ("\\ud83d\\ude00"),
# and each page carries its number and brackets.
_BYTES_PER_CHAR = 12
_BYTES_PER_PAGE = 32
_REPLY_OVERHEAD = 1 << 20


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Bounds on a document's ZIP archive; the defaults fit any real office file or e-book.

    The largest files of ../shared/corpus/office inflate to a few MB; a 50 MB upload
    of well-compressed XML (ratio ~20) would be ~1 GB, more than the sandbox's memory
    limit lets any parser build a tree of anyway.
    """

    max_members: int = 10_000
    max_member_bytes: int = 256 * _MB
    max_total_bytes: int = 512 * _MB
    # A real document's XML compresses 5-20 times; a bomb of repeated bytes 1000 times
    # or more.  Ratios are only judged on members large enough to matter.
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * _MB


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """The per-document and per-workspace limits in force (see Settings for defaults)."""

    max_pages: int
    max_chars: int
    max_chunks: int
    max_workspace_chunks: int

    @classmethod
    def from_settings(cls, settings: Any) -> IngestLimits:
        """The limits of a :class:`bot.config.Settings`."""
        return cls(
            max_pages=settings.max_document_pages,
            max_chars=settings.max_document_chars,
            max_chunks=settings.max_document_chunks,
            max_workspace_chunks=settings.max_workspace_chunks,
        )

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready form (the sandbox sends it to its child with each file)."""
        return {
            "max_pages": self.max_pages,
            "max_chars": self.max_chars,
            "max_chunks": self.max_chunks,
            "max_workspace_chunks": self.max_workspace_chunks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestLimits:
        """The inverse of :meth:`to_dict`."""
        return cls(**{k: int(data[k]) for k in cls.__slots__})  # type: ignore[arg-type]

    @property
    def reply_cap_bytes(self) -> int:
        """The most bytes an extraction's reply may take on the pipe within these limits."""
        return self.max_chars * _BYTES_PER_CHAR + self.max_pages * _BYTES_PER_PAGE + _REPLY_OVERHEAD

    def check_extracted(self, page_count: int, chars: int, filename: str | None) -> None:
        """Refuse a document with more pages (or slides, sheets) or characters than allowed."""
        name = display_name(filename)
        if page_count > self.max_pages:
            raise _over(
                f"{name} has {page_count:,} pages; the limit is {self.max_pages:,} pages "
                "per document (LIBRARIAN_MAX_DOCUMENT_PAGES)."
            )
        if chars > self.max_chars:
            raise _over(
                f"{name} holds {chars:,} characters of text; the limit is "
                f"{self.max_chars:,} per document (LIBRARIAN_MAX_DOCUMENT_CHARS)."
            )

    def check_chunks(self, chunks: int, filename: str | None) -> None:
        """Refuse a document that would be cut into more chunks than allowed."""
        if chunks > self.max_chunks:
            raise _over(
                f"{display_name(filename)} would be {chunks:,} chunks; the limit is "
                f"{self.max_chunks:,} per document (LIBRARIAN_MAX_DOCUMENT_CHUNKS)."
            )

    def check_workspace(self, held: int, adding: int, filename: str | None) -> None:
        """Refuse a document that would take its workspace past its total of chunks."""
        if held + adding > self.max_workspace_chunks:
            raise _over(
                f"{display_name(filename)} would add {adding:,} chunks to a workspace "
                f"that holds {held:,}; the limit is {self.max_workspace_chunks:,} chunks "
                "per workspace (LIBRARIAN_MAX_WORKSPACE_CHUNKS). Forget documents it no "
                "longer needs, or ask an admin to raise the limit."
            )

    def reply_too_large(self, size: int, filename: str | None) -> ExtractionRefused:
        """The refusal for an extraction whose reply is over :attr:`reply_cap_bytes`."""
        return _over(
            f"{display_name(filename)}: the text read from it ({size / 2**20:,.0f} MB) is "
            f"over the {self.reply_cap_bytes / 2**20:,.0f} MB that "
            f"{self.max_chars:,} characters (LIBRARIAN_MAX_DOCUMENT_CHARS) can take."
        )


def _over(message: str) -> ExtractionRefused:
    return ExtractionRefused(RefusalCode.OVER_LIMIT, message)
