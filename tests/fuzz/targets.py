"""Fuzz targets: each takes raw bytes (what an attacker on the provisioning network, or a careless
file, can send) and checks the contract: the input is accepted, or refused with the error the
code documents; any other exception is a crash. Shared by the bounded property tests
(tests/unit/test_fuzz.py, hypothesis, in `make test`) and `make fuzz` (scripts/fuzz.py, atheris,
>= 10^6 inputs per target).

    kernel command line   ground.contract.cmdline.parse_cmdline
    plan decoder          ground.inputs.loads_json + BootPlan.from_dict (and its round trip)
    events                server.events.decode + parse (and that the result stores and encodes)
    tracker query         server.tracker.Tracker.announce (always a bencoded answer)
    announce over HTTP    GET /announce through the server's ASGI app (HTTP 200, bencoded)
    recipes               builder.recipe.parse_recipe
    inventory import      server.inventory.crud.load_yaml + import_ into a real SQLite inventory
    name ranges           server.inventory.validate.expand
    iPXE routes           GET /boot/ipxe, /boot/ipxe/rescue, /boot/ipxe/choose through the ASGI app
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_from_bytes

from ground.errors import SwarmbootError

Target = Callable[[bytes], None]


class Crash(AssertionError):
    """The code did something its contract does not allow (not a documented refusal)."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


# -- pure targets ------------------------------------------------------------------------------


def cmdline(data: bytes) -> None:
    from ground.contract.cmdline import NODE_RE, TOKEN_RE, CmdlineError, parse_cmdline

    try:
        args = parse_cmdline(data.decode("utf-8", errors="replace"))  # /proc/cmdline is read so
    except CmdlineError:
        return
    if not args.servers or not all(s.startswith(("http://", "https://")) for s in args.servers):
        raise Crash(f"accepted servers {args.servers!r}")
    if args.node and not NODE_RE.fullmatch(args.node):
        raise Crash(f"accepted node {args.node!r}")
    if args.token and not TOKEN_RE.fullmatch(args.token):
        raise Crash(f"accepted token {args.token!r}")
    if not (args.node or args.mac) or not 0 < args.plan_timeout <= 86400:
        raise Crash(f"accepted {args!r}")


def plan(data: bytes) -> None:
    from ground.contract.plan import PLAN_MINOR, BootPlan
    from ground.inputs import loads_json

    try:
        decoded = BootPlan.from_dict(loads_json(data, max_bytes=1 << 20, what="the plan"))
    except ValueError:  # PlanError, InputError
        return
    again = BootPlan.from_dict(json.loads(json.dumps(decoded.to_dict(PLAN_MINOR))))
    if dataclasses.replace(again, minor=decoded.minor) != decoded:
        raise Crash("the plan does not survive its own round trip")


def events(data: bytes) -> None:
    from server import events as ev

    try:
        event = ev.parse(ev.decode(data))
    except ev.EventError:
        return
    json.dumps(event).encode("utf-8")  # what is stored and shown must encode


_TRACKER: list[Any] = []


def tracker_query(data: bytes) -> None:
    from server.tracker import Tracker

    if not _TRACKER:
        _TRACKER.append(Tracker(known=lambda h: h[:1] != b"\xff"))
    body = _TRACKER[0].announce(data, "10.0.0.1")
    _check_bencoded(body)


def _check_bencoded(body: bytes) -> None:
    import libtorrent as lt

    if not (body.startswith(b"d") and body.endswith(b"e")) or not isinstance(lt.bdecode(body), dict):
        raise Crash(f"not a bencoded dictionary: {body[:80]!r}")


def recipe(data: bytes) -> None:
    from builder.recipe import RecipeError, parse_recipe

    base = Path(tempfile.gettempdir())
    try:
        parse_recipe(_text(data), base / "fuzz-recipe.toml")
    except RecipeError:
        return


def name_ranges(data: bytes) -> None:
    from server.inventory import validate
    from server.inventory.validate import MAX_EXPANSION

    try:
        names = validate.expand(_text(data)[:200])
    except SwarmbootError:
        return
    if not 0 < len(names) <= MAX_EXPANSION or len(set(names)) != len(names):
        raise Crash(f"expanded to {len(names)} names")


# -- targets with a real inventory (SQLite in a temporary home) ---------------------------------


class Home:
    """A temporary home with an inventory, a packed version and the server's ASGI app."""

    instance: Home | None = None

    def __init__(self) -> None:
        from ground.config import load_settings
        from lab.packed import make_version
        from server.inventory import crud
        from server.inventory.db import Database

        self.dir = Path(tempfile.mkdtemp(prefix="swarmboot-fuzz."))
        atexit.register(shutil.rmtree, self.dir, True)
        os.environ.update(SWARMBOOT_HOME=str(self.dir), SWARMBOOT_CONFIG=str(self.dir / "none.toml"))
        self.settings = load_settings()
        make_version(self.settings.images_dir, "compute", 1, size=1 << 20)
        self.db = Database.from_settings(self.settings, pool_size=2)
        crud.add(self.db, "network", "net", {"cidr": "10.9.0.0/24", "range": "10.9.0.10-10.9.0.200"})
        crud.add(self.db, "group", "g", {"image": "compute", "network": "net"})
        crud.add_nodes(self.db, ["n1"], {"group": "g", "macs": ["52:54:00:00:00:01"]})
        crud.add_nodes(self.db, ["spare[1-3]"], {"group": "g"})
        self.import_db = Database(f"sqlite:///{self.dir / 'import.db'}", pool_size=2)
        self._app: Any = None
        self.loop = asyncio.new_event_loop()

    @classmethod
    def get(cls) -> Home:
        if cls.instance is None:
            cls.instance = cls()
        return cls.instance

    @property
    def app(self) -> Any:
        if self._app is None:
            from server.api.app import create_app
            from server.state import ServerState

            state = ServerState(self.settings, "http://10.9.0.1:8080", "admin-token", self.db)
            state.refresh(force=True)
            self._app = create_app(state)
        return self._app

    def get_path(self, path: str, query: bytes, client: str = "10.9.0.50") -> tuple[int, bytes]:
        """One GET through the ASGI app, as uvicorn hands it over."""
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(b"host", b"10.9.0.1:8080")], "client": (client, 40000),
            "server": ("10.9.0.1", 8080), "root_path": "",
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, body


def inventory_import(data: bytes) -> None:
    from server.inventory import crud

    home = Home.get()
    try:
        document = crud.load_yaml(_text(data), "fuzz.yaml")
        crud.import_(home.import_db, document, replace=True)
    except SwarmbootError:
        return


def announce_http(data: bytes) -> None:
    """Raw bytes as the query string of GET /announce, with a known info-hash now and then."""
    home = Home.get()
    manifest = json.loads((home.settings.images_dir / "compute/versions/1/manifest.json").read_text())
    if data[:1] == b"K":  # steer part of the inputs to a tracked torrent
        known = quote_from_bytes(bytes.fromhex(manifest["info_hash"])).encode()
        data = b"info_hash=" + known + b"&" + data[1:]
    status, body = home.get_path("/announce", data[:4096])
    if status != 200:
        raise Crash(f"/announce answered {status}")
    _check_bencoded(body)


IPXE_PATHS = ("/boot/ipxe", "/boot/ipxe/rescue", "/boot/ipxe/choose")


def ipxe_routes(data: bytes) -> None:
    """Raw bytes as the query of the iPXE routes: always HTTP 200 and an iPXE script whose lines
    are the template's (no line comes from the query)."""
    home = Home.get()
    path = IPXE_PATHS[data[0] % 3] if data else IPXE_PATHS[0]
    query = data[1:2048]
    status, body = home.get_path(path, query)
    if status != 200 or not body.startswith(b"#!ipxe\n"):
        raise Crash(f"{path} answered {status}: {body[:120]!r}")
    lines = {line.strip() for line in body.decode("utf-8", errors="replace").splitlines()}
    for values in parse_qs(query.decode("latin-1"), keep_blank_values=True).values():
        for value in values:
            for piece in re.split(r"[\r\n]", value)[1:]:  # what would follow a line break
                if len(piece.strip()) >= 4 and piece.strip() in lines:
                    raise Crash(f"{path}: a line from the query: {piece!r}")


TARGETS: dict[str, Target] = {
    "cmdline": cmdline,
    "plan": plan,
    "events": events,
    "tracker_query": tracker_query,
    "announce_http": announce_http,
    "recipe": recipe,
    "inventory_import": inventory_import,
    "name_ranges": name_ranges,
    "ipxe_routes": ipxe_routes,
}
