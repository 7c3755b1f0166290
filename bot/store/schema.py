"""The tables, as SQLAlchemy Core metadata.

This module describes the schema for queries; the schema itself is created and
changed only by the Alembic migrations in ``migrations/``.  A test checks that
the two agree.
"""

from __future__ import annotations

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

metadata = MetaData()

DOCUMENT_STATUSES = ("queued", "indexing", "ready", "failed")


def _now() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # Unique per owning team (uq_workspaces_team_name, migration 0013), not across teams.
    Column("name", Text, nullable=False),
    Column("chunk_tokens", Integer, nullable=False),
    Column("chunk_overlap", Integer, nullable=False),
    Column("top_k", Integer, nullable=False),
    Column("relevance_floor", Float, nullable=False),
    # Answerability thresholds (migration 0007); NULL: the deployment's defaults.
    Column("evidence_coverage", Float),
    Column("evidence_similarity", Float),
    Column("chat_model", Text),  # NULL: the deployment's default chat model
    Column("system_prompt", Text),  # NULL: the built-in prompt
    _now(),
    # The team (bot.teams) whose platform admins may bind channels to it; NULL: unknown,
    # only LIBRARIAN_ADMINS may (migration 0009).
    Column("owner_team", Text),
    # The channel whose own workspace this is; NULL for a named workspace (0009).
    Column("home_platform", Text),
    Column("home_space", Text),
    Column("home_channel", Text),
    # When the ingest worker last took one of its documents; claims prefer the workspace
    # served least recently, NULL (never) first (migration 0012).
    Column("ingest_served_at", DateTime(timezone=True)),
    CheckConstraint(
        "(home_platform IS NULL AND home_space IS NULL AND home_channel IS NULL) OR "
        "(home_platform IS NOT NULL AND home_space IS NOT NULL AND home_channel IS NOT NULL)",
        name="ck_workspaces_home",
    ),
    UniqueConstraint("home_platform", "home_space", "home_channel", name="uq_workspaces_home"),
    UniqueConstraint(
        "owner_team", "name", name="uq_workspaces_team_name", postgresql_nulls_not_distinct=True
    ),
)

channel_bindings = Table(
    "channel_bindings",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("platform", Text, nullable=False),
    Column("space_id", Text, nullable=False, server_default=""),
    Column("channel_id", Text, nullable=False),
    Column("channel_name", Text),
    Column(
        "workspace_id",
        BigInteger,
        ForeignKey("workspaces.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("retention_seconds", BigInteger),  # NULL: keep history (retention off)
    Column("answer_mode", Text, nullable=False, server_default="mention"),
    Column("auto_index", Boolean, nullable=False, server_default="true"),
    Column("upload_policy", Text, nullable=False, server_default="everyone"),
    _now(),
    UniqueConstraint("platform", "space_id", "channel_id", name="uq_binding_channel"),
    Index("ix_bindings_workspace", "workspace_id"),
)

embedding_models = Table(
    "embedding_models",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("dims", Integer, nullable=False),
    _now(),
)

documents = Table(
    "documents",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "workspace_id", BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    Column("source_platform", Text),
    Column("source_space", Text),
    Column("source_channel", Text),
    Column("source_message", Text),
    Column("source_file_id", Text),
    Column("source_url", Text),
    Column("file_name", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("page_count", Integer),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("error", Text),
    Column("uploader", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('queued', 'indexing', 'ready', 'failed')", name="ck_documents_status"
    ),
    UniqueConstraint("workspace_id", "sha256", name="uq_documents_workspace_sha"),
    Index("ix_documents_workspace", "workspace_id"),
    Index("ix_documents_status", "status", "id"),
    Index(
        "ix_documents_waiting",
        "workspace_id",
        "attempts",
        "id",
        postgresql_where=text("status IN ('queued', 'indexing')"),
    ),
    Index("ix_documents_sha", "sha256"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "document_id", BigInteger, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    ),
    Column(
        "workspace_id", BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    Column("ordinal", Integer, nullable=False),
    Column("page_start", Integer),
    Column("page_end", Integer),
    # Where the chunk is, in the document's own terms ("slide 7 (Roadmap)", "sheet
    # Budget, rows 12-40"); NULL when its pages say it (migration 0011).
    Column("location", Text),
    Column("text", Text, nullable=False),
    # The keyword analyzer (migration 0008): English words stemmed, CJK runs as
    # character bigrams; the keyword search analyses questions with the same function.
    Column("tsv", TSVECTOR, Computed("librarian_tsvector(text)", persisted=True)),
    # Token positions of tsv: the chunk length of BM25 (0003, bot.store.keyword).
    Column(
        "tsv_length",
        Integer,
        Computed("tsvector_token_count(librarian_tsvector(text))", persisted=True),
    ),
    # Untyped vector: each embedding model's rows get their own partial HNSW index
    # over (embedding::vector(dims)), so vectors of different models never meet.
    Column("embedding", Vector(), nullable=False),
    Column("embedding_model_id", BigInteger, ForeignKey("embedding_models.id"), nullable=False),
    Index("ix_chunks_workspace_model", "workspace_id", "embedding_model_id"),  # 0002
    Index("ix_chunks_document", "document_id", "ordinal"),
    Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
)

# Per (workspace, embedding model): chunks and their tokens, for BM25's N and average
# length; kept by triggers on chunks (migration 0003).
keyword_stats = Table(
    "keyword_stats",
    metadata,
    Column(
        "workspace_id", BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    Column("embedding_model_id", BigInteger, ForeignKey("embedding_models.id"), nullable=False),
    Column("chunk_count", BigInteger, nullable=False, server_default="0"),
    Column("token_count", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("workspace_id", "embedding_model_id", name="pk_keyword_stats"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "binding_id",
        BigInteger,
        ForeignKey("channel_bindings.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("thread_id", Text, nullable=False, server_default=""),
    Column("platform_message_id", Text),
    Column("role", Text, nullable=False),
    Column("author", Text),
    Column("text", Text, nullable=False),
    Column("cited_chunk_ids", ARRAY(BigInteger)),
    # An assistant turn's metadata: "checked", "evidence", ... (migration 0007).
    Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _now(),
    CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
    Index("ix_messages_conversation", "binding_id", "thread_id", "created_at"),
    Index("ix_messages_created", "created_at"),
    Index("ix_messages_cited", "cited_chunk_ids", postgresql_using="gin"),  # 0009
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "binding_id",
        BigInteger,
        ForeignKey("channel_bindings.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("thread_id", Text, nullable=False, server_default=""),
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="SET NULL")),
    Column("platform_message_id", Text),
    Column("author", Text),
    Column("verdict", Text, nullable=False),
    Column("note", Text),
    Column("question", Text),
    Column("answer", Text),
    Column("sources", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _now(),
    CheckConstraint("verdict IN ('good', 'bad')", name="ck_feedback_verdict"),
    Index("ix_feedback_binding", "binding_id", "created_at"),
    Index("ix_feedback_created", "created_at"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("platform", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # in_flight (claimed by owner until lease_until), done, or failed (0010).
    Column("state", Text, nullable=False),
    Column("owner", Text),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("lease_until", DateTime(timezone=True)),
    # What is needed to run the event again (bot.store.events); cleared when it ends.
    Column("payload", JSONB),
    PrimaryKeyConstraint("platform", "event_id", name="pk_processed_events"),
    CheckConstraint("state IN ('in_flight', 'done', 'failed')", name="ck_processed_events_state"),
    Index("ix_processed_events_at", "processed_at"),
    Index(
        "ix_processed_events_in_flight",
        "lease_until",
        postgresql_where=text("state = 'in_flight'"),
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Index("ix_audit_at", "at"),
)

settings_kv = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
