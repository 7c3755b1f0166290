"""How a reply is written: the evidence quoted verbatim, and the sources it cites; and
the reply as the answerer returns it (``Answer``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.knowledge.check import CITATION
from bot.knowledge.prompt import places_label
from bot.knowledge.quotes import Evidence, Quote
from bot.knowledge.quoting import quote_line
from bot.knowledge.retrieval import Ranked
from bot.knowledge.sentences import AFTER_HEADER, TABLE_ROW
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


@dataclass
class Answer:
    """The bot's reply to one question."""

    text: str  # the answer with its citations, as posted
    body: str  # the answer alone
    sources: list[Source]
    found: bool
    timings: dict[str, Any] = field(default_factory=dict)
    # The stored assistant turn (None when not remembered), e.g. to attach feedback to.
    message_id: int | None = None
    # The sentences quoted as evidence, and whether the model's own text was posted
    # ("passed") or replaced by them ("replaced_by_evidence"); None for "not found".
    evidence: list[Quote] = field(default_factory=list)
    checked: str | None = None
    unsupported: list[str] = field(default_factory=list)
    # The model's text as written, posted or not (for calibration and the log).
    draft: str | None = None
    # "greeting", "thanks", ...: a fixed reply to a message that asked nothing of the
    # documents (``bot.knowledge.smalltalk``); feedback never rates it.
    smalltalk: str | None = None
    hedged: bool = False  # the evidence alone, as the closest it comes (``reply.is_clear``)

    def meta(self) -> dict[str, Any]:
        """What is stored with the answer: the check, its own words when they were
        posted (``said``, what the model reads of it later), the evidence, the sources
        (and, for a fixed reply to smalltalk, its kind)."""
        meta = {
            "found": self.found,
            "checked": self.checked,
            "said": self.draft if self.checked == "passed" else None,
            "unsupported": self.unsupported,
            "evidence": [q.as_dict() for q in self.evidence],
            "sources": [{"document": s.document, "pages": s.pages} for s in self.sources],
        }
        if self.smalltalk is not None:
            meta["smalltalk"] = self.smalltalk
        return meta


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


# Why a citation marker fails the check: it names a passage the model was not given.
NO_SUCH_SOURCE = "[{number}] (no such source)"


def _cited_numbers(marker: str) -> list[int]:
    """The numbers a marker's inside names: "1, 3" -> [1, 3]; "2-4" -> [2, 3, 4]."""
    numbers: list[int] = []
    for part in re.split(r"\s*,\s*", marker):
        low, _, high = part.partition("-")
        first = int(low)
        last = int(high) if high else first
        numbers.extend(range(first, min(last, first + 50) + 1))
    return numbers


def renumber_citations(
    text: str, passages: Sequence[int], sources: Sequence[Source]
) -> tuple[str, list[str]]:
    """``text`` with the model's citation markers renumbered as the reply lists its
    sources, and the markers that name no passage the model was given.

    The model cites the passages of its prompt ("[3]": the third, ``passages`` holding
    each one's document id in order); the reply lists one source per document.  Seen by
    hand in session 17: "… is: [2] 606." under a reply whose only source was [1] (the
    slide was the prompt's second passage)."""
    position = {src.document_id: i for i, src in enumerate(sources, start=1)}
    unknown: list[str] = []

    def renumbered(m: re.Match[str]) -> str:
        listed: list[int] = []
        for n in _cited_numbers(m.group(1)):
            if not 1 <= n <= len(passages) or passages[n - 1] not in position:
                unknown.append(NO_SUCH_SOURCE.format(number=n))
                return m.group(0)
            listed.append(position[passages[n - 1]])
        return "[" + ", ".join(str(n) for n in sorted(set(listed))) + "]"

    return CITATION.sub(renumbered, text), unknown


# Quotes holding less of the question's weight than this, though enough to answer
# (``evidence_coverage``), are shown as the closest the documents come, not as what
# they say.  Chosen on the calibrate split (evidence only, both kinds of workspace:
# ``tools/calibrate_evidence.py --dump``), the round value at which most unanswerable
# questions that were answered fall under it and few answerable ones do: 21 of those
# 30 against 23 of 119 (17 of those 23 quoting the gold anyway).
CLEAR_COVERAGE = 0.5


def is_clear(coverage: float, lexical: bool) -> bool:
    """Whether quotes holding ``coverage`` of the question's weight answer it clearly
    (always, when the words cannot be compared: another language decides by
    similarity)."""
    return coverage >= CLEAR_COVERAGE or not lexical


def evidence_heading(evidence: Evidence, texts: dict[str, str]) -> str:
    """The heading of a reply that is the evidence alone: what the documents say, or,
    when it is not clear they answer, the closest they come."""
    return texts["replaced"] if is_clear(evidence.coverage, evidence.lexical) else texts["unclear"]


def format_quotes(quotes: list[Quote], heading: str) -> str:
    """The evidence sentences, verbatim, each with its file and page.  A table's row is
    quoted with its column names once: under a quote showing them, the next row of that
    table shows "…" in their place.  Seen by hand in session 21: a KYC file structure's
    eleven column names, 330 characters, stood before each of three rows."""
    lines = [heading]
    shown: set[str] = set()
    for q in quotes:
        place = q.where
        where = q.hit.file_name + (f", {place}" if place else "")
        text = q.text
        header, cut, row = text.partition(AFTER_HEADER)
        if cut and header.endswith("|") and TABLE_ROW.match(row):
            if header in shown:
                text = f"{AFTER_HEADER.strip()} {row}"
            shown.add(header)
        lines.append(quote_line(text, where))
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
