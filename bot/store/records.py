"""Plain records returned by the store: the core reads these, never SQL rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
class NewChunk:
    """A chunk ready to be written, with its vector."""

    ordinal: int
    page_start: int | None
    page_end: int | None
    text: str
    embedding: list[float]


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


@dataclass(frozen=True)
class HistoryMessage:
    """One turn of a stored conversation."""

    id: int
    role: str
    author: str | None
    text: str
    created_at: datetime
    cited_chunk_ids: tuple[int, ...] = ()
