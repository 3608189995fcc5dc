"""The nfs root mode, booted for real: two QEMU nodes (SeaBIOS and OVMF) of group `nfs` PXE-boot,
their agents mount the server's read-only NFSv4 export of version 1 (nfs-ganesha, started by
`swarmboot serve`) under a tmpfs overlay, download nothing and switch root into multi-user.

Then, while they run (their probe unit reads the root again every 2 s, after dropping the page
cache, and says so on the console: tests/helpers/e2e.py NFS_POST):
- the server is restarted: the nodes' hard mounts stall, then go on (the gap is measured);
- version 3 is packed and the group moves on to it: version 1 stays exported while they run it,
  and they go on reading it.
"""

from __future__ import annotations

import itertools
import re
import time

import pytest

from builder.pack import pack
from lab.vm import Vm
from tests.helpers.e2e import FIGURES, IMAGE, MARKER, E2ELab

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(2400)]
BOOT_TIMEOUT = 720
OUTAGE = 10.0  # seconds the server is down
PROBE = re.compile(r"nfs-probe (\d+) up=([\d.]+) sum=(\w+)")
NAMES = ["n5", "n6"]


def probes(vm: Vm, start_at: int = 0) -> list[tuple[int, float, str]]:
    return [(int(m[1]), float(m[2]), m[3]) for m in PROBE.finditer(vm.console_text(), start_at)]


def wait_probes(lab: E2ELab, marks: dict[str, int], count: int, timeout: float) -> dict[str, list]:
    """Wait until every node printed `count` probe lines after its mark; those lines."""
    the_lab, deadline = lab.lab, time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {n: probes(the_lab.vms[n], marks[n]) for n in NAMES}
        if all(len(v) >= count for v in seen.values()):
            return seen
        time.sleep(1)
    pytest.fail(f"the nodes stopped reading their NFS root: {seen}\n" + the_lab.evidence(NAMES))


def exported(lab: E2ELab, versions: set[int], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    nfs: dict = {}
    while time.monotonic() < deadline:
        nfs = lab.lab.admin("stats").get("nfs", {})
        if {e["version"] for e in nfs.get("exports", []) if e["image"] == IMAGE} == versions:
            return nfs
        time.sleep(1)
    pytest.fail(f"the server does not export versions {sorted(versions)} of {IMAGE}: {nfs}")


def test_two_nodes_boot_from_the_nfs_export_and_keep_their_root_through_a_restart_and_a_new_version(
    lab: E2ELab,
) -> None:
    the_lab, manifest = lab.lab, lab.images.squashfs
    server_ip = the_lab.spec.server_ip
    try:
        for name in NAMES:
            the_lab.start_vm(name, lab.mac(name), lab.firmware(name))
        rows = the_lab.wait_booted(NAMES, timeout=BOOT_TIMEOUT)
        sums, client_ids = {}, {}
        for name in NAMES:
            row, evidence = rows[name], the_lab.evidence([name], rows)
            details = row["details"]
            assert (row["image"], row["version"]) == (IMAGE, manifest.version), evidence
            # the booted system's own view: / is the overlay, its lower layer the server's export
            assert details.get("root_fstype") == "overlay", evidence
            source = f"{server_ip}:/swarmboot/{IMAGE}/{manifest.version}"
            assert details.get("root_lower") == f"nfs4 {source}", evidence
            assert details.get("download") is None, evidence  # nothing was downloaded
            vm = the_lab.vms[name]
            console = vm.console_text()
            assert f"download skipped: the root is mounted over NFS from {source}" in console, evidence
            # each node its own NFSv4 client: two left at host name "(none)" hung after switch_root,
            # taking the one client's state from each other (CI, 2026-12-07)
            named = re.search(r"NFS client identifier (\w+)", console)
            assert named and f"host name {name}" in console, evidence
            client_ids[name] = named.group(1)
            # a file written on the node is in the overlay's RAM layer; setuid bits came through
            written = vm.wait_for(r"nfs-probe written: upper=(\S+) su=(\d+)", timeout=180)
            assert written.group(1) == "tmpfs" and written.group(2) == "4755", written.group(0)
            first = wait_probes(lab, {name: 0 for name in NAMES}, 2, 120)
            sums[name] = first[name][0][2]
            agent = details.get("agent") or {}
            FIGURES.append(f"{name} ({lab.firmware(name)}, root nfs): booted report at uptime "
                           f"{details.get('uptime')} s; agent {agent.get('agent_seconds')} s; stages "
                           f"{agent.get('stages')}")
        assert len(set(sums.values())) == 1, sums  # both read the same bytes
        assert len(set(client_ids.values())) == len(NAMES), client_ids
        record_boot_reads(lab)
        listing = the_lab.namespace.run(
            ["nfs-ls", f"nfs://{server_ip}/swarmboot/{IMAGE}/{manifest.version}/root?version=4"],
            timeout=60).stdout
        assert "written-on-node" not in listing, listing  # the server's export did not change
        check_restart(lab, sums)
        check_new_version(lab, sums)
    finally:
        for name in NAMES:
            if name in the_lab.vms:
                the_lab.vms[name].stop()


def record_boot_reads(lab: E2ELab) -> None:
    """What n5's boot read from the export (its page cache of the export's files, listed by its
    probe) into the lab's workdir: bench/nfs_root.py replays such a list (bench/data/)."""
    vm = lab.lab.vms["n5"]
    done = vm.wait_for(r"nfs-boot-read done: files=(\d+)(.*)", timeout=600)
    reads = re.findall(r"nfs-boot-read: (\d+) (.+?)\r?$", vm.console_text()[:done.start()], re.MULTILINE)
    if not reads:
        FIGURES.append(f"n5 listed nothing it read from NFS: {done.group(0).strip()}")
        return
    if len(reads) != int(done.group(1)):  # a console line lost (e.g. to a getty's hangup)
        FIGURES.append(f"n5 listed {done.group(1)} files read from NFS, the console shows {len(reads)}")
    image_size = lab.images.squashfs.image_file.size
    listing = lab.workdir / "nfs-boot-read.txt"
    header = "# what a Debian 12 boot into multi-user read from its NFS root (n5, tests/e2e/test_nfs.py)\n"
    body = "".join(f"{size} {path}\n" for size, path in reads)
    listing.write_text(f"{header}# image_size={image_size}\n{body}")
    total = sum(int(size) for size, _path in reads)
    FIGURES.append(f"n5's boot read {len(reads)} files, {total / 2**20:.1f} MiB from the NFS export "
                   f"(the squashfs is {image_size / 2**20:.0f} MiB); list in {listing}")


def check_restart(lab: E2ELab, sums: dict[str, str]) -> None:
    """The server (and its nfs-ganesha) stops for OUTAGE seconds: the nodes' reads stall (hard
    mounts), then go on with the same content. What each node saw: the longest gap between its
    probe lines, and the kernel's messages."""
    the_lab = lab.lab
    marks = {n: len(the_lab.vms[n].console_text()) for n in NAMES}
    wait_probes(lab, marks, 1, 60)
    the_lab.stop_server()
    time.sleep(OUTAGE)
    restarted = time.monotonic()
    the_lab.start_server()
    after = wait_probes(lab, {n: marks[n] for n in NAMES}, 8, 240)
    back = time.monotonic() - restarted
    for name in NAMES:
        lines = after[name]
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(lines)]
        text = the_lab.vms[name].console_text()[marks[name]:]
        kernel = sorted(set(re.findall(r"nfs: server \S+ (not responding, still trying|OK)", text)))
        assert {s for _i, _up, s in lines} == {sums[name]}, lines  # the same bytes, never an error
        FIGURES.append(f"{name}: server down {OUTAGE:.0f} s: longest gap between its NFS reads "
                       f"{max(gaps):.1f} s (reads every ~2 s); kernel said: {kernel or 'nothing'}; "
                       f"reading again {back:.0f} s after the restart began")
        assert max(gaps) >= OUTAGE * 0.5, f"{name} did not notice the outage? {gaps}"


def check_new_version(lab: E2ELab, sums: dict[str, str]) -> None:
    """Version 3 is packed and the group moves on: 1 stays exported (the nodes run it), 3 is
    exported too, and the nodes go on reading version 1."""
    the_lab, settings = lab.lab, lab.images.settings
    (settings.images_dir / IMAGE / "rootfs" / MARKER).write_text("3\n")
    started = time.monotonic()
    newer = pack(settings, IMAGE).manifest
    took = time.monotonic() - started
    FIGURES.append(f"version {newer.version} packed in {took:.0f} s while n5 and n6 ran")
    the_lab.cli("group", "set", "nfs", "--image-version", str(newer.version))
    nfs = exported(lab, {lab.images.squashfs.version, newer.version})
    assert all(e["clients"] == [the_lab.spec.subnet] for e in nfs["exports"]), nfs
    marks = {n: len(the_lab.vms[n].console_text()) for n in NAMES}
    after = wait_probes(lab, marks, 3, 120)
    for name in NAMES:
        assert {s for _i, _up, s in after[name]} == {sums[name]}, after[name]
    status = {r["name"]: r for r in the_lab.status(NAMES)}
    assert all(status[n]["version"] == lab.images.squashfs.version for n in NAMES), status
