"""Switch-port discovery and power control: switches' SNMP settings and LLDP chassis ID, the
power method of nodes and groups, where MACs were seen (port_sightings), and the node log.

Revision ID: issue14_ports_power
Revises: issue10_node_installs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "issue14_ports_power"
down_revision = "issue13_node_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("switches") as batch:
        batch.add_column(sa.Column("snmp", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("chassis_id", sa.String(255), nullable=False, server_default=""))
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("power_method", sa.String(16), nullable=False, server_default=""))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("power_method", sa.String(16), nullable=False, server_default=""))
    op.create_table(
        "port_sightings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mac", sa.String(17), nullable=False, unique=True),
        sa.Column("switch_id", sa.Integer, sa.ForeignKey("switches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("port", sa.String(255), nullable=False),
        sa.Column("names", sa.JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_port_sightings_switch_id", "port_sightings", ["switch_id"])
    op.create_table(
        "node_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_node_log_node_id", "node_log", ["node_id"])


def downgrade() -> None:
    op.drop_table("node_log")
    op.drop_table("port_sightings")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("power_method")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("power_method")
    with op.batch_alter_table("switches") as batch:
        batch.drop_column("chassis_id")
        batch.drop_column("snmp")
