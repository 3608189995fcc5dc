"""The lab's reading of a node's console and booted report (lab/timeline.py), on lines
taken from a real PXE boot in the e2e lab."""

from __future__ import annotations

from lab.timeline import BootSummary, ConsoleTimeline, initramfs_phases, kernel_clock, timeline_line

CONSOLE = """\
SeaBIOS (version 1.16.2-debian-1.16.2-1)
iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http
swarmboot: booting n1: e2e version 1
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14)
[    7.989260] Run /init as init process
[   0.00] swarmboot: agent started (monotonic clock 35.03 s, as the kernel's log)
[  31.70] swarmboot: stage download done in 31.8 s
[  36.46] swarmboot: agent exits after 36.5 s (monotonic clock 71.49 s)
[   74.554019] dracut: Switching root
[  OK  ] Reached target multi-user.target - Multi-User System.
"""


def test_markers_are_timed_when_first_seen_and_never_moved() -> None:
    timeline = ConsoleTimeline()
    lines = CONSOLE.splitlines(keepends=True)
    timeline.update("".join(lines[:3]), 12.34)
    assert timeline.seen == {"firmware": 12.3, "ipxe": 12.3, "script": 12.3}
    timeline.update("".join(lines), 99.0)
    assert timeline.seen["firmware"] == 12.3  # not moved by later updates
    assert [n for n, t in timeline.seen.items() if t == 99.0] == [
        "kernel", "init", "agent", "downloaded", "agent_exit", "switch_root", "multi_user"]
    timeline.mark("booted", 120.0)
    timeline.mark("booted", 130.0)
    assert timeline.seen["booted"] == 120.0


def test_a_bare_ipxe_rom_banner_is_not_the_script() -> None:
    timeline = ConsoleTimeline()
    timeline.update("iPXE (http://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM\n", 1.0)
    assert timeline.seen == {"firmware": 1.0}


def test_kernel_clock() -> None:
    assert kernel_clock(CONSOLE) == {"init": 7.98926, "agent": 35.03, "agent_exit": 71.49,
                                     "switch_root": 74.554019}
    assert kernel_clock("nothing") == {}


def test_boot_summary_from_a_booted_report() -> None:
    details = {
        "root_fstype": "overlay", "kernel": "6.1.0-56-amd64", "uptime": 121.4, "hostname": "n1",
        "download": {"bytes": 189915136, "seconds": 31.2, "reused": False, "from_peers": 193986560,
                     "from_web_seeds": 0, "hash_failures": 0, "rate": 6086000},
        "seeder": {"uploaded": 1048576, "peers": 1, "seconds": 3.1, "stopped": True},
        "agent": {"stages": {"download": 31.754, "root": 1.724}, "agent_seconds": 36.2,
                  "without_transfer_seconds": 4.4},
    }
    summary = BootSummary.from_report(details)
    assert summary.root_fstype == "overlay" and summary.uptime == 121.4
    assert summary.image_bytes == 189915136 and not summary.reused
    assert summary.seeder_uploaded == 1048576
    assert (summary.agent_seconds, summary.agent_own_seconds) == (36.2, 4.4)
    assert summary.stages["root"] == 1.724
    # a report whose parts are missing (no seeder: seed_until_switch_root=false) still reads
    sparse = BootSummary.from_report({"root_fstype": "tmpfs", "seeder": None, "download": {"bytes": True}})
    assert (sparse.seeder_uploaded, sparse.image_bytes, sparse.agent_seconds) == (0, 0, 0.0)


def test_timeline_line() -> None:
    line = timeline_line({"kernel": 29.0, "booted": 151.2}, {"init": 7.98926}, 121.4)
    assert line == ("host clock (since QEMU start): kernel@29s booted@151s; "
                    "guest kernel clock: init 8.0 booted 121.4")


# n1's console lines in this week's e2e run (tests/e2e/test_boot.py), the markers only
PHASES_CONSOLE = """\
[    1.530526] Trying to unpack rootfs image as initramfs...
[    4.446140] Freeing initrd memory: 44660K
[    5.724855] Run /init as init process
[    7.997529] dracut: Debian GNU/Linux-12
Starting systemd-udevd version 252.39-1~deb12u2
[   10.121969] dracut: rd.md=0: removing MD RAID activation
[   13.697807] virtio_net virtio0 ens3: renamed from eth0
[   15.650702] dracut: Starting dhcp for interface ens3
dhcp: BOUND setting up ens3
[   21.360112] dracut: swarmboot: running the agent
[   0.00] swarmboot: agent started (monotonic clock 22.98 s, as the kernel's log)
"""


def test_the_initramfs_phases_before_the_agent_add_up_to_its_start() -> None:
    phases = initramfs_phases(PHASES_CONSOLE)
    assert phases == {"kernel": 1.53, "unpack": 2.92, "kernel_rest": 1.28, "dracut_start": 2.27,
                      "udev_modules": 7.65, "dhcp": 5.71, "agent_start": 1.62}
    assert round(sum(phases.values()), 2) == 22.98  # the agent's start on the kernel's clock
    # without the unpack markers (another kernel's wording) the first phase spans them
    lines = [line for line in PHASES_CONSOLE.splitlines() if "initr" not in line]
    assert initramfs_phases("\n".join(lines))["kernel_rest"] == 5.72
    # iPXE's address (swarmboot.ip): no DHCP, udev until the hook runs the agent
    lines = [line for line in PHASES_CONSOLE.splitlines() if "dhcp" not in line]
    no_dhcp = initramfs_phases("\n".join(lines))
    assert (no_dhcp["udev_modules"], no_dhcp["dhcp"], no_dhcp["agent_start"]) == (13.36, 0.0, 1.62)
    # an initramfs of before the hook's line: the agent's start-up is in `dhcp`
    lines = [line for line in PHASES_CONSOLE.splitlines() if "running the agent" not in line]
    assert initramfs_phases("\n".join(lines))["agent_start"] == 7.33
    # the agent's stamp of its first Python line: the bootloader and libpython apart from the imports
    stamped = PHASES_CONSOLE.replace("as the kernel's log)", "as the kernel's log; its Python from 22.31 s)")
    split = initramfs_phases(stamped)
    assert (split["agent_loader"], split["agent_start"]) == (0.95, 0.67)
    assert round(sum(split.values()), 2) == 22.98
