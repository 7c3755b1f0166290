"""How a reply is written: the evidence quoted verbatim, and the sources it cites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.knowledge.evidence import Quote
from bot.knowledge.prompt import places_label
from bot.knowledge.retrieval import Ranked
from bot.knowledge.texts import TEXTS
from bot.store.records import ChunkHit


@dataclass(frozen=True)
class Source:
    """A document an answer relied on."""

    document: str
    pages: str
    score: float
    document_id: int
    chunk_ids: tuple[int, ...]
    shared_in: str | None = None
    link: str | None = None


def merge_sources(hits: list[Ranked]) -> list[Source]:
    """One source per document, pages (or slides, rows, sections) merged, in rank order."""
    by_doc: dict[int, dict[str, Any]] = {}
    for ranked in hits:
        hit = ranked.hit
        entry = by_doc.setdefault(
            hit.document_id,
            {"hit": hit, "pages": set(), "places": [], "score": ranked.score, "chunks": []},
        )
        entry["chunks"].append(hit.chunk_id)
        if hit.location is not None:
            entry["places"].append(hit.location)
        elif hit.page_start is not None:
            entry["pages"].update(range(hit.page_start, (hit.page_end or hit.page_start) + 1))
    sources = []
    for doc_id, entry in by_doc.items():
        hit: ChunkHit = entry["hit"]
        label = places_label(entry["places"], entry["pages"])
        sources.append(
            Source(
                document=hit.file_name,
                pages=label,
                score=round(entry["score"], 4),
                document_id=doc_id,
                chunk_ids=tuple(entry["chunks"]),
                shared_in=hit.source_channel,
                link=hit.source_url,
            )
        )
    return sources


def format_quotes(quotes: list[Quote], heading: str) -> str:
    """The evidence sentences, verbatim, each with its file and page."""
    lines = [heading]
    for q in quotes:
        place = q.where
        where = q.hit.file_name + (f", {place}" if place else "")
        lines.append(f'> "{q.text}" ({where})')
    return "\n".join(lines)


def format_citations(sources: list[Source], texts: dict[str, str] | None = None) -> str:
    """'Sources:' and one line per document: name, pages, where it was shared (in the
    language of ``texts``, one of TEXTS; English by default)."""
    texts = texts or TEXTS["en"]
    lines = [texts["sources"]]
    for i, src in enumerate(sources, 1):
        line = f"[{i}] {src.document}"
        if src.pages:
            line += f", {src.pages}"
        if src.link:
            line += f" ({src.link})"
        elif src.shared_in:
            line += f" ({texts['shared_in'].format(where=src.shared_in)})"
        lines.append(line)
    return "\n".join(lines)
