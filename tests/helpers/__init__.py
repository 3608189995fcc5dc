"""Reusable test helpers (packed image versions, a running server)."""
