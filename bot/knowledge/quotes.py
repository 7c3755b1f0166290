"""The evidence records: a quoted sentence (``Quote``), and the quotes chosen for one
question with the decision they support (``Evidence``).

``bot.knowledge.evidence`` makes them; the reply, the definition and opening rules and
the answerer read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.store.records import ChunkHit


@dataclass(frozen=True)
class Quote:
    """One evidence sentence, where it comes from, and how it scored."""

    text: str
    hit: ChunkHit
    coverage: float
    similarity: float
    lexemes: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    bonus: float = 0.0  # TYPE_BONUS when it holds what the question asks for

    @property
    def score(self) -> float:
        """What ranks quotes: term coverage plus semantic similarity (plus the type bonus)."""
        return self.coverage + self.similarity + self.bonus

    @property
    def page(self) -> int | None:
        """The page the sentence is on (its chunk's first page)."""
        return self.hit.page_start

    @property
    def where(self) -> str:
        """Where the sentence is: its chunk's location ("slide 3 (Plan)"), else "p. N"."""
        if self.hit.location is not None:
            return self.hit.location
        return f"p. {self.page}" if self.page is not None else ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: document, page, location (None for PDF pages), text."""
        return {
            "document": self.hit.file_name,
            "page": self.page,
            "location": self.hit.location,
            "text": self.text,
        }


@dataclass
class Evidence:
    """The best sentences for a question, and whether they answer it."""

    quotes: list[Quote]
    coverage: float  # share of the question's weight the quotes hold together
    similarity: float  # the best quote's similarity to the question
    answerable: bool
    best_coverage: float = 0.0  # the most any one quote holds
    # The question's words that no document of the workspace holds.
    missing_terms: list[str] = field(default_factory=list)
    # The question's weightiest words, for "what was searched" in a not-found reply.
    key_terms: list[str] = field(default_factory=list)
    ms: float = 0.0
    # False when the best quote is in another language than the question (an English
    # question on a French document): words cannot be compared, so coverage is not
    # required and similarity alone decides.
    lexical: bool = True
