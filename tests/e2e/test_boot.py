"""Real boots: QEMU (TCG) nodes PXE-boot with QEMU's own iPXE ROMs (SeaBIOS and OVMF) from the
real `swarmboot serve` (dnsmasq, HTTP, tracker, seeder) in a network namespace, load the packed
kernel and initramfs, and the frozen agent fetches the image by BitTorrent and builds the root.

Success is what the booted system itself reports (swarmboot-booted.service, after multi-user:
`findmnt /`, the kernel, the agent's and the download's figures), as the server recorded it
(`swarmboot node status`), never a console line. Every wait has a deadline; a failure's message
carries the node's console tail and the server log's tail (Lab.evidence).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lab.lab import LabError, ssh_argv
from lab.server_process import swarmboot_command
from lab.timeline import BootSummary, initramfs_phases, kernel_clock, timeline_line
from lab.vm import mac_for
from tests.helpers.e2e import (
    DEAD_SERVER_ARGS,
    FIGURES,
    GRAB_DEADLINE,
    IMAGE,
    PORT_NAMED,
    E2EImages,
    E2ELab,
    next_boot,
    stock_command_line,
    stock_dracut_initramfs,
    wait_row,
)

# The tests' own deadlines (BOOT_TIMEOUT, the console waits) come first, so a failure shows the
# evidence; pytest-timeout is the last resort (it includes the session fixtures: clone + 2 packs).
pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1500)]
MB = 1_000_000
# 44.6 MB before the nfs root mode; its kernel client (nfs, nfsv4, sunrpc, grace, fscache, ...) adds
# 1.1 MB: 45.7 MB measured
INITRAMFS_GOAL = 47 * MB
# 23.2 MB before the disk mode; its partitioner (pyparted with libparted, libdevmapper, libblkid,
# pyudev) adds 2.7 MB: 25.9 MB measured
BUNDLE_GOAL = 27 * MB
NIC_DRIVERS = ("virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "bnxt_en", "tg3", "r8169",
               "mlx4_en", "mlx5_core", "vmxnet3")
BOOT_TIMEOUT = 720  # two TCG guests on two shared cores; measured 130-180 s


def summarize(lab: E2ELab, name: str, details: dict) -> BootSummary:
    """Record the node's figures for the run's summary and return them."""
    summary = BootSummary.from_report(details)
    vm = lab.lab.vms[name]
    FIGURES.append(
        f"{name} ({lab.firmware(name)}, root {summary.root_fstype}): booted report at uptime "
        f"{summary.uptime:.1f} s; agent {summary.agent_seconds:.1f} s, own time (without transfer) "
        f"{summary.agent_own_seconds:.1f} s; download {summary.image_bytes / 2**20:.0f} MiB in "
        f"{summary.download_seconds:.1f} s (BitTorrent {summary.from_peers / 2**20:.0f} MiB, web seed "
        f"{summary.from_web_seed / 2**20:.0f} MiB); stages {summary.stages}"
    )
    FIGURES.append(f"{name} timeline: " + timeline_line(
        lab.lab.timelines[name].seen, kernel_clock(vm.console_text()), summary.uptime))
    phases = initramfs_phases(vm.console_text())
    listed = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
    total = sum(phases.values())
    FIGURES.append(f"{name} before the agent (guest kernel clock, s): {listed}; total {total:.2f}")
    return summary


def kernel_command_line(console: str) -> str:
    match = re.search(r"Command line: (.*)", console)
    return match.group(1) if match else ""


def node_uploads(stats: dict, info_hash: str, server_ip: str) -> int:
    """What nodes uploaded to each other in the swarm, by the tracker's count: everything its peers
    reported (departed ones included) minus what the server's own seeder reported."""
    swarm = stats["tracker"]["swarms"].get(info_hash)
    if swarm is None:
        return 0
    server = sum(p["uploaded"] for p in swarm["peers"] if p["ip"] == server_ip)
    return int(swarm["uploaded"]) - server


def test_pack_puts_the_agent_and_the_nic_drivers_into_a_lean_initramfs(e2e_images: E2EImages) -> None:
    store_dir = e2e_images.settings.images_dir / IMAGE / "versions" / str(e2e_images.squashfs.version)
    initramfs = store_dir / "initramfs.img"
    listing = subprocess.run(["sh", "-c", 'zstd -dc "$1" | cpio -it --quiet', "list", str(initramfs)],
                             capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert "usr/lib/swarmboot/agent/swarmboot-agent" in listing
    modules = {re.sub(r"\.ko(\.\w+)?$", "", Path(p).name).replace("-", "_") for p in listing if ".ko" in p}
    missing = [d for d in NIC_DRIVERS if d not in modules]
    assert not missing, f"NIC drivers missing from the initramfs: {missing}"
    assert {"squashfs", "overlay", "loop", "vfat", "nls_ascii"} <= modules  # the ESP mounts (disk mode)
    assert {"nfs", "nfsv4", "sunrpc"} <= modules  # the nfs root mode's kernel client
    size = e2e_images.squashfs.initramfs.size
    FIGURES.append(f"initramfs {size / MB:.1f} MB ({len(modules)} kernel modules); agent bundle "
                   f"{e2e_images.bundle_size / MB:.1f} MB (libtorrent: {e2e_images.bundle_libtorrent}); "
                   f"image {e2e_images.squashfs.image_file.size / MB:.0f} MB squashfs, "
                   f"{e2e_images.tar.image_file.size / MB:.0f} MB tar.zst")
    assert size <= INITRAMFS_GOAL, f"initramfs {size / MB:.1f} MB > {INITRAMFS_GOAL / MB:.0f} MB"
    assert e2e_images.bundle_size <= BUNDLE_GOAL or "wheel" in e2e_images.bundle_libtorrent
    origin = json.loads((e2e_images.settings.images_dir / IMAGE / "image.json").read_text())["origin"]
    assert origin["kind"] == "oci" and origin["digest"].startswith("sha256:"), origin  # every boot: imported
    FIGURES.append(f"image {IMAGE} imported from an OCI archive of the base tree ({origin['digest'][:19]}…)")


def test_bios_and_uefi_nodes_pxe_boot_together_into_overlay_and_share_pieces(lab: E2ELab) -> None:
    """(1) PXE → iPXE → our script → kernel + initramfs → the agent's BitTorrent download → overlay
    root → multi-user → the booted report; (2) two nodes booting at once exchange pieces; (4) one
    of them boots through OVMF (UEFI); (8) n1 is named by its switch port
    (check_named_by_its_port). The server's link is shaped to 100 Mbit/s (the nodes' links are
    not), as on a real cluster, so that both nodes are in the swarm at the same time; each one's
    events carry its boot token (the booted report too)."""
    the_lab, manifest = lab.lab, lab.images.squashfs
    names = ["n1", "n2"]
    the_lab.set_server_rate("100mbit")
    try:
        for name in names:
            # n1 stays up for test_grab.py (image grab takes its root)
            deadline = GRAB_DEADLINE if name == "n1" else 900.0
            the_lab.start_vm(name, lab.mac(name), lab.firmware(name), deadline_s=deadline)
        rows = the_lab.wait_booted(names, timeout=BOOT_TIMEOUT)
        stats = the_lab.admin("stats")
    finally:
        the_lab.set_server_rate("")
    summaries = {}
    for name in names:
        row, evidence = rows[name], the_lab.evidence([name], rows)
        assert row.get("alerts", 0) == 0, evidence  # their tokens were theirs, used once
        details = row["details"]
        assert (row["image"], row["version"]) == (IMAGE, manifest.version), evidence
        assert details.get("root_fstype") == "overlay", f"/ of {name} is not the overlay\n{evidence}"
        assert details.get("kernel") == manifest.kernel_version, evidence
        assert details.get("hostname") == name, evidence
        summary = summaries[name] = summarize(lab, name, details)
        assert summary.image_bytes == manifest.image_file.size and not summary.reused, evidence
        assert 0 < summary.agent_own_seconds < summary.agent_seconds, evidence
        console = the_lab.vms[name].console_text()
        # iPXE ran the server's per-node script and fetched the packed kernel and initramfs over HTTP
        assert f"swarmboot: booting {name}: {IMAGE} version {manifest.version}" in console, evidence
        loaded = rf"/images/{IMAGE}/{manifest.version}/initramfs\.img\.\.\.[^\n]* ok"  # progress: 30%…
        assert re.search(loaded, console), evidence
        # iPXE's address (swarmboot.ip, expanded by iPXE under BIOS and UEFI): no DHCP in dracut
        address = r"swarmboot\.ip=10\.77\.0\.\d+:255\.255\.255\.0:"
        assert re.search(address, kernel_command_line(console)), evidence
        assert "(as iPXE got it, no second DHCP)" in console and "Starting dhcp for" not in console, evidence
    # The firmware each node really went through: SeaBIOS for n1; OVMF for n2, whose iPXE asked for
    # the EFI script (only that one puts initrd= on the kernel command line).
    bios, uefi = (the_lab.vms[n].console_text() for n in names)
    assert "SeaBIOS" in bios and "initrd=initramfs.img" not in kernel_command_line(bios)
    assert "SeaBIOS" not in uefi and "initrd=initramfs.img" in kernel_command_line(uefi), \
        the_lab.evidence(["n2"], rows)
    # Pieces went from node to node: what the nodes say they uploaded while downloading (only
    # another node takes from them: the server's seeder is a seed), or the tracker's count of it
    # (which a server restart would reset), plus what their seeding processes sent before switch_root.
    between_nodes = max(node_uploads(stats, manifest.info_hash, the_lab.spec.server_ip),
                        sum(s.uploaded for s in summaries.values()))
    seeded = sum(s.seeder_uploaded for s in summaries.values())
    from_seeder = sum(t["uploaded"] for t in stats["seeder"]["torrents"])
    over_http = stats["http_bytes"].get(f"{IMAGE}/{manifest.version}/image.squashfs", 0)
    FIGURES.append(f"swarm of n1+n2: nodes uploaded {between_nodes / 2**20:.1f} MiB to each other "
                   f"while downloading (their count or the tracker's) + {seeded / 2**20:.1f} MiB from their "
                   "seeding processes; "
                   f"server seeder {from_seeder / 2**20:.0f} MiB, HTTP web seed {over_http / 2**20:.0f} MiB")
    assert between_nodes + seeded >= manifest.piece_size, (
        f"no piece went from one node to the other (nodes: {between_nodes} B, seeders: {seeded} B)\n"
        f"{stats['tracker']['swarms'].get(manifest.info_hash)}")
    check_named_by_its_port(lab, rows["n1"])


def seeding(row: dict) -> dict:
    return row["details"].get("seeding") or {}


def boot_files(row: dict) -> dict:
    return row["details"].get("boot_files") or {}


def test_a_node_booting_later_gets_pieces_from_booted_nodes_whose_seeding_then_stops(lab: E2ELab) -> None:
    """(9) seeding after boot (issue 12): n1 and n2, booted, run the seeding service the agent
    handed over (swarmboot-seed.service from /run: systemd, the agent's bundle, no Python in the
    image); n7 boots after them with the server's link shaped again and gets pieces from them: by
    the tracker (booted peers, complete, with uploads) and by their per-peer counters (n7's
    address); then, nobody needing the image for the lab's seed_idle_seconds (120), both stop by
    that rule and say so. n7's iPXE fetches its kernel and initramfs from n1 or n2, which the
    server names in its script (their boot-file service, server/boot_peers.py): the head node
    sends none of them. Then n7 reboots (a rolling reboot): n1 and n2, done seeding, hold the image
    and ask the server; one of them is told to seed again (seed_on_demand) and sends n7 pieces in
    its second round, by its per-peer counters."""
    the_lab, manifest = lab.lab, lab.images.squashfs
    seeders = ["n1", "n2"]
    for name in seeders:
        row = wait_row(lab, name, lambda r: "uploaded" in seeding(r), 120, "the seed start event")
        assert not seeding(row)["stopped"] and row["state"] == "booted", row
        assert row["stage"] == "seed" and row["status"] in ("start", "progress"), row
    for name in seeders:  # and they serve their kernel and initramfs (server/boot_peers.py)
        wait_row(lab, name, lambda r: "port" in boot_files(r), 120, "the boot files served")
    boot_pair = (f"{IMAGE}/{manifest.version}/{manifest.kernel.name}",
                 f"{IMAGE}/{manifest.version}/{manifest.initramfs.name}")
    head_before = sum(the_lab.admin("stats")["http_bytes"].get(k, 0) for k in boot_pair)
    the_lab.set_server_rate("100mbit")
    try:
        vm = the_lab.start_vm("n7", lab.mac("n7"), lab.firmware("n7"), deadline_s=900.0)
        rows = the_lab.wait_booted(["n7"], timeout=BOOT_TIMEOUT)
        stats = the_lab.admin("stats")
    finally:
        the_lab.set_server_rate("")
    head_boot_files = sum(stats["http_bytes"].get(k, 0) for k in boot_pair) - head_before
    peer_line = re.search(r"swarmboot: the kernel and initramfs from (n[12]), booted", vm.console_text())
    assert peer_line, "n7's iPXE script named no booted peer for its boot files\n" + the_lab.evidence(["n7"])
    row, evidence = rows["n7"], the_lab.evidence(["n7", *seeders], rows)
    summary = summarize(lab, "n7", row["details"])
    assert summary.image_bytes == manifest.image_file.size and summary.from_peers > 0, evidence
    addresses = {r["name"]: r["address"] for r in the_lab.status([*seeders, "n7"])}
    swarm = stats["tracker"]["swarms"].get(manifest.info_hash, {"peers": []})
    booted_peers = [p for p in swarm["peers"] if p["ip"] in (addresses["n1"], addresses["n2"])]
    assert any(p["left"] == 0 and p["uploaded"] > 0 for p in booted_peers), (swarm, addresses)
    try:
        done = {
            name: wait_row(lab, name, lambda r: bool(seeding(r).get("stopped")), 300, "the seed done event")
            for name in seeders
        }
    except LabError as exc:  # what each seeder last said (its progress events: why it still seeds)
        last = {r["name"]: seeding(r) for r in the_lab.status(seeders)}
        raise AssertionError(f"{exc}\nseeding as reported: {json.dumps(last, indent=1)}") from exc
    to_n7 = 0
    for name, seeder_row in done.items():
        s = seeding(seeder_row)
        assert "no node needed the image for 120 s" in s["reason"], s
        assert seeder_row["state"] == "booted" and seeder_row["message"].startswith("seeded "), seeder_row
        to_n7 += int(s["served"].get(addresses["n7"], 0))
        FIGURES.append(f"{name} seeding after boot: {seeder_row['message']}; served {s['served']}")
    assert to_n7 >= manifest.piece_size, (to_n7, {n: seeding(r) for n, r in done.items()})
    # n7's iPXE got its kernel and initramfs from the booted peer the server named: that peer's
    # counters (reported every minute: they have by now) and the head node's, which sent none
    pair = manifest.kernel.size + manifest.initramfs.size
    holder = boot_files(the_lab.status([peer_line.group(1)])[0])
    seeder_ips = {addresses[n] for n in seeders}  # (the second seeder's own fetch came from the first)
    from_holder = sum(int(v) for ip, v in holder.get("served", {}).items() if ip not in seeder_ips)
    assert from_holder >= pair and head_boot_files == 0, (holder, head_boot_files, addresses)
    FIGURES.append(f"n7's kernel and initramfs ({pair / 2**20:.1f} MiB) from booted {peer_line.group(1)}: "
                   f"{from_holder / 2**20:.1f} MiB by its counters, {head_boot_files} B from the head node")
    FIGURES.append(f"n7 got {to_n7 / 2**20:.1f} MiB from booted n1+n2 (their counters), "
                   f"{summary.from_peers / 2**20:.0f} MiB from peers in all")
    # a rolling reboot: n7 boots again. n1 and n2 stopped seeding but hold the image; their services
    # ask the server, which tells them to seed again (seed_on_demand, server/reseed.py), and n7
    # gets pieces from them in their second round (by their per-peer counters)
    the_lab.set_server_rate("50mbit")  # the head node alone would take ~40 s: time for their next ask
    try:
        the_lab.power_cycle("n7")
        rows = {"n7": next_boot(lab, "n7", BOOT_TIMEOUT)}
    finally:
        the_lab.set_server_rate("")
    address = the_lab.status(["n7"])[0]["address"]

    def second_round_to_n7(r: dict) -> bool:
        return seeding(r).get("round", 1) >= 2 and int(seeding(r).get("served", {}).get(address, 0)) > 0

    # one booted seed per leecher: the server tells one of them (its progress event comes within 30 s)
    again: list[dict] = []
    deadline = time.monotonic() + 150
    while not again and time.monotonic() < deadline:
        again = [r for r in the_lab.status(seeders) if second_round_to_n7(r)]
        time.sleep(2)
    assert again, f"neither n1 nor n2 seeded n7's second boot\n{the_lab.evidence(['n7', *seeders], rows)}"
    second = sum(int(seeding(r)["served"][address]) for r in again)
    FIGURES.append(f"n7's second boot (a rolling reboot): {again[0]['name']} seeded again on demand, "
                   f"{second / 2**20:.1f} MiB to n7 by its counters: {again[0]['message']}")
    the_lab.stop_vm("n7")


def test_the_initramfs_own_time_beside_the_same_kernel_with_a_stock_dracut_initramfs(lab: E2ELab) -> None:
    """(10) issue 12, part 6: the initramfs's own time (the guest's clock from the kernel's start
    to switch_root, minus the agent's download stage) of n7, booted alone just before, beside the
    same kernel booting a stock dracut initramfs (tests/helpers/e2e.py: pack's dracut options,
    dracut's own modules, classic init) with n7's kernel command line, its root on a local disk
    (the image's squashfs as a virtio disk) and dracut's DHCP (ip=dhcp rd.neednet=1, from the lab's
    dnsmasq: what a stock initramfs needs for the network, and what ours did before it took
    iPXE's address), in the same lab and run. A figure, not an assertion of it."""
    the_lab, manifest = lab.lab, lab.images.squashfs
    if "n7" not in the_lab.vms or "Switching root" not in the_lab.vms["n7"].console_text():
        pytest.skip("needs n7's boot beside it (test_a_node_booting_later_gets_pieces_from_booted_nodes...)")
    ours_console = the_lab.vms["n7"].console_text()
    assert "(as iPXE got it, no second DHCP)" in ours_console  # swarmboot.ip: no dhclient in ours
    assert "dracut: Starting dhcp for interface" not in ours_console
    (n7_row,) = the_lab.status(["n7"])
    download = BootSummary.from_report(n7_row["details"]).stages.get("download", 0.0)
    images = lab.images.settings.images_dir / IMAGE
    store_dir = images / "versions" / str(manifest.version)
    workdir = lab.workdir / "stock-dracut"
    workdir.mkdir(exist_ok=True)
    initrd, disk = workdir / "initramfs-stock.img", workdir / "root.squashfs"
    started = time.monotonic()
    stock_dracut_initramfs(images / "rootfs", manifest.kernel_version, initrd)
    built = time.monotonic() - started
    shutil.copyfile(store_dir / manifest.image_file.name, disk)
    stock: dict[str, str] = {}  # the stock boots' consoles: with DHCP, with n7's address static
    for name, static, index in (("s1", False, 90), ("s2", True, 91)):
        cmdline = stock_command_line(kernel_command_line(ours_console), static=static)
        assert ("ip=dhcp" in cmdline.split()) != static and "rd.neednet=1" in cmdline.split(), cmdline
        vm = the_lab.start_vm(name, mac_for(index), "bios", deadline_s=600.0, disks=(disk,),
                              kernel=(store_dir / manifest.kernel.name, initrd, cmdline))
        try:
            vm.wait_for(r"dracut: Switching root", 420)
            vm.wait_for(r"Welcome to|systemd\[1\]", 120)  # the image's own systemd runs on the disk's root
        finally:
            the_lab.stop_vm(name)
        stock[name] = vm.console_text()
        assert "swarmboot: agent started" not in stock[name]
        dhcp = bool(re.search(r"dracut: Starting dhcp for interface", stock[name]))
        assert dhcp != static, stock[name][-3000:]
    ours_at = kernel_clock(ours_console)["switch_root"]
    dhcp_at, static_at = (kernel_clock(stock[n])["switch_root"] for n in ("s1", "s2"))
    ours = ours_at - download
    FIGURES.append(
        f"initramfs own time (guest clock, kernel start -> switch_root, minus the download): n7 "
        f"{ours:.1f} s (switch_root at {ours_at:.1f} s, download {download:.1f} s, initramfs "
        f"{manifest.initramfs.size / MB:.1f} MB, iPXE's address); the same kernel with a stock dracut "
        f"initramfs ({initrd.stat().st_size / MB:.1f} MB, built in {built:.0f} s), root on a local disk: "
        f"{dhcp_at:.1f} s with DHCP in dracut, {static_at:.1f} s with n7's address as a static ip=; "
        f"ratio {ours / dhcp_at:.2f} and {ours / static_at:.2f} (goal <= 1.2)")
    for name, text in (("n7", ours_console), ("stock, DHCP", stock["s1"]), ("stock, static", stock["s2"])):
        phases, clock = initramfs_phases(text), kernel_clock(text)
        if "agent_exit" in clock:  # ours: the agent (its own stages are in its figures), then dracut
            listed = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            rest = f"the agent {clock['agent_exit'] - clock['agent']:.2f} (download {download:.2f}), " \
                   f"agent exit -> switch_root {clock['switch_root'] - clock['agent_exit']:.2f}"
        else:
            phases.pop("dhcp", None)  # no agent: its markers are not there
            listed = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            to_switch = clock["switch_root"] - sum(phases.values())
            rest = f"the network, the root's mount -> switch_root {to_switch:.2f}"
        FIGURES.append(f"{name} initramfs phases (guest clock, s): {listed}; {rest}")


def check_named_by_its_port(lab: E2ELab, row: dict) -> None:
    """(7) n1 was defined by its switch port only: its unknown MAC, seen by the switch (SNMP, from
    the lab bridge's forwarding table) on n1's tap, was bound to it at its first iPXE request, so it
    booted as n1 without the menu; the binding is in its log; its agent heard the tap's LLDP frame
    and, named by the iPXE script, reported it with a stage's event instead of waiting for it
    before its plan request (same switch, same port: no move logged)."""
    the_lab, tap = lab.lab, lab.lab.tap_of(PORT_NAMED)
    console = the_lab.vms[PORT_NAMED].console_text()
    evidence = the_lab.evidence([PORT_NAMED])
    assert "unknown machine" not in console, evidence  # no menu
    node = json.loads(the_lab.cli("node", "show", PORT_NAMED, "--json"))
    assert node["macs"] == [lab.mac(PORT_NAMED)], node
    kinds = [entry["kind"] for entry in node["log"]]
    assert kinds == ["bound"], node["log"]
    assert f"seen on switch labsw port {tap} (snmp)" in node["log"][0]["message"]
    assert row["details"].get("lldp", {}).get("lldp_port") == tap, row["details"]
    assert row["details"]["lldp"].get("lldp_system") == "labsw"
    assert row["details"]["lldp"].get("mac") == lab.mac(PORT_NAMED)
    ports = json.loads(the_lab.namespace.run(
        [*swarmboot_command(), "switch", "ports", "labsw", "--json"], env=the_lab.env(), timeout=60).stdout)
    seen = {(p["mac"], p["port"], p["node"]) for p in ports["ports"]}
    assert (lab.mac(PORT_NAMED), tap, PORT_NAMED) in seen, ports
    FIGURES.append(f"{PORT_NAMED}: named by its port ({node['log'][0]['message']}); LLDP heard: "
                   f"{row['details']['lldp']}")


def restart_during_download(lab: E2ELab, names: list[str], outage: float = 5.0) -> dict[str, float]:
    """Once a node is downloading, stop the server, wait `outage` seconds, start it again; the
    nodes' download progress at that moment (the test checks that they were not done)."""
    the_lab = lab.lab
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        rows = {r["name"]: r for r in the_lab.status(names)}
        progress = {n: rows[n]["progress"] or 0.0 for n in names}
        if any(rows[n]["stage"] == "download" and 0.02 <= progress[n] < 0.6 for n in names):
            the_lab.stop_server()
            time.sleep(outage)
            the_lab.start_server()
            FIGURES.append(f"server restarted ({outage:.0f} s down) while {'+'.join(names)} downloaded at "
                           + ", ".join(f"{n} {p:.0%}" for n, p in progress.items()))
            return progress
        time.sleep(0.3)
    pytest.fail("no node reached its download stage:\n" + the_lab.evidence(names))


def test_service_mode_takes_ssh_in_the_initramfs_then_boots_into_tmpfs(lab: E2ELab) -> None:
    """(5) service mode: SSH into the initramfs with the group's key and run a command; leaving the
    console shell goes on booting; (7) the server (tracker, seeder, HTTP, dnsmasq) is restarted
    while the node downloads, and it boots (issue 13; not in the two-node boot, whose check that
    pieces went between the nodes a restart defeats: after it the two never connected to each
    other in 2 of 3 runs, each fetching from the server alone); (3) the tmpfs root (tar.zst
    unpacked into RAM) boots."""
    the_lab, manifest = lab.lab, lab.images.tar
    vm = the_lab.start_vm("n3", lab.mac("n3"))
    ssh_line = vm.wait_for(r"SSH: ssh root@(\d+\.\d+\.\d+\.\d+)", timeout=480)
    address = ssh_line.group(1)
    prompt = vm.wait_for(r"swarmboot# ", timeout=60, start_at=ssh_line.end())
    deadline = time.monotonic() + 30
    while the_lab.status(["n3"])[0]["state"] != "service" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert the_lab.status(["n3"])[0]["state"] == "service", the_lab.evidence(["n3"])
    command = "cat /run/swarmboot/env; test -x /usr/lib/swarmboot/agent/swarmboot-agent && echo IN-INITRAMFS"
    result = None
    for _attempt in range(5):  # dropbear may still be starting
        result = the_lab.namespace.run(ssh_argv(lab.ssh_key, address, command), check=False, timeout=60)
        if result.returncode == 0:
            break
        time.sleep(3)
    assert result is not None and result.returncode == 0, f"ssh failed: {result and result.stderr}\n" + \
        the_lab.evidence(["n3"])
    assert "SWARMBOOT_NODE=n3" in result.stdout and "IN-INITRAMFS" in result.stdout, result.stdout
    assert "SWARMBOOT_ROOT_MODE=tmpfs" in result.stdout, result.stdout
    vm.type("exit\n")  # leave the console's shell: the boot goes on
    vm.wait_for(r"stage service done|stage pre done", timeout=60, start_at=prompt.end())
    restarted_at = restart_during_download(lab, ["n3"])
    rows = the_lab.wait_booted(["n3"], timeout=BOOT_TIMEOUT)
    assert restarted_at["n3"] < 0.9, restarted_at  # the restart came while it still needed the server
    row, evidence = rows["n3"], the_lab.evidence(["n3"], rows)
    assert (row["image"], row["version"]) == (IMAGE, manifest.version), evidence
    assert row["details"].get("root_fstype") == "tmpfs", f"/ of n3 is not a tmpfs\n{evidence}"
    summary = summarize(lab, "n3", row["details"])
    assert summary.image_bytes == manifest.image_file.size, evidence
    assert summary.stages.get("root", 0) > 0, evidence


def test_unreachable_server_ends_in_the_rescue_shell_with_a_clear_message(lab: E2ELab) -> None:
    """(6) the node's kernel arguments name a server that does not answer: after plan_timeout the
    console says which stage failed, why and what to check, and a working rescue shell opens."""
    the_lab = lab.lab
    vm = the_lab.start_vm("n4", lab.mac("n4"))
    dead = DEAD_SERVER_ARGS.split()[0].split("=", 1)[1].format(ip=the_lab.spec.server_ip)
    started = vm.wait_for(r"swarmboot: agent started", timeout=480)
    t0 = time.monotonic()
    failed = vm.wait_for(r"stage 'plan' failed \(attempt 1 of 3\): (.*)", timeout=15 + 60,
                         start_at=started.end())
    assert "no server gave the boot plan" in failed.group(1) and dead in failed.group(1), failed.group(0)
    hint = vm.wait_for(r"what to check: (.*)", timeout=10, start_at=failed.end())
    assert "swarmboot serve" in hint.group(1) and "swarmboot.server" in hint.group(1)
    vm.wait_for(r"swarmboot: THE BOOT STOPPED", timeout=30, start_at=failed.end())
    prompt = vm.wait_for(r"swarmboot# ", timeout=60, start_at=failed.end())
    to_shell = time.monotonic() - t0  # bounded by the waits above; recorded, not asserted
    vm.type("echo rescue-$((6*7))\n")
    vm.wait_for(r"rescue-42", timeout=30, start_at=prompt.end())
    FIGURES.append(f"n4 (dead server, plan_timeout=15 s): the rescue shell {to_shell:.0f} s after the "
                   "agent started")
    vm.stop()
