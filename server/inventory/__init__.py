"""The inventory: networks, groups, nodes, switches and node state, in SQLAlchemy 2 + Alembic."""
