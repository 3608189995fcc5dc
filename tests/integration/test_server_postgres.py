"""The inventory on PostgreSQL (Debian's, started by the test): migrations from an empty
database, the CLI, export/import identical to SQLite's, and a server answering from it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import inspect

from ground.config import Settings
from ground.contract.plan import BootPlan
from lab.packed import make_version
from server.inventory.db import Database, current_revision
from swarmboot.cli import main
from tests.helpers.postgres import PostgresServer, postgres_server
from tests.helpers.server import running_server

pytestmark = pytest.mark.postgres
TABLES = {"alembic_version", "meta", "networks", "switches", "groups", "nodes", "macs", "node_state"}


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def fill(capsys: pytest.CaptureFixture[str]) -> None:
    ok(
        capsys,
        "network",
        "add",
        "net",
        "--cidr",
        "10.7.0.0/24",
        "--gateway",
        "10.7.0.1",
        "--range",
        "10.7.0.10-10.7.0.99",
    )
    ok(capsys, "switch", "add", "sw1")
    ok(capsys, "group", "add", "compute", "--image", "compute", "--root", "overlay", "--kernel-args", "quiet")
    ok(capsys, "node", "add", "n[01-20]", "--group", "compute", "--switch", "sw1")
    ok(capsys, "node", "set", "n01", "--mac", "52:54:00:07:00:01")


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from server.inventory.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    (head,) = ScriptDirectory.from_config(cfg).get_heads()
    return str(head)


def test_migrations_run_from_an_empty_database(pg: PostgresServer) -> None:
    url = pg.create_database("empty")
    db = Database(url)
    assert current_revision(db.engine) == _head()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.close()
    assert current_revision(Database(url).engine) == _head()  # a second start migrates nothing


def test_inventory_on_postgres_matches_sqlite(
    pg: PostgresServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fill(capsys)  # SQLite (the default) in this test's home
    on_sqlite = ok(capsys, "inventory", "export", "-")
    monkeypatch.setenv("SWARMBOOT_DATABASE_URL", pg.create_database("cli"))
    fill(capsys)
    on_pg = ok(capsys, "inventory", "export", "-")
    assert on_pg == on_sqlite
    exported = tmp_path / "inv.yaml"
    exported.write_text(on_pg)
    monkeypatch.setenv("SWARMBOOT_DATABASE_URL", pg.create_database("imported"))
    ok(capsys, "inventory", "import", str(exported))
    assert ok(capsys, "inventory", "export", "-") == on_sqlite
    code = main(["node", "add", "x", "--group", "compute", "--mac", "52:54:00:07:00:01"])
    assert code == 1 and "belongs to node n01" in capsys.readouterr().err


def test_server_on_postgres(
    pg: PostgresServer,
    settings: Settings,
    swarmboot_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = pg.create_database("served")
    monkeypatch.setenv("SWARMBOOT_DATABASE_URL", url)
    make_version(settings.images_dir, "compute", 1, size=2**20)
    fill(capsys)
    for i in range(2, 21):
        ok(capsys, "node", "set", f"n{i:02d}", "--mac", f"52:54:00:07:00:{i:02x}")
    with running_server(swarmboot_home, SWARMBOOT_DATABASE_URL=url) as srv:
        results: dict[int, Any] = {}

        def fetch(i: int) -> None:
            response = requests.get(
                f"{srv.url}/api/v1/plan", params={"mac": f"52:54:00:07:00:{i % 20 + 1:02x}"}, timeout=60
            )
            results[i] = BootPlan.from_dict(response.json()).node.name if response.ok else response.text

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert results == {i: f"n{i % 20 + 1:02d}" for i in range(100)}
        event = {"stage": "booted", "status": "done", "image": "compute", "version": 1}
        assert requests.post(f"{srv.url}/api/v1/nodes/n05/events", json=event, timeout=10).ok
    status = json.loads(ok(capsys, "node", "status", "n05", "--json"))
    assert status[0]["state"] == "booted" and status[0]["version"] == 1
