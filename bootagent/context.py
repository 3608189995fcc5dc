"""What the stages share: the paths they work on (injectable, so tests run on the host against
temporary directories), the console, and the boot's state as it grows stage by stage."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bootagent.disk.install import DiskInstall
    from bootagent.download import ImageDownload
    from bootagent.mounts import MountStack
    from bootagent.network import BootInterface
    from bootagent.report import Reporter
    from bootagent.rescue import Rescue
    from bootagent.server import ServerClient
    from ground.contract.cmdline import AgentArgs
    from ground.contract.plan import BootPlan


@dataclass(frozen=True)
class Paths:
    """Everything the agent touches outside its own bundle."""

    cmdline: Path = Path("/proc/cmdline")
    sysroot: Path = Path("/sysroot")
    console: Path = Path("/dev/console")
    run_dir: Path = Path("/run/swarmboot")  # survives switch_root (dracut moves /run)
    hostname: Path = Path("/proc/sys/kernel/hostname")  # the plan's host name (tests: a file)
    nfs_client_identifier: Path = Path("/sys/fs/nfs/net/nfs_client/identifier")  # bootagent/nfs.py

    @property
    def image_dir(self) -> Path:
        """Where the downloaded image file lives (seeded from here, loop-mounted from here)."""
        return self.run_dir / "image"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "agent.log"

    @property
    def mounts_dir(self) -> Path:
        return self.run_dir / "mnt"


@dataclass(frozen=True)
class AgentConfig:
    """Knobs that are not on the kernel command line (tests and the benchmark change them)."""

    listen_interfaces: str = "0.0.0.0:6881"
    network_timeout: float = 120.0
    max_attempts: int = 3
    seed_after: bool = True  # start the seeding process after the download
    progress_every: float = 2.0  # seconds between progress events
    lldp: bool = True  # listen for LLDP frames on the boot NIC (needs CAP_NET_RAW)
    boot_files_while_booting: bool = True  # serve the boot files from the initramfs (bootagent/boot_files.py)


class Console:
    """Messages for the person at the node: written to the console device and to the log file.

    The systemd-less dracut initramfs runs hooks with the console as their output, but the agent
    writes to the console device itself so messages are seen whatever runs it.
    """

    def __init__(self, paths: Paths, debug: bool = False, echo: TextIO | None = None) -> None:
        self.paths = paths
        self.debug_enabled = debug
        self.echo = echo
        self.started = time.monotonic()

    def _write(self, text: str, to_console: bool = True) -> None:
        stamp = f"[{time.monotonic() - self.started:7.2f}] "
        lines = "".join(stamp + line + "\n" for line in text.splitlines() or [""])
        try:
            self.paths.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.paths.log_file, "a") as log:
                log.write(lines)
        except OSError:
            pass  # the log is a convenience; the console is what matters
        if not to_console:
            return
        try:
            with open(self.paths.console, "a") as console:
                console.write(lines)
        except OSError:
            sys.stderr.write(lines)
        if self.echo is not None:
            self.echo.write(lines)

    def info(self, text: str) -> None:
        self._write("swarmboot: " + text)

    def debug(self, text: str) -> None:
        self._write("swarmboot: " + text, to_console=self.debug_enabled)

    def block(self, text: str) -> None:
        """A multi-line message (failures, script output), shown as it is."""
        self._write(text)


@dataclass(frozen=True)
class Failure:
    stage: str
    message: str


@dataclass
class BootContext:
    """The boot's state. Stages read what earlier stages set and add their own results."""

    paths: Paths
    console: Console
    rescue: Rescue
    config: AgentConfig = field(default_factory=AgentConfig)
    args: AgentArgs | None = None
    reporter: Reporter | None = None
    server: str = ""  # the server URL that answered last
    interface: BootInterface | None = None
    plan: BootPlan | None = None
    image_file: Path | None = None
    mounts: MountStack | None = None
    seeder_pid: int | None = None
    preload: Any = None  # the root mode's modprobe, started after the plan (bootagent/roots.py)
    carry_ahead: Any = None  # the bundle carried for the seeding after boot (bootagent/seed_handover.py)
    boot_files_pid: int | None = None  # `swarmboot-agent boot-files`, serving while the node boots
    client: ServerClient | None = None  # talks to the servers (made by the plan stage)
    download: ImageDownload | None = None  # the live download while the download stage runs
    disk: DiskInstall | None = None  # root mode disk: the install's state (bootagent/disk/install.py)
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    lldp: Any = None  # bootagent.lldp.LldpListener, opened by the cmdline stage
    warnings: list[str] = field(default_factory=list)  # shown on the console and in the report
    extra_env: dict[str, str] = field(default_factory=dict)  # added by stages (SWARMBOOT_DISKS)

    def require_plan(self) -> BootPlan:
        if self.plan is None:
            raise RuntimeError("stage needs the plan, but the plan stage did not run")
        return self.plan

    def require_args(self) -> AgentArgs:
        if self.args is None:
            raise RuntimeError("stage needs the command line, but the cmdline stage did not run")
        return self.args

    def environment(self) -> dict[str, str]:
        """The environment scripts (pre/part/post) and the rescue shell get."""
        env: dict[str, str] = {
            "SYSROOT": str(self.paths.sysroot),
            "SWARMBOOT_RUN_DIR": str(self.paths.run_dir),
        }
        if self.args is not None:
            env["SWARMBOOT_SERVERS"] = ",".join(self.args.servers)
            env["SWARMBOOT_NODE"] = self.args.node
            env["SWARMBOOT_MAC"] = self.args.mac
        if self.server:
            env["SWARMBOOT_SERVER"] = self.server
        if self.interface is not None:
            env["SWARMBOOT_BOOT_IFACE"] = self.interface.name
            env["SWARMBOOT_BOOT_MAC"] = self.interface.mac
            env["SWARMBOOT_ADDRESSES"] = " ".join(self.interface.addresses)
            if self.interface.addresses:
                env["SWARMBOOT_ADDRESS"] = self.interface.addresses[0].split("/")[0]
        if self.plan is not None:
            plan = self.plan
            env.update(
                {
                    "SWARMBOOT_NODE": plan.node.name,
                    "SWARMBOOT_HOSTNAME": plan.node.hostname,
                    "SWARMBOOT_GROUP": plan.node.group,
                    "SWARMBOOT_DOMAIN": plan.node.domain,
                    "SWARMBOOT_IMAGE": plan.image.name,
                    "SWARMBOOT_IMAGE_VERSION": str(plan.image.version),
                    "SWARMBOOT_IMAGE_FORMAT": plan.image.format,
                    "SWARMBOOT_ROOT_MODE": plan.root.mode,
                }
            )
        if self.image_file is not None:
            env["SWARMBOOT_IMAGE_FILE"] = str(self.image_file)
        env.update(self.extra_env)
        env["PATH"] = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        return env
