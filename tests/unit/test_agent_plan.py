"""Boot plan parsing edge cases, as the agent sees them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ground.contract.plan import BootPlan, PlanError


def minimal() -> dict[str, Any]:
    return {
        "version": 1,
        "node": {"name": "n1", "hostname": "n1", "group": "compute"},
        "image": {
            "name": "compute",
            "version": 3,
            "format": "squashfs",
            "size": 1024,
            "sha256": "ab" * 32,
            "torrent_url": "http://s/t",
            "http_url": "http://s/i",
        },
        "reporting": {"events_url": "http://s/api/v1/nodes/n1/events"},
    }


def test_minimal_plan_gets_defaults() -> None:
    plan = BootPlan.from_dict(minimal())
    assert plan.root.mode == "overlay" and plan.root.tmpfs_size == "75%"
    assert plan.scripts.timeout == 600
    assert plan.torrent.stall_seconds == 120 and plan.service is False


def test_unknown_fields_are_ignored_at_every_level() -> None:
    data = minimal()
    data["future"] = {"x": 1}
    data["node"]["rack"] = "r12"
    data["image"]["signature"] = "…"
    data["files"] = [{"path": "/etc/motd", "content": "hi", "colour": "blue"}]
    plan = BootPlan.from_dict(data)
    assert plan.files[0].path == "/etc/motd" and plan.files[0].mode == 0o644


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("image", "sha256"), "plan.image.sha256: required field is missing"),
        (("node",), "plan.node: required field is missing"),
        (("reporting", "events_url"), "plan.reporting.events_url: required field is missing"),
    ],
)
def test_a_missing_required_field_is_named(path: tuple[str, ...], message: str) -> None:
    data = copy.deepcopy(minimal())
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        BootPlan.from_dict(data)


def test_wrong_types_and_values_are_named() -> None:
    data = minimal()
    data["image"]["size"] = "1024"
    with pytest.raises(PlanError, match=r"plan\.image\.size: must be int"):
        BootPlan.from_dict(data)
    data = minimal()
    data["root"] = {"mode": "floppy"}
    with pytest.raises(PlanError, match=r"plan\.root\.mode: 'floppy' is not one of"):
        BootPlan.from_dict(data)
    data = minimal()
    data["image"]["version"] = True
    with pytest.raises(PlanError, match=r"plan\.image\.version"):
        BootPlan.from_dict(data)


def test_other_plan_versions_are_refused() -> None:
    data = minimal()
    data["version"] = 2
    with pytest.raises(PlanError, match="this agent understands version 1"):
        BootPlan.from_dict(data)
    with pytest.raises(PlanError, match="must be a JSON object"):
        BootPlan.from_dict([])


def test_round_trip() -> None:
    data = minimal()
    data["interfaces"] = [{"mac": "52:54:00:00:00:01", "address": "10.0.0.5/24", "dns": ["10.0.0.1"]}]
    plan = BootPlan.from_dict(data)
    assert BootPlan.from_dict(plan.to_dict(plan.minor)) == plan
