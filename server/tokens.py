"""Node tokens: a node sees only its own plan's secrets and posts only its own events.

- `issue()`: when the server renders a node's iPXE script (for that node's MAC; when the node has a
  reserved address, only for a request from that address, or for the request that just gave the
  machine its name: `may_issue`) it makes a new random token for this
  boot, keeps its sha256 (the token itself is only in that script, on the node's kernel command
  line), and forgets the previous one.
- `use_for_secrets()`: the plan request that carries the token gets the node's secrets (the
  group's secret files, the node's SSH host keys) and uses the token up: a second such request is
  refused (409) and recorded as an alert, as is another node's token (403). Without a token a
  plan has its public part only.
- `check_for_events()`: events need the node's current token (401 without, 403 with a wrong one).
- SSH host keys are made by the server (ssh-keygen) the first time a node gets its secrets and
  kept, so a reprovisioned node keeps its identity.
docs/security.md has the threat model.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ground.contract.plan import NodeFile
from ground.errors import SwarmbootError
from ground.run import run
from server.inventory.models import Node, NodeAlert, NodeSecret, NodeToken

log = logging.getLogger(__name__)
HOST_KEY_TYPES = ("ed25519",)
MAX_ALERTS = 100  # per node; the oldest go


class TokenError(SwarmbootError):
    """A token that is missing (401), another node's or an old one (403), or used up (409)."""

    def __init__(self, message: str, status: int, hint: str = "", code: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code or {401: "token_missing", 403: "token_wrong", 409: "token_used"}[status]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, node: Node, address: str, now: dt.datetime) -> str:
    """A new token for this boot of `node` (the previous one stops working)."""
    token = secrets.token_urlsafe(32)
    row = session.get(NodeToken, node.id)
    if row is None:
        row = NodeToken(node_id=node.id)
        session.add(row)
    row.token_hash, row.issued_at, row.address = digest(token), now, address
    row.used_at, row.used_by = None, ""
    return token


def may_issue(node: Node, address: str, named_now: bool = False) -> bool:
    """A node with a reserved address gets a token only in a script its own address asked for, or
    in the request that named the machine (`named_now`: by its switch port or the boot menu), which
    cannot come from the reserved address yet (DHCP gave it a dynamic one): the naming is the
    evidence."""
    return named_now or not node.address or node.address == address


def alert(  # noqa: PLR0917 - what the alert is: all of it
    session: Session, node: Node, kind: str, message: str, address: str, now: dt.datetime
) -> None:
    log.warning("node %s: ALERT %s: %s (from %s)", node.name, kind, message, address or "?")
    session.add(NodeAlert(node_id=node.id, at=now, kind=kind, message=message, address=address))
    query = select(NodeAlert.id).where(NodeAlert.node_id == node.id)
    old = session.execute(query.order_by(NodeAlert.id.desc()).offset(MAX_ALERTS)).scalars().all()
    for alert_id in old:
        session.delete(session.get(NodeAlert, alert_id))


def _matches(row: NodeToken | None, token: str) -> bool:
    return row is not None and hmac.compare_digest(row.token_hash, digest(token))


def _owner(session: Session, token: str) -> str:
    query = select(Node.name).join(NodeToken, NodeToken.node_id == Node.id)
    owner = session.execute(query.where(NodeToken.token_hash == digest(token))).scalar_one_or_none()
    return owner or ""


def use_for_secrets(
    session: Session, node: Node, token: str, address: str, now: dt.datetime
) -> TokenError | None:
    """Accept `token` for `node`'s secrets and use it up (None); otherwise the error to answer
    with, after recording an alert (the caller commits the alert, then raises)."""
    row = session.get(NodeToken, node.id)
    if not _matches(row, token):
        owner = _owner(session, token)
        why = f"the token of node {owner}" if owner else "a token this node was not given (an old boot's?)"
        alert(session, node, "wrong-token", f"a plan request for {node.name} came with {why}", address, now)
        return TokenError(
            f"this token is not node {node.name}'s current token",
            403,
            hint="boot the node again (its iPXE script brings a new token)",
        )
    assert row is not None
    if row.used_at is not None:
        alert(
            session,
            node,
            "token-replayed",
            f"the token was used again (first used at {_iso(row.used_at)} from {row.used_by or '?'})",
            address,
            now,
        )
        return TokenError(
            f"node {node.name}'s token was used already (at {_iso(row.used_at)} from {row.used_by or '?'})",
            409,
            hint="someone else may have fetched this node's secrets: check `swarmboot node show "
            f"{node.name}`; boot the node again for a new token",
        )
    row.used_at, row.used_by = now, address
    return None


def check_for_events(session: Session, node: Node, token: str) -> None:
    if not token:
        raise TokenError(
            f"events of node {node.name} need its token (header X-Swarmboot-Token)",
            401,
            hint="the agent sends swarmboot.token from the kernel command line",
        )
    if not _matches(session.get(NodeToken, node.id), token):
        raise TokenError(f"this token is not node {node.name}'s current token", 403)


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


# -- the node's secrets ----------------------------------------------------------------------------


def host_keys(session: Session, node: Node) -> list[NodeSecret]:
    """The node's SSH host keys (private and public), made on first use and kept."""
    rows = session.execute(select(NodeSecret).where(NodeSecret.node_id == node.id)).scalars()
    have = {s.name: s for s in rows}
    for kind in HOST_KEY_TYPES:
        private = f"/etc/ssh/ssh_host_{kind}_key"
        if private in have and f"{private}.pub" in have:
            continue
        key, pub = _keygen(kind, node.name)
        for name, content, mode in ((private, key, 0o600), (f"{private}.pub", pub, 0o644)):
            secret = have.get(name) or NodeSecret(node_id=node.id, name=name)
            secret.content, secret.mode = content, mode
            session.add(secret)
            have[name] = secret
    return [have[n] for n in sorted(have)]


def _keygen(kind: str, node: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="swarmboot-hostkey.") as tmp:
        path = Path(tmp) / "key"
        run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{node}", "-f", str(path)], timeout=60)
        return path.read_text(), (Path(tmp) / "key.pub").read_text()


def secret_files(session: Session, node: Node) -> tuple[NodeFile, ...]:
    """What the plan's `secret_files` carries: the group's secret files, then the host keys."""
    files = [
        NodeFile(
            path=entry["path"],
            content=entry["content"],
            mode=entry["mode"],
            owner=entry["owner"],
            group=entry["group"],
            encoding="base64",
        )
        for entry in node.group.secret_files or []
    ]
    paths = {f.path for f in files}
    for secret in host_keys(session, node):
        if secret.name not in paths:  # a group's own file of that path wins
            content = base64.b64encode(secret.content.encode()).decode()
            files.append(NodeFile(path=secret.name, content=content, mode=secret.mode, encoding="base64"))
    return tuple(files)
