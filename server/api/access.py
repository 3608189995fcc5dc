"""Who may see the status page and change the inventory.

- The admin token (`admin.token`) may do everything; the viewer token (`viewer.token`, made at the
  first `swarmboot serve` like the admin token) may only look: the status page, its event stream
  and its JSON.
- Programs send `Authorization: Bearer TOKEN`. A browser logs in once with a form (the token goes
  in a POST body) or a token link (`/status/login#token=…`: a URL fragment never reaches the
  server, so it is never in a log); it then holds a session cookie that is an HMAC of the token,
  not the token, and that stops working when the token changes.
- A token in a query string is refused: URLs end up in logs, proxies and browser histories.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer

from server import auth
from server.api.deps import state_of

Role = Literal["admin", "viewer"]
COOKIE = "swarmboot_session"
# what OpenAPI shows: every admin and status route takes a bearer token
bearer = HTTPBearer(auto_error=False, description="the admin token (admin.token) or, read-only, viewer.token")


@dataclass
class Tokens:
    admin: str
    viewer: str

    def role_of(self, token: str) -> Role | None:
        presented = token.strip().encode()
        if hmac.compare_digest(presented, self.admin.encode()):
            return "admin"
        if self.viewer and hmac.compare_digest(presented, self.viewer.encode()):
            return "viewer"
        return None

    def session(self, role: Role) -> str:
        secret = (self.admin if role == "admin" else self.viewer).encode()
        mac = hmac.new(secret, b"swarmboot-status-session:" + role.encode(), hashlib.sha256).hexdigest()
        return f"{role}.{mac}"

    def session_role(self, cookie: str) -> Role | None:
        role, _, _mac = cookie.partition(".")
        if role not in ("admin", "viewer") or (role == "viewer" and not self.viewer):
            return None
        return role if hmac.compare_digest(cookie.encode(), self.session(role).encode()) else None  # type: ignore[arg-type]


def tokens_of(request: Request) -> Tokens:
    state = state_of(request)
    viewer = getattr(request.app.state, "viewer_token", "")
    return Tokens(admin=state.token, viewer=viewer)


def load_viewer_token(request_app_state: object, home: object) -> None:
    """Read (or make) viewer.token into the app's state; also on SIGHUP."""
    request_app_state.viewer_token = auth.ensure_token(home, auth.VIEWER_TOKEN_FILE)  # type: ignore[attr-defined,arg-type]


def refuse_token_in_url(request: Request) -> None:
    if "token" in request.query_params:
        raise HTTPException(
            status_code=400,
            detail="a token never goes into a URL (it would be logged): use the login form, a "
            "token link (/status/login#token=…) or an Authorization: Bearer header",
        )


def role_of(request: Request) -> Role | None:
    """The caller's role from the Authorization header or the session cookie (None: nobody)."""
    refuse_token_in_url(request)
    tokens = tokens_of(request)
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return tokens.role_of(header[7:])
    cookie = request.cookies.get(COOKIE)
    return tokens.session_role(cookie) if cookie else None


def require_viewer(request: Request) -> Role:
    role = role_of(request)
    if role is None:
        raise HTTPException(
            status_code=401,
            detail="the viewer or admin token is required "
            "(Authorization: Bearer …, or log in at /status/login)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return role


def require_admin_role(request: Request) -> Role:
    role = require_viewer(request)
    if role != "admin":
        raise HTTPException(
            status_code=403, detail="this needs the admin token (the viewer token only reads)"
        )
    return role


# keep `auth.check` (Authorization header, admin token) the one rule for the admin API
__all__ = ["COOKIE", "Tokens", "bearer", "require_admin_role", "require_viewer", "role_of", "tokens_of"]
