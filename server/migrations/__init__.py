"""Alembic migrations of the inventory (run by server.inventory.db.migrate)."""
