"""Simulated BMCs for the power tests and bench/power.py: OpenIPMI's `ipmi_sim`, one process per
BMC, each on its own UDP port of an address on this machine (IPMI over LAN, lanplus: RMCP+ with
cipher suite 3), with one admin user. Chassis power is kept in a file per BMC by a small
chassis-control program that ipmi_sim runs (its `chassis_control` hook), so `power on/off` really
change what `power status` says afterwards.

    with BmcSim(workdir, count=8, password="s3cret") as sim:
        sim.bmcs[0].address      # "127.0.0.1:19001"
        sim.power_of(0)          # "off"

Every process is stopped (by its PID) when the context ends.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ground import run as runmod
from ground.errors import SwarmbootError

# `ipmi_sim` calls the program as `PROG get power` (expects "power:0|1") and `PROG set power "1"`.
CHASSIS_CONTROL = """#!/bin/sh
state="$1"; shift
case "$1" in
  get) shift; for what in "$@"; do
         [ "$what" = power ] && echo "power:$(cat "$state" 2>/dev/null || echo 0)"
       done ;;
  set) shift; while [ $# -ge 2 ]; do
         [ "$1" = power ] && echo "$2" | tr -d '"' > "$state"; shift 2
       done ;;
esac
exit 0
"""
LAN_CONF = """name "{name}"
set_working_mc 0x20
  startlan 1
    addr {host} {port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid {guid}
  endlan
  chassis_control "{control} {state}"
  user 2 true "{user}" "{password}" admin 10 md5
"""
EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
"""


class BmcSimError(SwarmbootError):
    """The simulated BMCs did not start."""


@dataclass(frozen=True)
class SimBmc:
    index: int
    host: str
    port: int
    state_file: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class BmcSim:
    workdir: Path
    count: int
    user: str = "admin"
    password: str = "sim-password"
    host: str = "127.0.0.1"
    first_port: int = 0  # 0: free ports picked at start
    namespace_argv: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", NS): run them inside it
    sol: dict[int, str] = field(default_factory=dict)  # BMC index -> its serial port ("tcp:HOST:PORT")
    bmcs: list[SimBmc] = field(default_factory=list)
    _children: list[runmod.Child] = field(default_factory=list)

    def __enter__(self) -> BmcSim:
        runmod.require_tool("ipmi_sim")
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        control = self.workdir / "chassis-control"
        control.write_text(CHASSIS_CONTROL)
        control.chmod(0o755)
        emu = self.workdir / "bmc.emu"
        emu.write_text(EMU)
        ports = self._ports()
        for i, port in enumerate(ports):
            folder = self.workdir / f"bmc{i}"
            folder.mkdir(exist_ok=True)
            state = folder / "power"
            state.write_text("0\n")
            conf = folder / "lan.conf"
            conf.write_text(
                LAN_CONF.format(
                    name=f"sim{i}",
                    host=self.host,
                    port=port,
                    guid=f"{i:032x}",
                    control=control,
                    state=state,
                    user=self.user,
                    password=self.password,
                )
                + (f'  sol "{self.sol[i]}" 115200\n' if i in self.sol else "")
            )
            conf.chmod(0o600)
            argv = [
                *self.namespace_argv,
                "ipmi_sim",
                "-c",
                str(conf),
                "-f",
                str(emu),
                "-s",
                str(folder),
                "-n",
            ]
            log = open(folder / "ipmi_sim.log", "wb")  # noqa: SIM115
            self._children.append(runmod.spawn(argv, stdout=log, stderr=log))
            log.close()
            self.bmcs.append(SimBmc(i, self.host, port, state))
        self._wait_listening()

    def _ports(self) -> list[int]:
        if self.first_port:
            return [self.first_port + i for i in range(self.count)]
        ports: list[int] = []
        socks = []
        try:  # bound together, so no port is handed out twice
            for _ in range(self.count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((self.host if not self.namespace_argv else "127.0.0.1", 0))
                socks.append(sock)
                ports.append(sock.getsockname()[1])
        finally:
            for sock in socks:
                sock.close()
        return ports

    def _wait_listening(self, timeout: float = 30.0) -> None:
        """Until every simulator has bound its port (or exited: then the error shows its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [i for i, c in enumerate(self._children) if not c.running()]
            if dead:
                log = (self.workdir / f"bmc{dead[0]}" / "ipmi_sim.log").read_text(errors="replace")
                raise BmcSimError(f"ipmi_sim of simulated BMC {dead[0]} exited:\n{log[-2000:]}")
            if self.namespace_argv or self._all_bound():
                return
            time.sleep(0.1)
        raise BmcSimError(f"the {self.count} simulated BMCs did not bind their ports within {timeout:.0f} s")

    def _all_bound(self) -> bool:
        bound = set()
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            local = line.split()[1]
            bound.add(int(local.rsplit(":", 1)[1], 16))
        return all(b.port in bound for b in self.bmcs)

    def power_of(self, index: int) -> str:
        text = self.bmcs[index].state_file.read_text().strip()
        return "on" if text == "1" else "off"

    def set_power(self, index: int, on: bool) -> None:
        self.bmcs[index].state_file.write_text("1\n" if on else "0\n")

    def close(self) -> None:
        for child in self._children:
            with contextlib.suppress(OSError):
                child.stop(grace=2)
        self._children.clear()
