"""A simulated managed switch for the switch-port tests and the lab: snmpsim (PyPI) answering SNMP
from a recorded walk (an .snmprec file) of the MIBs swarmboot reads, BRIDGE-MIB, Q-BRIDGE-MIB and
IF-MIB. `record()` writes that walk from a table of ports and learned MACs; the lab records it
from its real Linux bridge (`bridge fdb`), so the "switch" reports the MACs its taps really
learned. snmpsim re-reads a data file when its modification time changes (whole seconds: each
recording moves it forward by at least one second).

    with SwitchSim(workdir, community="lab") as sw:
        sw.record(ports={1: "sbtap1"}, fdb=[("52:54:00:5b:00:01", 1, 1)])
        sw.address   # "127.0.0.1:PORT" for `swarmboot switch set … --snmp-address`
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ground import run as runmod
from ground.errors import SwarmbootError

Q_FDB = "1.3.6.1.2.1.17.7.1.2.2.1"
D_FDB = "1.3.6.1.2.1.17.4.3.1"
BASE_PORT_IFINDEX = "1.3.6.1.2.1.17.1.4.1.2"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
LEARNED, SELF = 3, 4


class SwitchSimError(SwarmbootError):
    """The simulated switch did not start."""


def _mac_oid(mac: str) -> str:
    return ".".join(str(int(part, 16)) for part in mac.split(":"))


def snmprec(
    ports: dict[int, str],
    fdb: Iterable[tuple[str, int, int]],
    *,
    name: str = "simswitch",
    own_macs: Sequence[str] = (),
    q_bridge: bool = True,
) -> str:
    """The recorded walk: `ports` is {bridge port: ifName} (ifIndex = 100 + port, as on many
    switches, so the two numbers differ); `fdb` is (mac, bridge port, vlan); `own_macs` are the
    switch's own (status self)."""
    records: list[tuple[tuple[int, ...], str, str]] = []

    def add(oid: str, tag: str, value: str) -> None:
        records.append((tuple(int(x) for x in oid.split(".")), tag, value))

    add(SYS_DESCR, "4", f"swarmboot simulated switch {name}")
    add(SYS_NAME, "4", name)
    for port, ifname in ports.items():
        index = 100 + port
        add(f"{BASE_PORT_IFINDEX}.{port}", "2", str(index))
        add(f"{IF_DESCR}.{index}", "4", f"Simulated port {ifname}")
        add(f"{IF_NAME}.{index}", "4", ifname)
    entries = [(mac, port, vlan, LEARNED) for mac, port, vlan in fdb]
    entries += [(mac, 0, 1, SELF) for mac in own_macs]
    for mac, port, vlan, status in entries:
        if q_bridge:
            add(f"{Q_FDB}.2.{vlan}.{_mac_oid(mac)}", "2", str(port))
            add(f"{Q_FDB}.3.{vlan}.{_mac_oid(mac)}", "2", str(status))
        else:
            add(f"{D_FDB}.1.{_mac_oid(mac)}", "4x", mac.replace(":", ""))
            add(f"{D_FDB}.2.{_mac_oid(mac)}", "2", str(port))
            add(f"{D_FDB}.3.{_mac_oid(mac)}", "2", str(status))
    records.sort()
    return "".join(f"{'.'.join(map(str, oid))}|{tag}|{value}\n" for oid, tag, value in records)


@dataclass
class SwitchSim:
    workdir: Path
    community: str = "public"
    host: str = "127.0.0.1"
    port: int = 0
    namespace_argv: tuple[str, ...] = ()  # run snmpsim inside a namespace (the lab's)
    v3_user: str = ""
    v3_auth_key: str = ""
    v3_priv_key: str = ""
    _child: runmod.Child | None = None
    _mtime: int = field(default=0)
    _root: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def root(self) -> Path:
        """snmpsim refuses to run as root and drops to nobody: its data and index live in a
        directory of their own that nobody can read (the test's own folders are private)."""
        if self._root is None:
            import tempfile

            self._root = Path(tempfile.mkdtemp(prefix="swarmboot-switchsim-"))
            self._root.chmod(0o755)
            for sub in ("data", "cache"):
                (self._root / sub).mkdir(mode=0o755)
            if os.geteuid() == 0:
                import pwd

                nobody = pwd.getpwnam("nobody")
                os.chown(self._root / "cache", nobody.pw_uid, nobody.pw_gid)
        return self._root

    @property
    def data_file(self) -> Path:
        return self.root / "data" / f"{self.community}.snmprec"

    def __enter__(self) -> SwitchSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.data_file.exists():
            self.record({}, [])
        if not self.port:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        python = sys.executable
        argv = [
            *self.namespace_argv,
            python,
            "-c",
            "import sys; from snmpsim.commands.responder import main; sys.argv[0] = 'snmpsim'; "
            "sys.exit(main())",
            "--data-dir",
            str(self.root / "data"),
            "--cache-dir",
            str(self.root / "cache"),
            "--agent-udpv4-endpoint",
            self.address,
            "--logging-method",
            "stderr",
            "--log-level",
            "error",
        ]
        if os.geteuid() == 0:
            argv += ["--process-user", "nobody", "--process-group", "nogroup"]
        if self.v3_user:
            argv += [
                "--v3-user",
                self.v3_user,
                "--v3-auth-key",
                self.v3_auth_key,
                "--v3-auth-proto",
                "SHA",
                "--v3-priv-key",
                self.v3_priv_key,
                "--v3-priv-proto",
                "AES",
            ]
        log = open(self.workdir / "snmpsim.log", "wb")  # noqa: SIM115
        self._child = runmod.spawn(argv, stdout=log, stderr=log)
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        from server.switches.snmp import SnmpError, forwarding_table

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._child is not None and not self._child.running():
                raise SwitchSimError("snmpsim exited:\n" + (self.workdir / "snmpsim.log").read_text()[-2000:])
            if self.namespace_argv:  # ask from inside its namespace
                probe = (
                    "import json, sys; from server.switches.snmp import forwarding_table; "
                    "forwarding_table(json.loads(sys.argv[1]), '', timeout=1.0)"
                )
                import json

                done = runmod.run(
                    [*self.namespace_argv, sys.executable, "-c", probe, json.dumps(self.settings())],
                    check=False,
                    timeout=30,
                )
                if done.returncode == 0:
                    return
                time.sleep(0.2)
                continue
            try:
                forwarding_table(self.settings(), "", timeout=1.0)
                return
            except SnmpError:
                time.sleep(0.2)
        raise SwitchSimError(f"snmpsim did not answer on {self.address} within {timeout:.0f} s")

    def settings(self) -> dict[str, str]:
        """The switch's `snmp` settings in the inventory's format."""
        if self.v3_user:
            return {
                "version": "3",
                "address": self.address,
                "user": self.v3_user,
                "auth_protocol": "sha",
                "auth_key": self.v3_auth_key,
                "priv_protocol": "aes",
                "priv_key": self.v3_priv_key,
                "context": self.community,
            }  # snmpsim picks the data file by the v3 context name
        return {"version": "2c", "address": self.address, "community": self.community}

    def record(self, ports: dict[int, str], fdb: Iterable[tuple[str, int, int]], **kwargs: object) -> None:
        """Write the walk snmpsim answers from (atomically, with a later modification time)."""
        text = snmprec(ports, fdb, **kwargs)  # type: ignore[arg-type]
        tmp = self.data_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        self._mtime = max(int(time.time()), self._mtime + 1)
        os.utime(tmp, (self._mtime, self._mtime))
        tmp.rename(self.data_file)

    def close(self) -> None:
        if self._child is not None:
            with contextlib.suppress(OSError):
                self._child.stop(grace=3)
            self._child = None
        if self._root is not None:
            import shutil

            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
