"""The fuzz targets' HTTP routes over a real socket: `swarmboot serve` on loopback gets random
/announce queries and iPXE route queries (hypothesis, bounded: SWARMBOOT_FUZZ_EXAMPLES / 4);
every answer is HTTP 200 with a bencoded dictionary, or an iPXE script with no line of the
query's. (In-process and at 10^6 inputs: tests/fuzz/targets.py, `make fuzz`.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground.config import Settings
from lab.packed import make_version
from server.inventory import crud
from server.inventory.db import Database
from tests.fuzz.targets import _check_bencoded
from tests.helpers.server import running_server
from tests.unit.test_fuzz import queries

EXAMPLES = max(50, int(os.environ.get("SWARMBOOT_FUZZ_EXAMPLES", "2000")) // 4)
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))


@pytest.fixture
def server(settings: Settings, swarmboot_home: Path) -> Any:
    manifest = make_version(settings.images_dir, "compute", 1, size=2**20)
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "group", "g", {"image": "compute"})
    crud.add_nodes(db, ["n1"], {"group": "g", "macs": ["52:54:00:00:00:01"]})
    crud.add_nodes(db, ["spare[1-3]"], {"group": "g"})
    db.close()
    with running_server(swarmboot_home) as srv, requests.Session() as session:
        yield srv, session, manifest


def test_announce_over_http_always_answers_a_bencoded_dictionary(server: Any) -> None:
    srv, session, manifest = server
    known = bytes.fromhex(manifest.info_hash)
    from urllib.parse import quote_from_bytes

    @BOUNDED
    @given(queries, st.booleans())
    def check(query: bytes, tracked: bool) -> None:
        if tracked:
            query = b"info_hash=" + quote_from_bytes(known).encode() + b"&" + query
        response = session.get(f"{srv.url}/announce?{query.decode('latin-1')}", timeout=10)
        assert response.status_code == 200, response.text
        _check_bencoded(response.content)

    check()
    assert srv.admin("stats")["tracker"]["announces"] >= EXAMPLES


def test_ipxe_routes_always_answer_a_script_without_lines_of_the_query(server: Any) -> None:
    srv, session, _ = server

    @BOUNDED
    @given(st.sampled_from(["/boot/ipxe", "/boot/ipxe/rescue", "/boot/ipxe/choose"]), queries,
           st.sampled_from(["", "mac=52:54:00:00:00:01&", "mac=52:54:00:00:09:09&node=spare1&"]))
    def check(path: str, query: bytes, prefix: str) -> None:
        text_query = prefix + query.decode("latin-1")
        response = session.get(f"{srv.url}{path}?{text_query}", timeout=10)
        assert response.status_code == 200 and response.text.startswith("#!ipxe\n"), response.text[:200]
        lines = {line.strip() for line in response.text.splitlines()}
        for values in parse_qs(text_query, keep_blank_values=True).values():
            for value in values:
                for piece in value.replace("\r", "\n").split("\n")[1:]:
                    assert len(piece.strip()) < 4 or piece.strip() not in lines, (path, piece)

    check()
