"""The virtual cluster: a network namespace with a bridge, the real `swarmboot serve` in it
(HTTP, tracker, seeder and dnsmasq for DHCP/TFTP on the bridge), and QEMU nodes on taps that
PXE-boot from it with QEMU's own iPXE ROMs (BIOS or OVMF UEFI).

    with Lab(LabSpec(home=Path("/var/lib/swarmboot-demo"), workdir=Path("/tmp/lab"))) as lab:
        lab.add_network()
        lab.cli("group", "add", "compute", "--image", "demo", "--console", LAB_CONSOLE)
        lab.cli("node", "add", "n1", "--mac", mac_for(1), "--group", "compute")
        lab.start_server()
        vm = lab.start_vm("n1", mac_for(1))
        rows = lab.wait_booted(["n1"], timeout=600)

Nothing leaves the namespace: it has no route out; the server listens on the bridge address only
(default 10.77.0.1:8080, seeder 10.77.0.1:6880), dnsmasq answers on the bridge only. Everything
is undone when the lab closes (QEMU, the server and its dnsmasq, taps, bridge, namespace), on
success, on an exception and on Ctrl-C. The inventory and images stay in `home`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground import run as runmod
from ground.config import Settings
from ground.errors import SwarmbootError
from lab.labswitch import LabSwitch
from lab.netns import Namespace, NetLab, parse_rate
from lab.nshttp import NamespaceHttp, NamespaceHttpError
from lab.server_process import ServerProcess, ServerProcessError, home_env, start_server, swarmboot_command
from lab.timeline import ConsoleTimeline
from lab.vm import Firmware, Vm, VmSpec

BRIDGE = "br0"
# The serial console last: it becomes /dev/console, where the agent and the rescue shell talk.
LAB_CONSOLE = "tty0 ttyS0,115200"
POLL_SECONDS = 0.5


class LabError(SwarmbootError):
    """The virtual cluster did not do what was expected (the message carries the evidence)."""


@dataclass(frozen=True)
class LabSpec:
    home: Path  # the server's SWARMBOOT_HOME: images, inventory
    workdir: Path  # consoles, QEMU and server logs
    subnet: str = "10.77.0.0/24"
    port: int = 8080
    server_rate: str = ""  # shape what the server sends into the lab, e.g. "100mbit" ("": no limit)
    log_level: str = "info"
    settings: tuple[tuple[str, str], ...] = ()  # server settings, (name, value): ("seed_idle_seconds", "120")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def server_ip(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def server_url(self) -> str:
        return f"http://{self.server_ip}:{self.port}"

    def host(self, n: int) -> str:
        return str(self.network.network_address + n)


@dataclass
class Lab:
    spec: LabSpec
    netlab: NetLab = field(default_factory=NetLab)
    ns: Namespace | None = None
    server: ServerProcess | None = None
    vms: dict[str, Vm] = field(default_factory=dict)
    timelines: dict[str, ConsoleTimeline] = field(default_factory=dict)
    _http: NamespaceHttp | None = None
    switch: LabSwitch | None = None
    _taps: int = 0
    _stop_observing: threading.Event = field(default_factory=threading.Event)
    _observer: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.netlab.__enter__()
        try:
            self.spec.workdir.mkdir(parents=True, exist_ok=True)
            self.spec.home.mkdir(parents=True, exist_ok=True)
            ns = self.netlab.namespace("lab")
            self.ns = ns
            self.netlab.bridge(ns, BRIDGE)
            self.netlab.address(ns, BRIDGE, f"{self.spec.server_ip}/{self.spec.network.prefixlen}")
            if self.spec.server_rate:
                self.set_server_rate(self.spec.server_rate)
            self._http = NamespaceHttp(ns.name)
            # Console markers are timed by a watcher of their own, whatever the caller waits on.
            self._observer = threading.Thread(target=self._observe_loop, name="lab-consoles", daemon=True)
            self._observer.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every VM, the server (and its dnsmasq), remove taps, bridge and namespace."""
        errors = []
        self._stop_observing.set()
        if self._observer is not None:
            self._observer.join(timeout=10)
        for vm in self.vms.values():
            try:
                vm.stop()
            except (SwarmbootError, OSError) as error:
                errors.append(f"VM {vm.spec.name}: {error}")
        try:
            self.stop_server()
        except (SwarmbootError, OSError) as error:
            errors.append(f"server: {error}")
        if self.switch is not None:
            try:
                self.switch.close()
            except (SwarmbootError, OSError) as error:
                errors.append(f"switch: {error}")
        if self._http is not None:
            self._http.close()
            self._http = None
        try:
            self.netlab.close()  # kills what is left in the namespace, then deletes it
        except SwarmbootError as error:
            errors.append(str(error))
        if errors:
            raise LabError("the lab could not remove everything:\n" + "\n".join(errors))

    @property
    def namespace(self) -> Namespace:
        if self.ns is None:
            raise LabError("the lab is not set up (use it as a context manager)")
        return self.ns

    # -- the network -----------------------------------------------------------------------------
    def set_server_rate(self, rate: str) -> None:
        """Limit what the server sends into the lab (its HTTP, web seed and seeder) to `rate`
        ('' removes the limit). Traffic between nodes does not pass there and is not limited."""
        ns = self.namespace
        if rate:
            self.netlab.shape(ns, BRIDGE, parse_rate(rate))
        else:
            runmod.run(["tc", "-n", ns.name, "qdisc", "del", "dev", BRIDGE, "root"], check=False, timeout=60)

    # -- the inventory (through the CLI, as an administrator would) ---------------------------------
    def server_env(self) -> dict[str, str]:
        """What the lab adds to a `swarmboot` command's environment (lab/server_process.py)."""
        env = {
            "SWARMBOOT_SEEDER_LISTEN": f"{self.spec.server_ip}:6880",
            "SWARMBOOT_LOG_LEVEL": self.spec.log_level,
        }
        if self.switch is not None:  # the switch sends LLDP every second: nodes wait for a frame
            env["SWARMBOOT_LLDP_WAIT"] = "5"
            env["SWARMBOOT_SNMP_TIMEOUT"] = "15"  # snmpsim is Python, on cores shared with QEMU
        env.update({f"SWARMBOOT_{name.upper()}": value for name, value in self.spec.settings})
        return env

    def env(self) -> dict[str, str]:
        return home_env(self.spec.home, **self.server_env())

    @property
    def settings(self) -> Settings:
        return Settings(home=self.spec.home, hooks_dir=Path(home_env(self.spec.home)["SWARMBOOT_HOOKS_DIR"]))

    def cli(self, *args: str, timeout: float = 1800) -> str:
        """Run `swarmboot ARGS…` against the lab's home; its output (CommandError if it fails)."""
        return runmod.run([*swarmboot_command(), *args], env=self.env(), timeout=timeout).stdout

    def add_network(self, name: str = "lab") -> None:
        spec = self.spec
        self.cli("network", "add", name, "--cidr", spec.subnet,
                 "--range", f"{spec.host(10)}-{spec.host(99)}",
                 "--dhcp-range", f"{spec.host(100)}-{spec.host(199)}")

    # -- the server ------------------------------------------------------------------------------
    def start_server(self, timeout: float = 90) -> str:
        """`swarmboot serve` inside the namespace on the bridge, with dnsmasq; returns its URL."""
        if self.server is not None:
            raise LabError("the lab's server is already running")
        try:
            self.server = start_server(
                self.spec.home,
                listen=f"{self.spec.server_ip}:{self.spec.port}",
                extra_args=("--dhcp-interface", BRIDGE),
                env=self.server_env(),
                namespace=self.namespace,
                log_path=self.server_log,
                timeout=timeout,
            )
        except ServerProcessError as error:
            raise LabError(str(error)) from None
        return self.server.url

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop(grace=15)
            self.server = None

    @property
    def server_log(self) -> Path:
        return self.spec.workdir / "serve.log"

    def server_tail(self, lines: int = 30) -> str:
        try:
            text = self.server_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join("  | " + line for line in text.splitlines()[-lines:])

    def healthy(self) -> bool:
        try:
            status, body = self.http().request(self.spec.server_url + "/healthz", timeout=2)
        except NamespaceHttpError:
            return False
        return status == 200 and body.strip() == b"ok"

    def http(self) -> NamespaceHttp:
        if self._http is None:
            raise LabError("the lab is not set up")
        return self._http

    def admin(self, path: str) -> Any:
        """GET /api/v1/admin/PATH from inside the lab, with the admin token."""
        token = (self.spec.home / "admin.token").read_text().strip()
        return self.http().json(f"{self.spec.server_url}/api/v1/admin/{path}",
                                headers={"Authorization": f"Bearer {token}"})

    # -- virtual nodes ---------------------------------------------------------------------------
    def start_vm(
        self,
        name: str,
        mac: str,
        firmware: Firmware = "bios",
        *,
        memory_mb: int = 2048,
        cpus: int = 1,
        deadline_s: float = 900.0,
        disks: tuple[Path, ...] = (),
        kernel: tuple[Path, Path, str] | None = None,
    ) -> Vm:
        """A QEMU node on a new tap on the bridge, PXE-booting (its console in the workdir); with
        `kernel` (vmlinuz, initrd, command line) QEMU boots those itself instead."""
        if name in self.vms:
            raise LabError(f"the lab already has a VM named {name}")
        ns = self.namespace
        self._taps += 1
        tap = self.tap_of(name)
        self.netlab.tap(ns, tap)
        self.netlab.attach(ns, tap, BRIDGE)
        spec = VmSpec(name=name, mac=mac, tap=tap, workdir=self.spec.workdir, firmware=firmware,
                      memory_mb=memory_mb, cpus=cpus, deadline_s=deadline_s, disks=disks, kernel=kernel)
        vm = Vm(spec, ns)
        self.vms[name] = vm
        self.timelines[name] = ConsoleTimeline()
        vm.start()
        return vm

    def tap_of(self, name: str) -> str:
        """The tap (the switch port, lab/labswitch.py) a node is plugged into: named after it."""
        tap = f"sbtap-{name}"
        return tap if len(tap) <= 15 else f"sbtap{self._taps}"

    def add_switch(self) -> LabSwitch:
        """Make the lab's bridge a managed switch (SNMP forwarding table, LLDP on every tap)."""
        self.switch = LabSwitch(self.namespace, self.spec.workdir, self.spec.server_ip, bridge=BRIDGE)
        self.switch.start()
        return self.switch

    def stop_vm(self, name: str) -> None:
        self.vms[name].stop()

    def power_cycle(self, name: str, disks: tuple[Path, ...] | None = None) -> Vm:
        """Power the node off and on again (same MAC, tap and firmware variables; `disks`: another
        set of disks, e.g. one pulled). Its console log starts anew."""
        vm = self.vms[name]
        vm.stop()
        if disks is not None:
            vm.spec.disks = disks
        self.timelines[name] = ConsoleTimeline()
        vm.start()
        return vm

    def observe(self) -> None:
        """Record the console markers every VM shows now (the lab's watcher does it every 0.5 s)."""
        now = time.monotonic()
        for name, vm in list(self.vms.items()):
            if vm.started:
                self.timelines[name].update(vm.console_text(), now - vm.started)

    def _observe_loop(self) -> None:
        while not self._stop_observing.wait(POLL_SECONDS):
            self.observe()

    # -- node status -----------------------------------------------------------------------------
    def status(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """What `swarmboot node status --json` shows (read from the inventory database)."""
        from server import events
        from server.catalog import Catalog
        from server.inventory.db import Database

        catalog = Catalog(self.settings.images_dir, "")
        catalog.refresh()
        db = Database.from_settings(self.settings, pool_size=2)
        try:
            return events.status(db, list(names) if names else None, catalog)
        finally:
            db.close()

    def wait_booted(
        self,
        names: list[str],
        timeout: float,
        on_tick: Callable[[list[dict[str, Any]]], None] | None = None,
        tick_seconds: float = 2.0,
    ) -> dict[str, dict[str, Any]]:
        """Wait until every node in `names` reported `booted`; LabError with each node's console
        tail and the server log's tail when one fails, its QEMU ends, or time runs out."""
        deadline = time.monotonic() + timeout
        last_tick = 0.0
        while True:
            rows = {row["name"]: row for row in self.status(names)}
            now = time.monotonic()
            for name in names:
                row = rows.get(name)
                if row and row["state"] == "booted" and name in self.vms:
                    self.timelines[name].mark("booted", now - self.vms[name].started)
            if on_tick is not None and now - last_tick >= tick_seconds:
                last_tick = now
                on_tick(list(rows.values()))
            if all(rows.get(n, {}).get("state") == "booted" for n in names):
                return rows
            failed = [n for n in names if rows.get(n, {}).get("state") == "failed"]
            ended = [n for n in names if n in self.vms and not self.vms[n].running()
                     and rows.get(n, {}).get("state") != "booted"]
            if failed or ended or now > deadline:
                why = (f"node(s) {', '.join(failed)} reported a failure" if failed
                       else f"QEMU of {', '.join(ended)} ended" if ended
                       else f"not every node booted within {timeout:.0f} s")
                raise LabError(why + "\n" + self.evidence(names, rows))
            time.sleep(POLL_SECONDS)

    def evidence(self, names: list[str], rows: dict[str, dict[str, Any]] | None = None) -> str:
        """Each node's state and console tail, and the server log's tail: for failure messages."""
        rows = rows if rows is not None else {row["name"]: row for row in self.status(names)}
        parts = []
        for name in names:
            row = rows.get(name, {})
            state = {k: row.get(k) for k in ("state", "stage", "status", "message")}
            parts.append(f"--- node {name}: {json.dumps(state)}")
            vm = self.vms.get(name)
            if vm is not None:
                tail = vm.console_text().splitlines()[-40:]
                parts.append("\n".join("  | " + line for line in tail) or "  (no console output)")
        parts.append("--- server log:\n" + self.server_tail())
        return "\n".join(parts)


def ssh_argv(key: Path, address: str, command: str, timeout: int = 15) -> list[str]:
    """ssh into a lab node (run it inside the lab's namespace) with a throw-away known_hosts."""
    return ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={timeout}", f"root@{address}", command]


def make_ssh_key(path: Path) -> Path:
    """An ed25519 key pair at `path` (private) and `path`.pub; returns the public key's path."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    runmod.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "swarmboot-lab", "-f", str(path)],
               timeout=30)
    return path.with_name(path.name + ".pub")
