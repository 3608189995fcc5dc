"""Kernel command line parsing: good and bad arguments, and no parsing at import."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ground.contract.cmdline import AgentArgs, CmdlineError, boot_arguments, parse_cmdline, read_cmdline

GOOD = (
    "BOOT_IMAGE=vmlinuz root=swarmboot ip=dhcp rd.neednet=1 console=ttyS0,115200 "
    "swarmboot.server=http://10.0.0.1:8080,http://10.0.0.2:8080/ swarmboot.node=n001 "
    "swarmboot.mac=52:54:00:AB:CD:EF quiet"
)


def test_a_full_command_line() -> None:
    args = parse_cmdline(GOOD)
    assert args == AgentArgs(
        servers=("http://10.0.0.1:8080", "http://10.0.0.2:8080"),
        node="n001",
        mac="52:54:00:ab:cd:ef",
        root="swarmboot",
    )


def test_flags_and_timeouts() -> None:
    args = parse_cmdline(
        "root=swarmboot swarmboot.server=http://s swarmboot.mac=52-54-00-00-00-01 swarmboot.service=1 "
        "swarmboot.break=download swarmboot.debug swarmboot.plan_timeout=15 swarmboot.rescue_timeout=60"
    )
    assert args.mac == "52:54:00:00:00:01"
    assert args.service and args.debug
    assert args.break_at == "download"
    assert (args.plan_timeout, args.rescue_timeout) == (15.0, 60.0)
    assert parse_cmdline("swarmboot.server=http://s swarmboot.node=a swarmboot.service=0").service is False


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("root=swarmboot swarmboot.node=n1", "swarmboot.server=URL is missing"),
        ("swarmboot.server= swarmboot.node=n1", "swarmboot.server=URL is missing"),
        ("swarmboot.server=ftp://x swarmboot.node=n1", "not an http:// or https:// URL"),
        ("swarmboot.server=http://x", "neither swarmboot.node=NAME nor swarmboot.mac=MAC"),
        ("swarmboot.server=http://x swarmboot.mac=52:54:00:zz:00:01", "is not a MAC address"),
        ("swarmboot.server=http://x swarmboot.node=-bad", "not a valid node name"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.break=lunch", "is not a stage"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.break=cmdline", "is not a stage"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.service=maybe", "must be 1 or 0"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.plan_timeout=soon", "number of seconds"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.plan_timeout=-1", "between 0 and 86400"),
        ("swarmboot.server=http://[ swarmboot.node=n1", "'http://[' is not a valid URL"),
        ("swarmboot.server=http://x:port swarmboot.node=n1", "is not a valid URL"),
        ("swarmboot.server=http:// swarmboot.node=n1", "not an http:// or https:// URL"),
        ("swarmboot.server=http://x swarmboot.node=n1 swarmboot.rescue_timeout=nan", "between 0 and 86400"),
    ],
)
def test_bad_arguments_are_named(text: str, complaint: str) -> None:
    with pytest.raises(CmdlineError) as info:
        parse_cmdline(text)
    assert complaint in str(info.value)
    assert "kernel arguments" in info.value.hint


def test_an_unknown_argument_is_a_warning_and_the_boot_goes_on() -> None:
    args = parse_cmdline(
        "swarmboot.server=http://x swarmboot.node=n1 swarmboot.nod=n2 swarmboot.future=abc swarmboot.nod=n3"
    )
    assert args.node == "n1"
    assert len(args.warnings) == 2  # one per unknown key, however often it is given
    assert "unknown kernel argument 'swarmboot.nod' ignored" in args.warnings[0]
    assert "'swarmboot.future'" in args.warnings[1] and "server" in args.warnings[1]
    assert parse_cmdline(GOOD).warnings == ()


def test_the_server_renders_what_the_agent_parses() -> None:
    rendered = " ".join(boot_arguments("http://10.0.0.1:8080", "n7", "52:54:00:00:00:07", service=True))
    args = parse_cmdline(rendered + " ip=dhcp")
    assert (args.servers, args.node, args.mac, args.service, args.root) == (
        ("http://10.0.0.1:8080",), "n7", "52:54:00:00:00:07", True, "swarmboot"
    )
    assert args.warnings == ()


def test_ipxes_address_is_set_without_dhcp_unless_empty_bad_or_the_node_has_an_ip_of_its_own() -> None:
    rendered = " ".join(boot_arguments("http://10.0.0.1:8080", "n7", "52:54:00:00:00:07", ipxe_address=True))
    assert "swarmboot.ip=${netX/ip}:${netX/netmask}:${netX/gateway}:${netX/dns}" in rendered
    expanded = rendered.replace("${netX/ip}", "10.0.0.17").replace("${netX/netmask}", "255.255.255.0")
    args = parse_cmdline(expanded.replace("${netX/gateway}", "10.0.0.1").replace("${netX/dns}", ""))
    assert args.address is not None and args.warnings == ()
    address = args.address
    assert (str(address.interface), address.gateway, address.dns) == ("10.0.0.17/24", "10.0.0.1", "")
    # iPXE had no address (all empty): dracut's DHCP, as the initramfs's hook decided too
    empty = rendered.replace("${netX/ip}", "").replace("${netX/netmask}", "")
    assert parse_cmdline(empty.replace("${netX/gateway}", "").replace("${netX/dns}", "")).address is None
    # a bad one: a warning, and DHCP
    bad = parse_cmdline("swarmboot.server=http://x swarmboot.node=n1 swarmboot.ip=10.0.0.300:255.255.255.0::")
    assert bad.address is None and "swarmboot.ip='10.0.0.300:255.255.255.0::'" in bad.warnings[0]
    assert "dracut's DHCP instead" in bad.warnings[0]
    # an ip= of the node's own (its kernel_args) wins: dracut sets the NIC up
    own = parse_cmdline("swarmboot.server=http://x swarmboot.node=n1 swarmboot.ip=10.0.0.17:255.255.255.0:: "
                        "ip=10.0.0.99::10.0.0.1:255.255.255.0::eth1:none")
    assert own.address is None and own.warnings == ()


def test_read_from_a_file_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "cmdline").write_text(GOOD + "\n")
    assert read_cmdline(tmp_path / "cmdline").node == "n001"
    with pytest.raises(CmdlineError, match="cannot read the kernel command line"):
        read_cmdline(tmp_path / "missing")


def test_importing_the_agent_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = open

    def spy(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    for name in [m for m in sys.modules if m == "bootagent" or m.startswith("bootagent.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr("builtins.open", spy)
    importlib.import_module("bootagent.main")
    assert not [f for f in opened if f.startswith(("/proc", "/sys", "/dev"))]
    assert "libtorrent" not in sys.modules or "bootagent.download" in sys.modules
