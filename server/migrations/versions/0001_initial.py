"""The first inventory schema: networks, switches, groups, nodes, macs, node state, meta.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.create_table(
        "networks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("dns", sa.JSON, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("range_start", sa.String(64), nullable=False),
        sa.Column("range_end", sa.String(64), nullable=False),
        sa.Column("dhcp_start", sa.String(64), nullable=False),
        sa.Column("dhcp_end", sa.String(64), nullable=False),
        sa.Column("mtu", sa.Integer, nullable=False),
    )
    op.create_table(
        "switches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("image", sa.String(63), nullable=False),
        sa.Column("image_version", sa.Integer, nullable=True),
        sa.Column("network_id", sa.Integer, sa.ForeignKey("networks.id"), nullable=True),
        sa.Column("root_mode", sa.String(16), nullable=False),
        sa.Column("root_options", sa.JSON, nullable=False),
        sa.Column("pre_script", sa.Text, nullable=False),
        sa.Column("part_script", sa.Text, nullable=False),
        sa.Column("post_script", sa.Text, nullable=False),
        sa.Column("kernel_args", sa.Text, nullable=False),
        sa.Column("console", sa.String(255), nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("ssh_keys", sa.JSON, nullable=False),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id"), nullable=False),
        sa.Column("network_id", sa.Integer, sa.ForeignKey("networks.id"), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("switch_id", sa.Integer, sa.ForeignKey("switches.id"), nullable=True),
        sa.Column("switch_port", sa.String(64), nullable=False),
        sa.Column("bmc_address", sa.String(255), nullable=False),
        sa.Column("bmc_user", sa.String(255), nullable=False),
        sa.Column("bmc_password", sa.String(255), nullable=False),
        sa.Column("service", sa.Boolean, nullable=False),
        sa.Column("kernel_args", sa.Text, nullable=False),
    )
    op.create_table(
        "macs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mac", sa.String(17), nullable=False, unique=True),
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_macs_node_id", "macs", ["node_id"])
    op.create_table(
        "node_state",
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("image", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("boot_started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("node_state", "macs", "nodes", "groups", "switches", "networks", "meta"):
        op.drop_table(table)
