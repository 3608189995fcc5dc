"""Virtual nodes: QEMU (TCG) machines that PXE-boot from a tap on the lab's bridge (or, for a
benchmark, boot a kernel and initramfs directly with no network).

Each node's serial console goes to a UNIX socket (so a test can type into it) and is logged to
a file (so a test can read what it printed). QEMU always runs under a deadline and with
-no-reboot, so a failed boot ends instead of looping. Firmware: SeaBIOS (QEMU's iPXE ROM does
PXE) or OVMF (UEFI; its iPXE EFI ROM does PXE).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ground import run as runmod
from ground.errors import SwarmbootError
from lab.netns import Namespace

Firmware = Literal["bios", "uefi"]
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]")


class VmError(SwarmbootError):
    """A virtual node did not do what was expected in time."""


@dataclass
class VmSpec:
    name: str
    mac: str
    tap: str
    workdir: Path
    firmware: Firmware = "bios"
    memory_mb: int = 2048
    cpus: int = 1
    deadline_s: float = 600.0  # QEMU is killed after this long, whatever happens
    extra_args: tuple[str, ...] = ()
    # raw disk images (virtio): the firmware tries the network first, then the disks in order
    disks: tuple[Path, ...] = ()
    # (vmlinuz, initrd, command line): QEMU boots them itself (-kernel), no firmware boot order
    kernel: tuple[Path, Path, str] | None = None


@dataclass(frozen=True)
class NoNetwork:
    """Where a VM without a tap runs: this process's own namespace, with no NIC at all."""

    def spawn(self, argv: list[str], **kwargs: object) -> runmod.Child:
        return runmod.spawn(argv, **kwargs)  # type: ignore[arg-type]


@dataclass
class Vm:
    spec: VmSpec
    netns: Namespace | NoNetwork
    proc: runmod.Child | None = None
    started: float = 0.0
    _console: socket.socket | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.spec.workdir / f"{self.spec.name}.console.log"

    @property
    def socket_path(self) -> Path:
        return self.spec.workdir / f"{self.spec.name}.console.sock"

    def argv(self) -> list[str]:
        spec = self.spec
        console = f"socket,id=console,path={self.socket_path},server=on,wait=off,logfile={self.log_path}"
        args = [
            "timeout", "--kill-after=10", str(int(spec.deadline_s)),
            "qemu-system-x86_64", "-accel", "tcg", "-m", str(spec.memory_mb), "-smp", str(spec.cpus),
            "-name", spec.name, "-nographic", "-no-reboot", "-monitor", "none",
            "-chardev", console,
            "-serial", "chardev:console",
        ]
        if not spec.tap:
            args += ["-nic", "none"]
        else:
            args += ["-netdev", f"tap,id=net0,ifname={spec.tap},script=no,downscript=no"]
            nic = f"virtio-net-pci,netdev=net0,mac={spec.mac}"
            # boot order as on a cluster node: PXE first, then the local disks
            args += ["-device", f"{nic},bootindex=1"] if spec.disks else ["-device", nic, "-boot", "n"]
        for i, disk in enumerate(spec.disks):
            args += ["-drive", f"if=none,id=disk{i},format=raw,file={disk},cache=unsafe",
                     "-device", f"virtio-blk-pci,drive=disk{i},bootindex={i + 2}"]
        if spec.kernel is not None:
            vmlinuz, initrd, cmdline = spec.kernel
            args += ["-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", cmdline]
        if spec.firmware == "uefi":
            vars_copy = spec.workdir / f"{spec.name}.OVMF_VARS.fd"
            args += [
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={vars_copy}",
            ]
        return [*args, *spec.extra_args]

    def start(self) -> Vm:
        runmod.require_tool("qemu-system-x86_64")
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        if self.spec.firmware == "uefi":
            if not OVMF_CODE.is_file():
                raise VmError(f"UEFI firmware {OVMF_CODE} is missing", hint="apt-get install ovmf")
            vars_copy = self.spec.workdir / f"{self.spec.name}.OVMF_VARS.fd"
            if not vars_copy.exists():  # kept across power cycles: the firmware's boot entries
                shutil.copyfile(OVMF_VARS, vars_copy)
        self.log_path.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        stderr = open(self.spec.workdir / f"{self.spec.name}.qemu.log", "wb")  # noqa: SIM115
        self.proc = self.netns.spawn(self.argv(), stdout=stderr, stderr=stderr)
        stderr.close()
        self.started = time.monotonic()
        return self

    def console_text(self) -> str:
        """Everything the node printed on its serial console so far, without colour codes."""
        try:
            raw = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for(self, pattern: str, timeout: float, start_at: int = 0) -> re.Match[str]:
        """Wait until the console shows `pattern` (a regex); VmError with the console's tail if not."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.console_text(), start_at)
            if match:
                return match
            if not self.running():
                break
            time.sleep(0.5)
        state = "still running" if self.running() else f"exited ({self.proc and self.proc.returncode})"
        raise VmError(
            f"node {self.spec.name}: {pattern!r} did not appear on the console within {timeout:.0f} s "
            f"(QEMU {state}). Last console lines:\n" + "\n".join(self.console_text().splitlines()[-40:])
        )

    def type(self, text: str) -> None:
        """Type `text` on the node's serial console."""
        if self._console is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(str(self.socket_path))
                    self._console = sock
                    break
                except OSError:
                    sock.close()
                    if time.monotonic() > deadline:
                        raise VmError(f"node {self.spec.name}: console socket not available") from None
                    time.sleep(0.2)
            # Once a client is connected, QEMU sends it the console's output (one small write per
            # byte): unread, the socket fills within a few hundred characters, the guest's serial
            # port stalls and every process writing to the console blocks. The log file has it all,
            # so what arrives here is read and dropped.
            threading.Thread(target=_drain, args=(sock,), name=f"console-{self.spec.name}",
                             daemon=True).start()
        self._console.sendall(text.encode())

    def stop(self) -> None:
        if self._console is not None:
            with contextlib.suppress(OSError):
                self._console.close()
            self._console = None
        if self.proc is not None:
            runmod.stop(self.proc, grace=5)
        self.socket_path.unlink(missing_ok=True)


def _drain(sock: socket.socket) -> None:
    """Read and drop what QEMU sends to a console client until the socket closes."""
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


def mac_for(index: int, prefix: str = "52:54:00:5b") -> str:
    """A deterministic, locally administered MAC for lab node `index` (0-65535)."""
    if not 0 <= index < 65536:
        raise ValueError("lab node index must be in 0..65535")
    return f"{prefix}:{index >> 8:02x}:{index & 0xFF:02x}"


def tcg_note() -> str:
    """KVM is not used: say so once, so slow boots are not a surprise."""
    kvm = os.path.exists("/dev/kvm")
    return "QEMU runs with TCG (software emulation)" + (" although /dev/kvm exists" if kvm else "")
