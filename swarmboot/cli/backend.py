"""Where the inventory verbs go: the database on this head node, or a server's API (`--server`).

Both sides offer the same calls with the same results, so every verb prints the same output
either way: `Local` calls server/inventory/crud.py directly; `Remote` calls the write API
(server/api/inventory_write.py), which calls the same functions on the server. A refused remote
call comes back as the same SwarmbootError (same message, hint and exit code) as a local one.

    swarmboot --server http://head:8080 node list        # token: $SWARMBOOT_TOKEN,
    swarmboot --server URL --token-file FILE node add …  # --token-file / $SWARMBOOT_TOKEN_FILE,
                                                         # or $SWARMBOOT_HOME/admin.token
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Protocol

from ground.config import Settings
from ground.errors import UsageError

SERVER_ENV = "SWARMBOOT_REMOTE"
TOKEN_ENV = "SWARMBOOT_TOKEN"
TOKEN_FILE_ENV = "SWARMBOOT_TOKEN_FILE"


class Inventory(Protocol):
    def add(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]: ...
    def update(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]: ...
    def show(self, kind: str, name: str) -> dict[str, Any]: ...
    def list_all(self, kind: str) -> list[dict[str, Any]]: ...
    def remove(self, kind: str, names: list[str]) -> list[str]: ...
    def add_nodes(self, names: list[str], spec: dict[str, Any]) -> list[dict[str, Any]]: ...
    def update_nodes(
        self, names: list[str], spec: dict[str, Any], add_macs: list[str], remove_macs: list[str]
    ) -> list[dict[str, Any]]: ...
    def remove_nodes(self, names: list[str]) -> list[str]: ...
    def show_node(self, name: str) -> dict[str, Any]: ...
    def list_nodes(self) -> list[dict[str, Any]]: ...
    def status(self, names: list[str] | None) -> list[dict[str, Any]]: ...
    def reinstall(self, names: list[str], forget: bool) -> list[str]: ...
    def export(self, secrets: bool = False) -> dict[str, Any]: ...
    def import_(self, data: dict[str, Any], replace: bool) -> dict[str, int]: ...
    def targets(self, port: int) -> list[dict[str, Any]]: ...
    def plan(self, name: str) -> dict[str, Any]: ...


class Local:
    """The inventory database of this head node (the settings' database_url)."""

    def __init__(self, settings: Settings) -> None:
        from server import cliutil

        self.db = cliutil.database(settings)
        self.settings = settings

    def add(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        from server.inventory import crud

        return crud.add(self.db, kind, name, spec)

    def update(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        from server.inventory import crud

        return crud.update(self.db, kind, name, spec)

    def show(self, kind: str, name: str) -> dict[str, Any]:
        from server.inventory import crud

        return crud.show(self.db, kind, name)

    def list_all(self, kind: str) -> list[dict[str, Any]]:
        from server.inventory import crud

        return crud.list_all(self.db, kind)

    def remove(self, kind: str, names: list[str]) -> list[str]:
        from server.inventory import crud

        return crud.remove(self.db, kind, names)

    def add_nodes(self, names: list[str], spec: dict[str, Any]) -> list[dict[str, Any]]:
        from server.inventory import crud

        return crud.add_nodes(self.db, names, spec)

    def update_nodes(
        self, names: list[str], spec: dict[str, Any], add_macs: list[str], remove_macs: list[str]
    ) -> list[dict[str, Any]]:
        from server.inventory import crud

        return crud.update_nodes(self.db, names, spec, add_macs, remove_macs)

    def remove_nodes(self, names: list[str]) -> list[str]:
        from server.inventory import crud

        return crud.remove_nodes(self.db, names)

    def show_node(self, name: str) -> dict[str, Any]:
        from server import events
        from server.inventory import crud

        data = crud.show_node(self.db, name)
        data["state"] = events.status(self.db, [name], self.catalog())[0]
        data["alerts"] = events.alerts(self.db, name)
        data["log"] = crud.node_log(self.db, name)
        return data

    def list_nodes(self) -> list[dict[str, Any]]:
        from server.inventory import crud

        return crud.list_nodes(self.db)

    def status(self, names: list[str] | None) -> list[dict[str, Any]]:
        from server import events

        return events.status(self.db, names or None, self.catalog())

    def catalog(self) -> Any:
        """The packed versions (a disk-mode node's status compares its install with them)."""
        from server.catalog import Catalog

        catalog = Catalog(self.settings.images_dir, "")
        catalog.refresh()
        return catalog

    def reinstall(self, names: list[str], forget: bool) -> list[str]:
        from server import install

        return install.request_reinstalls(self.db, names, forget=forget)

    def export(self, secrets: bool = False) -> dict[str, Any]:
        from server.inventory import crud

        return crud.export(self.db, secrets=secrets)

    def import_(self, data: dict[str, Any], replace: bool) -> dict[str, int]:
        from server.inventory import crud

        return crud.import_(self.db, data, replace=replace)

    def targets(self, port: int) -> list[dict[str, Any]]:
        from server import events

        return events.booted_targets(self.db, port)

    def plan(self, name: str) -> dict[str, Any]:
        """The plan `serve` with these settings renders for the node (nfs: at nfs_port)."""
        from server import plan
        from server.catalog import Catalog
        from server.inventory import objects
        from server.inventory.models import Node

        url = self.settings.effective_server_url
        catalog = Catalog(self.settings.images_dir, url)
        catalog.refresh()
        with self.db.read() as session:
            node = objects.by_name(session, Node, name, "node")
            return plan.build(
                node, catalog, url, nfs_port=self.settings.nfs_port,
                after_boot=plan.AfterBoot.of(self.settings),
            ).to_dict()


def token_for(args: argparse.Namespace, settings: Settings) -> str:
    """The admin token for --server: $SWARMBOOT_TOKEN, --token-file / $SWARMBOOT_TOKEN_FILE, or
    this host's $SWARMBOOT_HOME/admin.token. Never from the command line itself (ps shows it)."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    path = getattr(args, "token_file", None) or os.environ.get(TOKEN_FILE_ENV) or ""
    candidates = [Path(path)] if path else [settings.home / "admin.token"]
    for candidate in candidates:
        try:
            token = candidate.read_text().strip()
        except OSError as exc:
            if path:
                raise UsageError(f"cannot read the token file {candidate}: {exc.strerror}") from None
            continue
        if token:
            return token
    raise UsageError(
        "--server needs the server's admin token",
        hint=f"set ${TOKEN_ENV}, or give --token-file FILE (or ${TOKEN_FILE_ENV}) with the content of "
        "the server's admin.token",
    )


def inventory(args: argparse.Namespace, settings: Settings) -> Inventory:
    """Local, or Remote when --server (or $SWARMBOOT_REMOTE) names a server."""
    url = getattr(args, "server", None) or os.environ.get(SERVER_ENV, "")
    if not url:
        return Local(settings)
    from swarmboot.cli.remote import Remote

    return Remote(url, token_for(args, settings))
