"""The HTTP API: FastAPI routers, plus a lean ASGI front for the hot paths (/announce, cached plans)."""
