"""Node tokens, node secrets (SSH host keys), alerts, and the groups' secret files (issue 13).

Revision ID: issue13_node_tokens
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "issue13_node_tokens"
down_revision = "issue10_node_installs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("secret_files", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "node_tokens",
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "node_secrets",
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
    )
    op.create_table(
        "node_alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_index("ix_node_alerts_node_id", "node_alerts", ["node_id"])


def downgrade() -> None:
    op.drop_index("ix_node_alerts_node_id", "node_alerts")
    op.drop_table("node_alerts")
    op.drop_table("node_secrets")
    op.drop_table("node_tokens")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("secret_files")
