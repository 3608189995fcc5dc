"""The operator's view: node event timelines, head nodes sharing the inventory, tracker peers
shared between head nodes, and an index for the status page's change feed.

Revision ID: issue15_operator_view
Revises: 0001
Create Date: 2026-11-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "issue15_operator_view"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("duration", sa.Float, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
    )
    op.create_index("ix_node_events_node_id", "node_events", ["node_id"])
    op.create_index("ix_node_state_last_seen", "node_state", ["last_seen"])
    op.create_table(
        "head_nodes",
        sa.Column("url", sa.String(255), primary_key=True),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tracker_peers",
        sa.Column("server", sa.String(255), primary_key=True),
        sa.Column("info_hash", sa.String(40), primary_key=True),
        sa.Column("ip", sa.String(64), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True),
        sa.Column("peer_id", sa.String(40), nullable=False),
        sa.Column("left", sa.BigInteger, nullable=False),
        sa.Column("uploaded", sa.BigInteger, nullable=False),
        sa.Column("downloaded", sa.BigInteger, nullable=False),
        sa.Column("seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tracker_peers_updated", "tracker_peers", ["updated"])


def downgrade() -> None:
    op.drop_index("ix_tracker_peers_updated", "tracker_peers")
    op.drop_table("tracker_peers")
    op.drop_table("head_nodes")
    op.drop_index("ix_node_state_last_seen", "node_state")
    op.drop_index("ix_node_events_node_id", "node_events")
    op.drop_table("node_events")
