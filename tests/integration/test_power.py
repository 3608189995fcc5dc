"""`swarmboot power` against real simulators: OpenIPMI's ipmi_sim (several BMCs, IPMI over LAN
lanplus, with pyghmi and with ipmitool), sushy-tools' Redfish emulator (its fake driver, basic
authentication), and Wake-on-LAN's magic packet captured in a network namespace. Credentials
never appear in what the command prints or logs, nor on a command line."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from lab.bmcsim import BmcSim
from server.power.base import Action, Target
from server.power.ipmitool import ipmitool_argv
from swarmboot.cli.power import ProgressBar
from tests.helpers.server import cli, wait_for

PASSWORD = "Pw-7f3k9-not-shown"
REDFISH_PASSWORD = "Rf-2q8x1-not-shown"


def power(home: Path, *args: str, **env: str) -> tuple[int, dict, str]:
    result = cli(home, "-v", "power", *args, "--json", "--timeout", "4", check=False, **env)
    assert (
        PASSWORD not in result.stdout + result.stderr
        and REDFISH_PASSWORD not in result.stdout + result.stderr
    )
    return result.returncode, json.loads(result.stdout), result.stderr


def by_node(report: dict) -> dict[str, dict]:
    return {r["node"]: r for r in report["results"]}


@pytest.fixture
def bmcs(tmp_path: Path):
    # and a "BMC" that never answers: a bound UDP socket that reads nothing (no ICMP refusal)
    with (
        BmcSim(tmp_path / "bmcs", count=4, password=PASSWORD) as sim,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent,
    ):
        silent.bind(("127.0.0.1", 0))
        sim.silent = f"127.0.0.1:{silent.getsockname()[1]}"  # type: ignore[attr-defined]
        yield sim


def _ipmi_nodes(home: Path, sim: BmcSim) -> None:
    cli(home, "group", "add", "rack1", "--image", "compute")
    for i, bmc in enumerate(sim.bmcs):
        cli(
            home,
            "node",
            "add",
            f"n{i + 1}",
            "--group",
            "rack1",
            "--bmc-address",
            bmc.address,
            "--bmc-user",
            "admin",
            "--bmc-password",
            PASSWORD if i < 3 else "wrong-password",
        )
    cli(
        home,
        "node",
        "add",
        "dead",
        "--group",
        "rack1",
        "--bmc-address",
        sim.silent,
        "--bmc-user",
        "admin",
        "--bmc-password",
        PASSWORD,
    )


@pytest.mark.parametrize("client", ["pyghmi", "ipmitool"])
def test_ipmi_power_on_off_cycle_reset_status_on_several_bmcs(
    swarmboot_home: Path, bmcs: BmcSim, client: str
) -> None:
    home = swarmboot_home
    _ipmi_nodes(home, bmcs)
    env = {"SWARMBOOT_IPMI_CLIENT": client}
    code, report, _ = power(home, "on", "n[1-2]", **env)
    assert code == 0 and [r["power"] for r in report["results"]] == ["on", "on"]
    assert [bmcs.power_of(i) for i in range(3)] == ["on", "on", "off"]  # the simulators' own state
    code, report, _ = power(home, "status", "--group", "rack1", **env)
    rows = by_node(report)
    assert code == 1  # some failed
    assert {n: rows[n]["power"] for n in ("n1", "n2", "n3")} == {"n1": "on", "n2": "on", "n3": "off"}
    assert not rows["n4"]["ok"] and rows["n4"]["message"]  # wrong password: said why
    assert not rows["dead"]["ok"]
    code, _, _ = power(home, "off", "n1", **env)
    assert code == 0 and bmcs.power_of(0) == "off"
    assert power(home, "reset", "n2", **env)[0] == 0
    assert power(home, "cycle", "n2", **env)[0] == 0
    assert by_node(power(home, "status", "n[1-3]", **env)[1])["n1"]["power"] == "off"


def test_the_summary_names_failures_and_the_progress_bar_moves(swarmboot_home: Path, bmcs: BmcSim) -> None:
    home = swarmboot_home
    _ipmi_nodes(home, bmcs)
    result = cli(home, "power", "status", "n[1-4]", "dead", "--timeout", "3", check=False)
    out = result.stdout
    assert result.returncode == 1 and "5 node(s) in" in out and "3 ok, 2 failed" in out
    assert "failures:" in out and "dead" in out.split("failures:")[1] and "n4" in out.split("failures:")[1]
    assert "no answer within 3 s" in out
    assert "[##############################] 5/5 (2 failed)" in result.stderr
    assert PASSWORD not in out + result.stderr


def test_progress_bar_redraws_one_line_on_a_terminal() -> None:
    class Tty:
        text = ""

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    tty = Tty()
    bar = ProgressBar("status", tty)
    bar(1, 0, 4)
    time.sleep(0.11)
    bar(3, 1, 4)
    bar(4, 1, 4)
    lines = tty.text.split("\r")[1:]
    assert len(lines) == 3 and "1/4 (0 failed)" in lines[0] and "3/4 (1 failed)" in lines[1]
    assert "[##############################] 4/4 (1 failed)" in lines[2] and lines[2].endswith(" s\n")
    assert all("\n" not in line for line in lines[:2])  # redrawn in place until the end


def test_ipmitool_gets_the_password_in_its_environment_not_its_command_line() -> None:
    argv = ipmitool_argv(Target("n1", "ipmi", "10.0.0.7:6230", "admin", PASSWORD), Action.STATUS, 10)
    assert PASSWORD not in " ".join(argv) and "-E" in argv and argv[argv.index("-p") + 1] == "6230"
    assert PASSWORD not in repr(Target("n1", "ipmi", password=PASSWORD))


SUSHY_CONFIG = """
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_AUTH_FILE = {auth!r}
SUSHY_EMULATOR_FAKE_SYSTEMS = [
    {{"uuid": "{a}", "name": "node-a", "power_state": "Off", "nics": [{{"mac": "52:54:00:0f:00:01"}}]}},
    {{"uuid": "{b}", "name": "node-b", "power_state": "On", "nics": [{{"mac": "52:54:00:0f:00:02"}}]}},
]
"""
UUID_A, UUID_B = "27946b59-9e44-4fa7-8e91-f3527a1ef094", "0b2b7a4b-2f1e-4a3f-9a31-3d3c8f2a0c11"


@pytest.fixture
def redfish(tmp_path: Path):
    import bcrypt

    from ground import run as runmod

    auth = tmp_path / "htpasswd"
    auth.write_text(
        "root:" + bcrypt.hashpw(REDFISH_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n"
    )
    config = tmp_path / "sushy.conf"
    config.write_text(SUSHY_CONFIG.format(auth=str(auth), a=UUID_A, b=UUID_B))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emulator = Path(sys.executable).parent / "sushy-emulator"
    log = open(tmp_path / "sushy.log", "wb")  # noqa: SIM115
    with runmod.spawn(
        [str(emulator), "--config", str(config), "--fake", "-i", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
    ):
        import requests

        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/redfish/v1/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        def systems() -> bool:  # the fake driver builds its systems on first use: once, before the
            try:  # test's concurrent requests (one of them got an HTTP 500 from that race in CI)
                answer = requests.get(f"http://127.0.0.1:{port}/redfish/v1/Systems", timeout=5,
                                      auth=("root", REDFISH_PASSWORD))
            except requests.RequestException:
                return False
            return answer.status_code == 200

        wait_for(up, 30, what="sushy-emulator")
        wait_for(systems, 30, what="sushy-emulator's systems")
        yield f"http://127.0.0.1:{port}"


def test_redfish_against_sushy_tools_fake_driver(swarmboot_home: Path, redfish: str) -> None:
    home = swarmboot_home
    cli(home, "group", "add", "rf", "--image", "compute", "--power", "redfish")
    for name, uuid in (("ra", UUID_A), ("rb", UUID_B)):
        cli(
            home,
            "node",
            "add",
            name,
            "--group",
            "rf",
            "--bmc-address",
            f"{redfish}/redfish/v1/Systems/{uuid}",
            "--bmc-user",
            "root",
            "--bmc-password",
            REDFISH_PASSWORD,
        )
    cli(
        home,
        "node",
        "add",
        "rbad",
        "--group",
        "rf",
        "--bmc-address",
        f"{redfish}/redfish/v1/Systems/{UUID_A}",
        "--bmc-user",
        "root",
        "--bmc-password",
        "wrong",
    )
    cli(
        home,
        "node",
        "add",
        "rwhich",
        "--group",
        "rf",
        "--bmc-address",
        redfish,
        "--bmc-user",
        "root",
        "--bmc-password",
        REDFISH_PASSWORD,
    )
    _, report, _ = power(home, "status", "--group", "rf")
    rows = by_node(report)
    assert (rows["ra"]["power"], rows["rb"]["power"]) == ("off", "on") and rows["ra"]["method"] == "redfish"
    assert "refused the credentials (HTTP 401)" in rows["rbad"]["message"]
    assert "has 2 systems: say which one" in rows["rwhich"]["message"]
    assert power(home, "on", "ra")[0] == 0 and power(home, "reset", "rb")[0] == 0
    # the fake driver applies a change after 1-11 s, as hardware would
    wait_for(
        lambda: by_node(power(home, "status", "ra")[1])["ra"]["power"] == "on",
        20,
        interval=1,
        what="node ra to be on",
    )
    assert power(home, "off", "ra")[0] == 0
    wait_for(
        lambda: by_node(power(home, "status", "ra")[1])["ra"]["power"] == "off",
        20,
        interval=1,
        what="node ra to be off",
    )


RECEIVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sock.bind(("0.0.0.0", 9))
sock.settimeout(30)
print("ready", flush=True)
data, peer = sock.recvfrom(2048)
print(data.hex(), peer[0], flush=True)
"""


@pytest.mark.root
def test_wake_on_lan_magic_packet_captured_in_a_namespace(swarmboot_home: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces)")
    from lab.netns import NetLab
    from lab.server_process import home_env, swarmboot_command

    home = swarmboot_home
    mac = "52:54:00:0a:0b:0c"
    cli(home, "network", "add", "wolnet", "--cidr", "10.99.0.0/24")
    cli(home, "group", "add", "wol", "--image", "compute", "--power", "wol", "--network", "wolnet")
    cli(home, "node", "add", "w1", "--group", "wol", "--mac", mac)
    (tmp_path / "receiver.py").write_text(RECEIVER)
    with NetLab() as net:
        head, node = net.namespace("head"), net.namespace("wol")
        net.veth(head, "eth0", node, "eth0")
        net.address(head, "eth0", "10.99.0.1/24")
        net.address(node, "eth0", "10.99.0.50/24")
        out = tmp_path / "captured.txt"
        with node.spawn([sys.executable, str(tmp_path / "receiver.py")], stdout=open(out, "wb")) as receiver:
            wait_for(lambda: "ready" in out.read_text(), 20, what="the receiver")
            result = head.run(
                [*swarmboot_command(), "power", "on", "w1", "--json"],
                env=home_env(home),
                timeout=60,
                check=False,
            )
            receiver.wait(timeout=30)
        off = head.run(
            [*swarmboot_command(), "power", "off", "w1", "--json"],
            env=home_env(home),
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    payload, sender = out.read_text().split()[1:3]
    assert bytes.fromhex(payload) == b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) * 16
    assert sender == "10.99.0.1"
    assert "10.99.0.255:9" in json.loads(result.stdout)["results"][0]["message"]
    refused = json.loads(off.stdout)["results"][0]
    assert off.returncode == 1 and "can only power on" in refused["message"]


def test_node_console_over_ipmi_serial_over_lan(swarmboot_home: Path, tmp_path: Path) -> None:
    """`swarmboot node console` attaches a terminal to ipmi_sim's SOL, whose serial port is a TCP
    fake here that echoes what it gets; `~.` ends it."""
    import shlex
    import subprocess
    import threading

    from lab.server_process import home_env, swarmboot_command

    serial = socket.socket()
    serial.bind(("127.0.0.1", 0))
    serial.listen(1)
    serial.settimeout(30)

    def echo() -> None:
        with contextlib.suppress(OSError):
            conn, _ = serial.accept()
            with conn:
                conn.settimeout(30)
                while data := conn.recv(100):
                    conn.sendall(b"echo:" + data)

    threading.Thread(target=echo, daemon=True).start()
    sol = {0: f"tcp:127.0.0.1:{serial.getsockname()[1]}"}
    with BmcSim(tmp_path / "bmcs", count=1, password=PASSWORD, sol=sol) as sim:
        cli(swarmboot_home, "group", "add", "rack1", "--image", "compute")
        cli(swarmboot_home, "node", "add", "c1", "--group", "rack1", "--bmc-address", sim.bmcs[0].address,
            "--bmc-user", "admin", "--bmc-password", PASSWORD)
        command = shlex.join([*swarmboot_command(), "node", "console", "c1"])
        out = tmp_path / "console.out"
        with open(out, "wb") as sink:
            proc = subprocess.Popen(["script", "-qec", command, "/dev/null"], stdin=subprocess.PIPE,
                                    stdout=sink, stderr=subprocess.STDOUT, env=home_env(swarmboot_home))
            assert proc.stdin is not None
            wait_for(lambda: b"SOL Session operational" in out.read_bytes(), 30, what="the SOL session")
            proc.stdin.write(b"ping-42\r")
            proc.stdin.flush()
            wait_for(lambda: b"echo:ping-42" in out.read_bytes(), 30, what="the echo")
            proc.stdin.write(b"~.")
            proc.stdin.flush()
            proc.wait(timeout=30)
            proc.stdin.close()
    serial.close()
    text = out.read_text(errors="replace")
    assert proc.returncode == 0, text
    assert "SOL Session operational" in text and "echo:ping-42" in text, text
    assert PASSWORD not in text
