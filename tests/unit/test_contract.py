"""The server/agent contract (ground/contract/): the closed sets have implementations, the golden
plan documents pin the wire format in both directions, the server builds the golden plan from a
fixture inventory, and an agent of an older minor is served what it understands."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootagent.main import STAGES as AGENT_STAGES
from bootagent.roots import RootBuilder
from ground.contract import plan as contract
from ground.contract.plan import PLAN_MINOR, ROOT_MODE_SINCE, BootPlan, PlanError, parse_version
from ground.contract.sets import (
    PLANNED_ROOT_MODES,
    ROOT_MODE_FORMATS,
    EventStage,
    ImageFormat,
    RootMode,
    Stage,
    names,
)
from ground.store import FileEntry, Manifest, write_atomic

DATA = Path(__file__).resolve().parent.parent / "data"
SERVER_URL = "http://10.0.0.1:8080"


def golden(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


# -- the closed sets ---------------------------------------------------------------------------


def test_every_root_mode_has_a_builder_in_the_agent_and_no_builder_is_outside_the_set() -> None:
    assert set(RootBuilder.registry) == set(RootMode)
    for mode, cls in RootBuilder.registry.items():
        assert cls.mode is mode and cls.formats() == ROOT_MODE_FORMATS[mode]
    assert set(ROOT_MODE_FORMATS) == set(RootMode) and set(ROOT_MODE_SINCE) == set(RootMode)
    assert not set(PLANNED_ROOT_MODES) & set(names(RootMode))
    assert {f for fs in ROOT_MODE_FORMATS.values() for f in fs} <= set(ImageFormat)


def test_the_agent_runs_the_contract_stages_in_order() -> None:
    assert [s.name for s in AGENT_STAGES] == list(Stage)
    assert set(names(Stage)) <= set(names(EventStage)), "every stage can be reported"


# -- golden documents --------------------------------------------------------------------------


def field_paths(tp: Any, prefix: str = "", minor: int = PLAN_MINOR) -> set[str]:
    """Every field of the plan's dataclasses in plan version 1.minor, as dotted paths (lists:
    their item's fields; an optional object: its fields)."""
    paths: set[str] = set()
    hints = typing.get_type_hints(tp)
    for f in dataclasses.fields(tp):
        if f.metadata.get("since", 0) > minor:
            continue
        path = f"{prefix}{f.name}"
        paths.add(path)
        inner = hints[f.name]
        if typing.get_origin(inner) is tuple:
            inner = typing.get_args(inner)[0]
        options = [a for a in typing.get_args(inner) if a is not type(None)]
        if typing.get_origin(inner) in (typing.Union, types.UnionType) and len(options) == 1:
            inner = options[0]
        if dataclasses.is_dataclass(inner):
            paths |= field_paths(inner, path + ".", minor)
    return paths


def document_paths(doc: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    items = doc[0] if isinstance(doc, list) and doc and isinstance(doc[0], dict) else doc
    if isinstance(items, dict):
        for key, value in items.items():
            paths.add(f"{prefix}{key}")
            paths |= document_paths(value, f"{prefix}{key}.")
    return paths


def test_the_full_golden_document_sets_every_field_and_round_trips_exactly() -> None:
    doc = golden("plan-v1.0-full.json")
    assert document_paths(doc) == field_paths(BootPlan, minor=0), "a 1.0 field was renamed: update the golden"
    plan = BootPlan.from_dict(doc)
    assert plan.to_dict(0) == doc
    assert plan.root.mode is RootMode.TMPFS and plan.image.format is ImageFormat.SQUASHFS
    assert plan.interfaces[1].name == "ib0" and plan.files[1].mode == 0o400 and plan.torrent.stripe == 1
    # no field has its default in the full document: a change of a default shows here too
    assert plan != BootPlan.from_dict(golden("plan-v1.0-minimal.json"))


def test_the_1_1_golden_document_sets_every_field_of_the_disk_mode_and_round_trips() -> None:
    doc = golden("plan-v1.1-full.json")
    assert document_paths(doc) == field_paths(BootPlan, minor=1), "a field was added or renamed: update it"
    plan = BootPlan.from_dict(doc)
    assert plan.to_dict(1) == doc
    assert plan.root.mode is RootMode.DISK and plan.root.layout is not None
    assert plan.root.layout.raid[0].disks == ("main", "second") and plan.root.kept[0].uuid
    assert plan.image.initramfs_url.endswith("/initramfs.img")
    # what a 1.0 agent is sent of it: none of the 1.1 fields
    old = plan.to_dict(0)
    assert "layout" not in old["root"] and "kernel_url" not in old["image"] and old["minor"] == 0


def test_the_full_1_2_golden_document_sets_every_field_and_round_trips_exactly() -> None:
    """1.2 (issue 13): the node's secrets (`secret_files`), a file's `encoding` (base64), the
    seeder's port; on top of 1.1's disk mode."""
    doc = golden("plan-v1.2-full.json")
    assert document_paths(doc) == field_paths(BootPlan, minor=2), "a field was added or renamed"
    plan = BootPlan.from_dict(doc)
    assert plan.to_dict(2) == doc
    assert plan.secret_files[0].encoding == "base64" and plan.secret_files[0].mode == 0o400
    assert plan.torrent.seeder_port == 6880
    older = plan.to_dict(1)  # an agent of 1.1 gets none of 1.2's fields (its decoder would ignore them)
    assert "secret_files" not in older and "seeder_port" not in older["torrent"]
    assert all("encoding" not in f for f in older["files"])
    assert older | {"files": None} == golden("plan-v1.1-full.json") | {"files": None}


def test_the_full_1_3_golden_document_sets_every_field_of_the_nfs_mode_and_round_trips() -> None:
    """1.3 (issue 11): the nfs root mode and root.nfs, the export the server renders."""
    doc = golden("plan-v1.3-full.json")
    assert document_paths(doc) == field_paths(BootPlan, minor=3), "a field was added or renamed"
    plan = BootPlan.from_dict(doc)
    assert plan.to_dict(3) == doc
    assert plan.root.mode is RootMode.NFS and plan.root.nfs is not None
    assert plan.root.nfs.source == "10.1.0.1:/swarmboot/compute/3" and plan.root.nfs.port == 2049
    older = plan.to_dict(2)  # an agent of 1.2 gets no root.nfs (and the server refuses it the mode)
    assert "nfs" not in older["root"]
    blank = {"root": None, "minor": None}
    assert older | blank == golden("plan-v1.2-full.json") | blank


def test_the_full_1_4_golden_document_sets_the_seeding_after_boot_and_round_trips() -> None:
    """1.4 (issue 12): how long and how fast a booted node keeps seeding its image."""
    doc = golden("plan-v1.4-full.json")
    assert document_paths(doc) == field_paths(BootPlan, minor=4), "a field was added or renamed"
    plan = BootPlan.from_dict(doc)
    assert plan.to_dict(4) == doc
    assert (plan.torrent.seed_after_boot_seconds, plan.torrent.seed_idle_seconds) == (900, 45)
    assert plan.torrent.seed_rate_limit == 12_500_000
    older = plan.to_dict(3)  # an agent of 1.3 gets none of them: it stops seeding at switch_root
    assert not {"seed_after_boot_seconds", "seed_idle_seconds", "seed_rate_limit"} & set(older["torrent"])
    blank = {"minor": None}
    assert older | blank == golden("plan-v1.3-full.json") | blank


def test_the_minimal_golden_document_decodes_to_the_defaults_and_back() -> None:
    doc = golden("plan-v1.0-minimal.json")
    plan = BootPlan.from_dict(doc)
    assert plan == BootPlan(
        version=1,
        node=contract.NodeInfo(name="n1", hostname="n1", group="compute"),
        image=contract.ImageRef(
            name="compute",
            version=3,
            format=ImageFormat.SQUASHFS,
            size=1024,
            sha256="ab" * 32,
            torrent_url="http://s/t",
            http_url="http://s/i",
        ),
        reporting=contract.Reporting(events_url="http://s/api/v1/nodes/n1/events"),
    )
    encoded = plan.to_dict(0)
    assert {k: v for k, v in encoded.items() if k in doc} == {
        **doc,
        "node": {**doc["node"], "domain": ""},
        "image": {**doc["image"], "info_hash": "", "kernel_version": ""},
        "reporting": {**doc["reporting"], "heartbeat_seconds": 10},
    }
    assert BootPlan.from_dict(encoded) == plan
    assert (encoded["root"], encoded["minor"], encoded["service"]) == (
        {"mode": "overlay", "tmpfs_size": "75%"},
        0,
        False,
    )


# -- versions ----------------------------------------------------------------------------------


def test_any_minor_of_the_major_is_accepted_and_another_major_is_refused() -> None:
    doc = golden("plan-v1.0-minimal.json")
    newer = {**doc, "minor": PLAN_MINOR + 7, "a_field_of_a_later_minor": {"x": 1}}
    assert BootPlan.from_dict(newer).minor == PLAN_MINOR + 7
    with pytest.raises(PlanError, match=r"plan\.version is 2, this agent understands version 1"):
        BootPlan.from_dict({**doc, "version": 2})
    assert parse_version("1.4") == (1, 4) and parse_version("1") == (1, 0)
    for bad in ("", "one", "1.x", "1.2.3", "9" * 20):
        with pytest.raises(PlanError):
            parse_version(bad)


def test_fields_of_a_later_minor_are_left_out_for_an_older_agent() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later:
        old: int = 1
        new: int = dataclasses.field(default=2, metadata=contract.since(PLAN_MINOR + 1))

    assert contract._encode(Later(), PLAN_MINOR) == {"old": 1}
    assert contract._encode(Later(), PLAN_MINOR + 1) == {"old": 1, "new": 2}


# -- the server builds the golden plan ---------------------------------------------------------


def write_manifest(images_dir: Path) -> Manifest:
    """A packed version as the catalog sees it (a manifest; the plan needs no image bytes)."""
    vdir = images_dir / "compute" / "versions" / "3"
    vdir.mkdir(parents=True)
    manifest = Manifest(
        image="compute",
        version=3,
        format="squashfs",
        compression="zstd:3",
        kernel_version="6.1.0-27-amd64",
        created="2026-12-01T00:00:00Z",
        tool_version="0.1.0",
        inputs_hash="0" * 64,
        info_hash="0123456789abcdef0123456789abcdef01234567",
        piece_size=1 << 20,
        kernel=FileEntry("vmlinuz", 8_000_000, "1" * 64),
        initramfs=FileEntry("initramfs.img", 39_000_000, "2" * 64),
        image_file=FileEntry("image.squashfs", 191_889_408, "5d2c" + "0" * 60),
        torrent=FileEntry("image.torrent", 3_800, "3" * 64),
        inputs={},
    )
    write_atomic(vdir / "manifest.json", json.dumps(manifest.to_dict()))
    write_atomic(images_dir / "compute" / "current", "3\n")
    return manifest


def server_plan(tmp_path: Path, node: str, plan_version: str | None) -> dict[str, Any]:
    from server import plan as server_plan_module
    from server.api.nodes import _plan_body
    from server.catalog import Catalog
    from server.inventory import crud
    from server.inventory.db import Database

    images = tmp_path / "images"
    write_manifest(images)
    catalog = Catalog(images, SERVER_URL)
    catalog.refresh()
    db = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    crud.import_(db, yaml.safe_load((DATA / "plan-fixture-inventory.yaml").read_text()))

    class State:  # what _plan_body reads of the running server's state (no seeder, no NFS export)
        def seeder_port(self) -> int:
            return 0

        def nfs_port(self) -> int:
            return 0

        def after_boot(self) -> server_plan_module.AfterBoot:
            return server_plan_module.AfterBoot()

    state = State()
    state.db, state.catalog, state.server_url = db, catalog, SERVER_URL  # type: ignore[attr-defined]
    assert server_plan_module.negotiate(plan_version) == 0
    try:
        return json.loads(_plan_body(state, None, node, plan_version)[0])  # type: ignore[arg-type]
    finally:
        db.close()


def test_the_server_builds_the_golden_plan_from_the_fixture_inventory(tmp_path: Path) -> None:
    want = golden("plan-v1.0-server.json")
    got = server_plan(tmp_path, "n001", "1.0")
    assert document_paths(got) == document_paths(want)
    for path in sorted(document_paths(want)):
        assert lookup(got, path) == lookup(want, path), path  # field for field, named when it differs
    assert got == want


def test_an_agent_from_before_negotiation_gets_the_same_plan(tmp_path: Path) -> None:
    assert server_plan(tmp_path, "n001", None) == golden("plan-v1.0-server.json")


def test_an_unknown_major_is_refused_with_a_message(tmp_path: Path) -> None:
    from ground.errors import UsageError
    from server.plan import negotiate

    with pytest.raises(UsageError, match=r"speaks boot plan version 2\.0; this server renders 1"):
        negotiate("2.0")
    with pytest.raises(UsageError, match=r"not MAJOR\.MINOR"):
        negotiate("latest")
    assert negotiate(f"1.{PLAN_MINOR + 5}") == PLAN_MINOR  # a newer agent gets what we have


def lookup(doc: Any, path: str) -> Any:
    for key in path.split("."):
        doc = [item[key] for item in doc] if isinstance(doc, list) else doc[key]
    return doc
