"""Initial schema: workspaces, bindings, documents, chunks, history, events, audit, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "workspaces",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("chunk_tokens", sa.Integer, nullable=False),
        sa.Column("chunk_overlap", sa.Integer, nullable=False),
        sa.Column("top_k", sa.Integer, nullable=False),
        sa.Column("relevance_floor", sa.Float, nullable=False),
        sa.Column("chat_model", sa.Text),
        sa.Column("system_prompt", sa.Text),
        _created(),
    )
    op.create_table(
        "channel_bindings",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("space_id", sa.Text, nullable=False, server_default=""),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("channel_name", sa.Text),
        sa.Column(
            "workspace_id",
            sa.BigInteger,
            sa.ForeignKey("workspaces.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("retention_seconds", sa.BigInteger),
        sa.Column("answer_mode", sa.Text, nullable=False, server_default="mention"),
        sa.Column("auto_index", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("upload_policy", sa.Text, nullable=False, server_default="everyone"),
        _created(),
        sa.UniqueConstraint("platform", "space_id", "channel_id", name="uq_binding_channel"),
    )
    op.create_index("ix_bindings_workspace", "channel_bindings", ["workspace_id"])
    op.create_table(
        "embedding_models",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("dims", sa.Integer, nullable=False),
        _created(),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "workspace_id",
            sa.BigInteger,
            sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_platform", sa.Text),
        sa.Column("source_space", sa.Text),
        sa.Column("source_channel", sa.Text),
        sa.Column("source_message", sa.Text),
        sa.Column("source_file_id", sa.Text),
        sa.Column("source_url", sa.Text),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("page_count", sa.Integer),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("error", sa.Text),
        sa.Column("uploader", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _created(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'indexing', 'ready', 'failed')", name="ck_documents_status"
        ),
        sa.UniqueConstraint("workspace_id", "sha256", name="uq_documents_workspace_sha"),
    )
    op.create_index("ix_documents_workspace", "documents", ["workspace_id"])
    op.create_index("ix_documents_status", "documents", ["status", "id"])
    op.create_index("ix_documents_sha", "documents", ["sha256"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "document_id",
            sa.BigInteger,
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "workspace_id",
            sa.BigInteger,
            sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("page_start", sa.Integer),
        sa.Column("page_end", sa.Integer),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tsv", TSVECTOR, sa.Computed("to_tsvector('english', text)", persisted=True)),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column(
            "embedding_model_id",
            sa.BigInteger,
            sa.ForeignKey("embedding_models.id"),
            nullable=False,
        ),
    )
    op.create_index("ix_chunks_workspace", "chunks", ["workspace_id"])
    op.create_index("ix_chunks_document", "chunks", ["document_id", "ordinal"])
    op.create_index("ix_chunks_tsv", "chunks", ["tsv"], postgresql_using="gin")
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "binding_id",
            sa.BigInteger,
            sa.ForeignKey("channel_bindings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("thread_id", sa.Text, nullable=False, server_default=""),
        sa.Column("platform_message_id", sa.Text),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("cited_chunk_ids", sa.ARRAY(sa.BigInteger)),
        _created(),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
    )
    op.create_index(
        "ix_messages_conversation", "messages", ["binding_id", "thread_id", "created_at"]
    )
    op.create_index("ix_messages_created", "messages", ["created_at"])
    op.create_table(
        "processed_events",
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.PrimaryKeyConstraint("platform", "event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_at", "processed_events", ["processed_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_at", "audit_log", ["at"])
    op.create_table(
        "settings",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", JSONB, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    for table in (
        "settings",
        "audit_log",
        "processed_events",
        "messages",
        "chunks",
        "documents",
        "embedding_models",
        "channel_bindings",
        "workspaces",
    ):
        op.drop_table(table)
    # The extension is left in place: other schemas in the database may use it.
