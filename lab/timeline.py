"""A virtual node's boot timeline, from its serial console and its `booted` report.

Two clocks, both honest about what they measure:
- host seconds since QEMU started, for markers seen on the console (polled, so ± the poll
  interval): firmware, iPXE, the kernel's first message, /init, the agent, switch_root, multi-user;
- the guest kernel's clock (the `[ T ]` stamps, which the agent's start/exit lines repeat), for
  what happens inside the node: kernel → /init → agent → switch_root → booted report (uptime).

`BootSummary.from_report()` turns a node's `booted` details (download, seeder, agent timings) into
the few numbers an administrator wants: boot time, where the bytes came from, the agent's own time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# (name, pattern) in boot order; each is recorded the first time it shows on the console.
MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("firmware", re.compile(r"SeaBIOS|BdsDxe|UEFI|iPXE")),  # its first words
    ("ipxe", re.compile(r"Open Source Network Boot Firmware")),  # iPXE's banner: it runs
    ("script", re.compile(r"swarmboot: booting \S+:")),  # DHCP, start.ipxe and the node's script done
    ("kernel", re.compile(r"Linux version")),  # kernel and initramfs loaded over HTTP
    ("init", re.compile(r"Run /init as init process")),
    ("agent", re.compile(r"swarmboot: agent started")),
    ("downloaded", re.compile(r"swarmboot: stage download done")),
    ("agent_exit", re.compile(r"swarmboot: agent exits")),
    ("switch_root", re.compile(r"Switching root")),
    ("multi_user", re.compile(r"Reached target .*Multi-User System")),
)
KERNEL_STAMP = r"^\[\s*(\d+\.\d+)\]"
KERNEL_CLOCK: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("init", re.compile(KERNEL_STAMP + r" Run /init as init process", re.M)),
    ("agent", re.compile(r"swarmboot: agent started \(monotonic clock (\d+\.\d+) s")),
    ("agent_exit", re.compile(r"swarmboot: agent exits after [\d.]+ s \(monotonic clock (\d+\.\d+) s")),
    ("switch_root", re.compile(KERNEL_STAMP + r" dracut: Switching root", re.M)),
)


@dataclass
class ConsoleTimeline:
    """Host-clock times (seconds since QEMU started) of the console markers seen so far."""

    seen: dict[str, float] = field(default_factory=dict)

    def update(self, text: str, since_start: float) -> None:
        for name, pattern in MARKERS:
            if name not in self.seen and pattern.search(text):
                self.seen[name] = round(since_start, 1)

    def mark(self, name: str, since_start: float) -> None:
        self.seen.setdefault(name, round(since_start, 1))


def kernel_clock(text: str) -> dict[str, float]:
    """Guest kernel-clock seconds of /init, the agent's start and exit, and switch_root."""
    found = {}
    for name, pattern in KERNEL_CLOCK:
        match = pattern.search(text)
        if match:
            found[name] = float(match.group(1))
    return found


# Where the initramfs's time goes before the agent (the guest kernel's clock): each phase ends at
# the next marker, in this order (dracut's classic init with network-legacy, as packed).
PHASE_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kernel", re.compile(KERNEL_STAMP + r" Trying to unpack rootfs image as initramfs", re.M)),
    ("unpack", re.compile(KERNEL_STAMP + r" Freeing initrd memory", re.M)),
    ("kernel_rest", re.compile(KERNEL_STAMP + r" Run /init as init process", re.M)),
    ("dracut_start", re.compile(KERNEL_STAMP + r" dracut: \S", re.M)),  # its first message: udev starts
    # (without DHCP: iPXE's address, swarmboot.ip, then `dhcp` is 0)
    ("udev_modules", re.compile(
        KERNEL_STAMP + r" dracut: (?:Starting dhcp for interface|swarmboot: running the agent)", re.M)),
    ("dhcp", re.compile(KERNEL_STAMP + r" dracut: swarmboot: running the agent", re.M)),  # the pre-mount hook
    ("agent_loader", re.compile(
        r"swarmboot: agent started \(monotonic clock .*its Python from (\d+\.\d+) s")),
    ("agent_start", re.compile(r"swarmboot: agent started \(monotonic clock (\d+\.\d+) s")),
)


def initramfs_phases(text: str) -> dict[str, float]:
    """Seconds of each phase from the kernel's start to the agent's: `kernel` (to the initramfs
    unpack), `unpack` (the kernel unpacking the initramfs), `kernel_rest` (to /init), `dracut_start`
    (to dracut's first message), `udev_modules` (udev, coldplug, drivers, until dracut starts DHCP
    on the boot NIC, or without DHCP until the agent runs), `dhcp` (DHCP, the address check,
    dracut's initqueue, until our pre-mount hook runs the agent), `agent_loader` (the frozen agent's
    PyInstaller bootloader and libpython, until its first Python line), `agent_start` (its imports,
    until its first console line; without the `its Python from` stamp, both).
    A phase whose end marker is missing is left out (and the next one spans both)."""
    phases: dict[str, float] = {}
    before = 0.0
    for name, pattern in PHASE_MARKERS:
        match = pattern.search(text)
        if match:
            at = float(match.group(1))
            phases[name] = round(at - before, 2)
            before = at
    return phases


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass(frozen=True)
class BootSummary:
    """What one node's `booted` report says, in the units an administrator reads."""

    root_fstype: str
    uptime: float  # guest seconds from the kernel's start to the booted report
    image_bytes: int
    download_seconds: float
    from_peers: int  # BitTorrent payload: other nodes and the server's seeder
    from_web_seed: int  # HTTP (BEP 19), a lower bound (sampled)
    reused: bool
    seeder_uploaded: int  # what the node's seeding process sent to other nodes before switch_root
    uploaded: int  # what the node sent to other nodes while it downloaded (its own count)
    agent_seconds: float
    agent_own_seconds: float  # the agent without the transfer
    stages: dict[str, float]

    @classmethod
    def from_report(cls, details: dict[str, Any]) -> BootSummary:
        download = details.get("download") or {}
        seeder = details.get("seeder") or {}
        agent = details.get("agent") or {}
        return cls(
            root_fstype=str(details.get("root_fstype", "")),
            uptime=_num(details.get("uptime")),
            image_bytes=int(_num(download.get("bytes"))),
            download_seconds=_num(download.get("seconds")),
            from_peers=int(_num(download.get("from_peers"))),
            from_web_seed=int(_num(download.get("from_web_seeds"))),
            reused=bool(download.get("reused")),
            seeder_uploaded=int(_num(seeder.get("uploaded"))),
            uploaded=int(_num(download.get("uploaded"))),
            agent_seconds=_num(agent.get("agent_seconds")),
            agent_own_seconds=_num(agent.get("without_transfer_seconds")),
            stages={k: _num(v) for k, v in (agent.get("stages") or {}).items()},
        )


def timeline_line(host: dict[str, float], guest: dict[str, float], uptime: float) -> str:
    """One readable line: host-clock markers, then the guest's own clock."""
    names = ("ipxe", "script", "kernel", "init", "agent", "agent_exit", "switch_root", "multi_user", "booted")
    host_part = " ".join(f"{n}@{host[n]:.0f}s" for n in names if n in host)
    guest_part = " ".join(f"{n} {guest[n]:.1f}" for n in ("init", "agent", "agent_exit", "switch_root")
                          if n in guest)
    if uptime:
        guest_part += f" booted {uptime:.1f}"
    return f"host clock (since QEMU start): {host_part}; guest kernel clock: {guest_part}"
