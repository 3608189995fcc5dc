"""Property tests over the fuzz targets (tests/fuzz/targets.py), bounded for `make test`: a few
thousand inputs each (SWARMBOOT_FUZZ_EXAMPLES, default 2000; 500 for the targets that go through
the inventory or the ASGI app). Raw bytes, plus inputs built from the grammar of each format so
that the checks run past the first parse. `make fuzz` runs >= 10^6 inputs per target (atheris)."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets

EXAMPLES = int(os.environ.get("SWARMBOOT_FUZZ_EXAMPLES", "2000"))
SLOW = max(50, EXAMPLES // 4)


def bounded(n: int = EXAMPLES) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


# grammar-ish inputs ------------------------------------------------------------------------

WORDS = ["root=swarmboot", "swarmboot.server=http://10.0.0.1:8080", "swarmboot.server=http://[",
         "swarmboot.node=n1", "swarmboot.mac=52:54:00:00:00:01", "swarmboot.token=", "swarmboot.break=",
         "swarmboot.plan_timeout=", "swarmboot.service=", "quiet", "'", '"', "=", ",", "\n", "ip=dhcp"]
cmdlines = st.lists(
    st.one_of(st.sampled_from(WORDS), st.text(string.printable, max_size=12),
              st.tuples(st.sampled_from(WORDS), st.text(max_size=20)).map("".join)),
    max_size=12,
).map(lambda ws: " ".join(ws).encode("utf-8", errors="surrogatepass"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
PLAN = json.loads((Path(__file__).resolve().parent.parent / "data" / "plan-v1.2-full.json").read_text())


@st.composite
def plans(draw: st.DrawFn) -> bytes:
    """The full golden plan with a few fields replaced by anything, or removed."""
    doc = json.loads(json.dumps(PLAN))
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(sorted(doc)))
        if isinstance(doc[section], dict) and doc[section] and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(doc[section])))
            doc[section][key] = draw(json_values)
        elif draw(st.booleans()):
            doc[section] = draw(json_values)
        else:
            del doc[section]
    return json.dumps(doc).encode()


events_docs = st.fixed_dictionaries(
    {"stage": st.sampled_from(["download", "booted", "bogus", 3]),
     "status": st.sampled_from(["progress", "done", "x"])},
    optional={"progress": json_values | st.floats(), "duration": json_values | st.floats(),
              "version": json_values, "image": json_values, "message": json_values, "details": json_values},
).map(lambda d: json.dumps(d).encode())

queries = st.lists(
    st.tuples(st.sampled_from(["info_hash", "peer_id", "port", "left", "uploaded", "event", "numwant",
                               "compact", "mac", "node", "platform", "x"]),
              st.binary(max_size=24)),
    max_size=8,
).map(lambda kv: b"&".join(k.encode() + b"=" + targets.quote_from_bytes(v).encode() for k, v in kv))

ranges = st.lists(st.sampled_from(["n", "[", "]", "-", ",", "0", "1", "9", "00", "²", "a", "99999"]),
                  max_size=14).map(lambda parts: "".join(parts).encode())

recipes = st.lists(
    st.sampled_from(['packages = ["htop"]', "packages = 3", "[[files]]", 'source = "x"', 'dest = "/etc/x"',
                     'dest = "../x"', 'mode = "0644"', "[[hooks.configure]]", 'name = "h"', 'run = "true"',
                     'script = "a\\u0000b"', "chroot = false", "[hooks]", "x = 1", "[[hooks.install]]"]),
    max_size=10,
).map(lambda lines: "\n".join(lines).encode())

inventories = st.lists(
    st.sampled_from(["swarmboot_inventory: 1", "networks:", "- name: net", "  cidr: 10.1.0.0/24",
                     "  domain: \"a\\nb\"", "  mtu: 99999999999999999999", "groups:", "- name: g",
                     "  image: img", "  kernel_args: \"x\\ny\"", "nodes:",
                     "- name: n1",
                     "  group: g",
                     "  macs: [52:54:00:00:00:01]", "  network: net", "switches:", "- name: S", "- [",
                     "&a [*a]"]),
    max_size=14,
).map(lambda lines: "\n".join(lines).encode())


# the properties -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "strategy", "examples"),
    [
        ("cmdline", cmdlines, EXAMPLES),
        ("plan", plans(), EXAMPLES),
        ("events", events_docs, EXAMPLES),
        ("tracker_query", queries, EXAMPLES),
        ("recipe", recipes, EXAMPLES),
        ("name_ranges", ranges, EXAMPLES),
        ("inventory_import", inventories, SLOW),
        ("announce_http", queries.map(lambda q: b"K" + q), SLOW),
        ("ipxe_routes", st.tuples(st.integers(0, 2), queries).map(lambda t: bytes([t[0]]) + t[1]), SLOW),
    ],
)
def test_structured_inputs(name: str, strategy: st.SearchStrategy[bytes], examples: int) -> None:
    target = targets.TARGETS[name]

    @bounded(examples)
    @given(strategy)
    def check(data: bytes) -> None:
        target(data)

    check()


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_raw_bytes(name: str) -> None:
    target = targets.TARGETS[name]
    slow = name in ("inventory_import", "announce_http", "ipxe_routes")

    @bounded(SLOW if slow else EXAMPLES)
    @given(st.binary(max_size=512))
    def check(data: bytes) -> None:
        target(data)

    check()
