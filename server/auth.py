"""The admin token: made at the first `swarmboot serve`, kept in $SWARMBOOT_HOME/admin.token (0600).

Admin endpoints (/api/v1/admin/…) need `Authorization: Bearer <token>`; node-facing endpoints
need nothing (they are read-only, except events and the boot menu's MAC binding).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from ground.errors import SwarmbootError

TOKEN_FILE = "admin.token"
VIEWER_TOKEN_FILE = "viewer.token"  # read-only: the status page (server/api/access.py)


def token_path(home: Path, name: str = TOKEN_FILE) -> Path:
    return home / name


def ensure_token(home: Path, name: str = TOKEN_FILE) -> str:
    """Read the token, creating it (mode 0600, atomically) the first time."""
    path = token_path(home, name)
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(home, name)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def read_token(home: Path, name: str = TOKEN_FILE) -> str:
    path = token_path(home, name)
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        token = path.read_text().strip()
    except FileNotFoundError:
        raise SwarmbootError(
            f"no admin token at {path}", hint="it is made by the first `swarmboot serve`"
        ) from None
    if not token:
        raise SwarmbootError(f"{path} is empty", hint="remove it; the next `swarmboot serve` makes a new one")
    return token


def check(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
