"""What each node installed on its disk (root mode disk): image, version, sha256, layout, kept
partitions' UUIDs, and whether a reinstall was asked for.

Revision ID: issue10_node_installs
Revises: issue15_operator_view
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "issue10_node_installs"
down_revision = "issue15_operator_view"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_installs",
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("image", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("layout", sa.JSON, nullable=False),
        sa.Column("kept", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reinstall", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_installs")
