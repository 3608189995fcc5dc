"""Inventory input checks and host-list expansion."""

from __future__ import annotations

import pytest

from ground.errors import UsageError
from server.events import EventError, parse
from server.inventory import validate


def test_ranges_expand_with_padding_and_lists() -> None:
    assert validate.expand("node[001-003]") == ["node001", "node002", "node003"]
    assert validate.expand("n[1,3,5-6]") == ["n1", "n3", "n5", "n6"]
    assert validate.expand("r[1-2]n[01-02]") == ["r1n01", "r1n02", "r2n01", "r2n02"]
    assert validate.expand("plain") == ["plain"]
    assert len(validate.expand("node[001-128]")) == 128


@pytest.mark.parametrize("bad", ["node[3-1]", "node[a-b]", "node[1-2", "node1-2]", "n[1,1]", "n[0-200000]"])
def test_bad_ranges_are_clear_errors(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        validate.expand(bad)
    assert bad in str(info.value) or "duplicate" in str(info.value) or "at most" in str(info.value)


def test_macs_are_canonical() -> None:
    assert validate.mac("52-54-00-AB-CD-EF") == "52:54:00:ab:cd:ef"
    assert validate.mac("525400abcdef") == "52:54:00:ab:cd:ef"
    for bad in ("52:54:00:ab:cd", "zz:54:00:ab:cd:ef", "52:54-00:ab:cd:ef", ""):
        with pytest.raises(UsageError, match="invalid MAC"):
            validate.mac(bad)


def test_names_addresses_and_ranges() -> None:
    net = validate.cidr("10.0.0.0/24")
    assert validate.ip_range("10.0.0.10-10.0.0.20", net) == ("10.0.0.10", "10.0.0.20")
    with pytest.raises(UsageError, match="not a host address"):
        validate.address("10.0.1.5", net)
    with pytest.raises(UsageError, match="ends before it starts"):
        validate.ip_range("10.0.0.20-10.0.0.10", net)
    with pytest.raises(UsageError, match="invalid network"):
        validate.cidr("10.0.0.1/24")
    with pytest.raises(UsageError, match="invalid node name"):
        validate.name("Node_1")
    with pytest.raises(UsageError, match="invalid root mode"):
        validate.root_mode("ramdisk")


def test_events_are_validated() -> None:
    event = parse({"stage": "download", "status": "progress", "progress": 0.5})
    assert event["progress"] == 0.5 and event["message"] == "" and event["details"] == {}
    for bad, why in [
        ({"stage": "nope", "status": "done"}, "stage"),
        ({"stage": "download", "status": "meh"}, "status"),
        ({"stage": "download", "status": "progress", "progress": 1.5}, "between 0 and 1"),
        ({"stage": "download", "status": "done", "duration": -1}, "between 0 and"),
        ({"stage": "download", "status": "done", "extra": 1}, "unknown event field"),
        ([1, 2], "JSON object"),
    ]:
        with pytest.raises(EventError, match=why):
            parse(bad)
