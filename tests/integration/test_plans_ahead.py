"""Boot plans built ahead (server/plan_ahead.py) on a real inventory database and a real packed
version: each body the pass caches is the very body the request would build, batches cross
groups, the nodes whose plans cannot be built are left to their requests, and one node's
install record drops only that node's plans."""

from __future__ import annotations

import json

from ground.config import Settings
from ground.contract.plan import PLAN_MINOR, BootPlan, NodeFile, format_version
from lab.packed import make_version
from server import plan, plan_ahead
from server.api import nodes as nodes_api
from server.inventory import crud
from server.inventory.db import Database
from server.state import ServerState

URL = "http://10.5.0.1:8080"


def _inventory(settings: Settings) -> Database:
    make_version(settings.images_dir, "compute", 1, size=2**20)
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "network", "cluster", {"cidr": "10.5.0.0/24", "gateway": "10.5.0.1", "domain": "hpc.test",
                                        "range": "10.5.0.10-10.5.0.250"})
    motd = {"path": "/etc/motd", "template": "{{ node.name }} at {{ node.address }}\n"}
    crud.add(db, "group", "compute", {"image": "compute", "files": [motd]})
    crud.add(db, "group", "broken", {"image": "compute", "files": [{"path": "/x", "template": "{{ 1/0 }}"}]})
    crud.add(db, "group", "unpacked", {"image": "nothing-packed"})
    # 36 nodes: 32 stripe owners and 4 leaves; two MACs on one of them
    crud.import_(db, {"swarmboot_inventory": 1, "nodes": [
        {"name": f"c{i:02d}", "group": "compute", "network": "cluster",
         "macs": [f"52:54:00:01:00:{i:02x}"] + (["52:54:00:02:00:01"] if i == 7 else [])}
        for i in range(36)
    ] + [{"name": "b1", "group": "broken", "macs": ["52:54:00:03:00:01"]},
         {"name": "u1", "group": "unpacked", "macs": ["52:54:00:04:00:01"]},
         {"name": "nomac", "group": "compute"}]})
    return db


def test_plans_built_ahead_are_the_bodies_requests_build(settings: Settings) -> None:
    state = ServerState(settings, URL, "t", _inventory(settings))
    state.refresh(True)
    done = plan_ahead.build_all(state, batch=5)  # batches of 5 over 39 nodes
    assert done.complete and done.epoch == state.cache_epoch
    assert (done.nodes, done.plans, done.skipped) == (36, 37, 2)
    assert len(state.plan_cache) == 37
    macs = [f"52:54:00:01:00:{i:02x}" for i in range(36)] + ["52:54:00:02:00:01"]
    for mac in macs:
        key = plan.cache_key(mac, "", PLAN_MINOR)
        built, _name = nodes_api._plan_body(state, mac, None, format_version())
        assert state.plan_cache[key] == built, mac
    leaf = BootPlan.from_dict(json.loads(state.plan_cache[plan.cache_key(macs[35], "", PLAN_MINOR)]))
    assert (leaf.torrent.stripe, leaf.torrent.stripes) == (-1, 32)
    assert leaf.files[0].content == "c35 at \n"  # imported without an address
    # the failing ones are not cached: their requests build them and get the error
    assert plan.cache_key("52:54:00:03:00:01", "", PLAN_MINOR) not in state.plan_cache
    assert plan.cache_key("52:54:00:04:00:01", "", PLAN_MINOR) not in state.plan_cache


def test_the_plan_with_secrets_from_the_cached_body_is_the_one_build_gives(settings: Settings) -> None:
    state = ServerState(settings, URL, "t", _inventory(settings))
    state.refresh(True)
    plan_ahead.build_all(state)
    secrets = (NodeFile("/etc/munge/munge.key", "a2V5", 0o400, "munge", "munge", "base64"),)
    mac = "52:54:00:01:00:03"
    with state.db.read() as session:
        node, boot_mac = nodes_api._node_of(session, mac, None)
        for minor in (1, PLAN_MINOR):
            after = state.after_boot()
            public = plan.build(node, state.catalog, URL, boot_mac, minor=minor, after_boot=after)
            full = plan.build(
                node, state.catalog, URL, boot_mac, minor=minor, secret_files=secrets, after_boot=after
            )
            as_json = json.dumps(public.to_dict(minor), separators=(",", ":")).encode()
            expected = json.dumps(full.to_dict(minor), separators=(",", ":")).encode()
            assert plan.with_secrets(as_json, secrets, minor) == expected, minor
        assert plan.with_secrets(state.plan_cache[plan.cache_key(mac, "", PLAN_MINOR)], secrets, PLAN_MINOR) \
            == expected


def test_an_install_record_drops_that_nodes_plans_only(settings: Settings) -> None:
    state = ServerState(settings, URL, "t", _inventory(settings))
    state.refresh(True)
    stamp = state.plan_stamp()  # taken before a build that the forget overtakes
    plan_ahead.build_all(state)
    before = len(state.plan_cache)
    state.forget_plans("c07")  # two MACs
    assert len(state.plan_cache) == before - 2
    assert plan.cache_key("52:54:00:01:00:08", "", PLAN_MINOR) in state.plan_cache
    state.cache_plan(b"late|c07", b"{}", stamp, "c07")  # built before the forget: stale
    state.cache_plan(b"late|c08", b"{}", stamp, "c08")
    assert b"late|c07" not in state.plan_cache and b"late|c08" in state.plan_cache
    state.cache_plan(b"new|c07", b"{}", state.plan_stamp(), "c07")
    assert b"new|c07" in state.plan_cache
