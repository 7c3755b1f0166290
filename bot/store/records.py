"""Plain records returned by the store: the core reads these, never SQL rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Workspace:
    """A knowledge boundary: documents, chunks and their settings."""

    id: int
    name: str
    chunk_tokens: int
    chunk_overlap: int
    top_k: int
    relevance_floor: float
    chat_model: str | None
    system_prompt: str | None
    # Answerability thresholds; None: the deployment's defaults (bot.config.Settings).
    evidence_coverage: float | None = None
    evidence_similarity: float | None = None
    # The team (bot.teams) whose admins may bind channels to it; None: only
    # LIBRARIAN_ADMINS may (an orphan from before migration 0009).
    owner_team: str | None = None
    # Whether this is a channel's own workspace (made for it, keyed by the channel).
    own: bool = False


@dataclass(frozen=True)
class Binding:
    """A channel and the workspace it reads from, with its per-channel settings."""

    id: int
    platform: str
    space_id: str
    channel_id: str
    channel_name: str | None
    workspace: Workspace
    retention_seconds: int | None
    answer_mode: str
    auto_index: bool
    upload_policy: str


@dataclass(frozen=True)
class Document:
    """An indexed (or queued, or failed) file."""

    id: int
    workspace_id: int
    file_name: str
    media_type: str
    sha256: str
    size_bytes: int
    page_count: int | None
    status: str
    error: str | None
    uploader: str | None
    source_platform: str | None
    source_space: str | None
    source_channel: str | None
    source_message: str | None
    source_file_id: str | None
    source_url: str | None
    attempts: int
    created_at: datetime
    chunk_count: int = 0


@dataclass(frozen=True)
class DocumentClaim:
    """A document an ingest worker holds, and the database session that holds it.

    The claim is a session advisory lock; ``session`` (the backend's pid and start
    time) names that session, so that a write made for the claim can check that it
    still holds: a database restart ends the session and frees the document for
    another worker while this one is still embedding it.
    """

    document: Document
    session: tuple[int, datetime]


class ClaimLost(Exception):
    """The worker's claim on a document ended (its session died); another may hold it."""

    def __init__(self, document_id: int) -> None:
        super().__init__(f"the claim on document {document_id} was lost")
        self.document_id = document_id


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to be written, with its vector."""

    ordinal: int
    page_start: int | None
    page_end: int | None
    text: str
    embedding: list[float]
    location: str | None = None  # "slide 7 (Roadmap)"; None: the pages say where


@dataclass(frozen=True)
class ChunkHit:
    """A chunk found by a search, with what ranked it."""

    chunk_id: int
    document_id: int
    file_name: str
    page_start: int | None
    page_end: int | None
    text: str
    similarity: float | None = None  # cosine similarity, dense search
    keyword_rank: float | None = None  # BM25 score, keyword search
    all_terms: bool = False  # every query term occurs in the chunk
    source_channel: str | None = None
    source_url: str | None = None
    location: str | None = None  # in the document's own terms; None: the pages say it


@dataclass(frozen=True)
class HistoryMessage:
    """One turn of a stored conversation."""

    id: int
    role: str
    author: str | None
    text: str
    created_at: datetime
    cited_chunk_ids: tuple[int, ...] = ()
    # An answer's own words, posted above its quotes (the model's checked text, or one
    # found by rule); None for a reply that was the evidence alone, "not found", a
    # fixed reply, and a question.
    said: str | None = None


@dataclass(frozen=True)
class StoredAnswer:
    """An answer the bot posted and remembered, with the question it answered."""

    id: int  # messages.id of the assistant turn
    binding_id: int
    thread_id: str  # "" outside threads
    platform_message_id: str | None
    text: str
    question: str | None  # the user turn just before it in the same thread
    cited_chunk_ids: tuple[int, ...]
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CitedDocument:
    """A document an answer cited, and the pages (or locations) of the chunks it cited."""

    document_id: int
    file_name: str
    pages: tuple[int, ...]
    locations: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedbackEntry:
    """One person's verdict on one answer, as stored."""

    id: int
    channel: str  # channel_spec: console:general, slack:T01/C02
    thread_id: str
    message_id: int | None  # the rated assistant turn; None once retention deleted it
    platform_message_id: str | None
    author: str | None
    verdict: str
    note: str | None
    question: str | None
    answer: str | None
    sources: list[dict[str, Any]]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``librarian feedback --json``)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "thread": self.thread_id or None,
            "message_id": self.message_id,
            "platform_message_id": self.platform_message_id,
            "author": self.author,
            "verdict": self.verdict,
            "note": self.note,
            "question": self.question,
            "answer": self.answer,
            "sources": self.sources,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class ExpiredHistory:
    """What one retention run deleted, per channel (channels with nothing are absent)."""

    messages: dict[str, int]
    feedback: dict[str, int]
