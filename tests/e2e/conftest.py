"""End-to-end fixtures: one packed image in two formats, and one virtual cluster for the session.

`e2e_images` makes the e2e image by importing the session's base image as a container image: its
tree as a one-layer OCI archive (umoci, skopeo: tests/helpers/oci.py) taken in by the real
`image import` (so every boot below boots an imported image; test_image_import.py checks that an
import is the tree file by file), with openssh-server and rsync added (`image grab`,
test_grab.py). It packs it twice with the real pack (the frozen agent built and checked, dracut
with the swarmboot module): version 1 squashfs (overlay root), version 2 tar.zst (tmpfs root).

`lab` is the virtual cluster (lab/lab.py): a network namespace with a bridge, the real
`swarmboot serve` listening on it with dnsmasq (DHCP + PXE), and this inventory, made with the CLI:

    network lab 10.77.0.0/24 (nodes .10-.99, pool .100-.199)
    group overlay  image e2e version 1, root overlay, the test's SSH key (image grab, test_grab.py)
    group tmpfs    image e2e version 2, root tmpfs, the test's SSH key
    group disk, disk-uefi, raid: image e2e version 1, root disk (tests/helpers/e2e.py: the layouts)
    group nfs      image e2e version 1, root nfs (the server's export), a probe unit (NFS_POST)
    n1 overlay (BIOS)   n2 overlay (UEFI)   n3 tmpfs, service mode   n4 overlay, dead server URL
    d1 disk (BIOS)      d2 disk-uefi (UEFI) d3 disk, a disk too small  d4 raid (BIOS, two disks)
    n5 nfs (BIOS)       n6 nfs (UEFI)
    switch labsw: the lab's bridge as a managed switch (lab/labswitch.py: snmpsim answering from
    the bridge's real forwarding table, LLDP frames on every tap); n1 has no MAC, only its port
    (`--switch labsw --port sbtap-n1`): it is named by the tap it boots on

Measured figures (sizes, timelines, agent times) are collected in FIGURES and printed at the end
of the run ("swarmboot e2e figures"; tests/helpers/e2e.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ground.config import Settings
from lab.lab import LAB_CONSOLE, Lab, LabSpec, make_ssh_key
from lab.vm import OVMF_CODE, mac_for
from tests.helpers.e2e import (
    DEAD_SERVER_ARGS,
    DISK_ARGS,
    DISK_LAYOUT,
    DISK_POST,
    FIGURES,
    GRAB_PACKAGES,
    GROUP_ARGS,
    IMAGE,
    MARKER,
    NFS_POST,
    NODES,
    PORT_NAMED,
    RAID_LAYOUT,
    E2EImages,
    E2ELab,
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("swarmboot e2e figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _require_lab_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, taps, QEMU)")
    for tool in ("qemu-system-x86_64", "dnsmasq", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make setup` (scripts/host-packages.txt)")
    if not OVMF_CODE.is_file():
        pytest.fail(f"{OVMF_CODE} is missing: apt-get install ovmf (make setup)")


@pytest.fixture(scope="session")
def e2e_images(
    base_image: tuple[Settings, str],
    settings_for: Callable[[Path], Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[E2EImages]:
    _require_lab_tools()
    from builder.agent_bundle import read_info
    from builder.create import create_image
    from builder.origin import Origin
    from builder.pack import pack
    from builder.treeops import remove_tree
    from ground.store import ImageStore
    from tests.helpers.oci import tree_archive

    home = tmp_path_factory.mktemp("e2e-home")
    settings = settings_for(home)
    base_tree = ImageStore(base_image[0]).rootfs(base_image[1])
    archive = tree_archive(base_tree, tmp_path_factory.mktemp("e2e-oci"))
    # with an SSH server and rsync, which `image grab` needs on the node (test_grab.py)
    create_image(settings, IMAGE, origin=Origin("oci", f"oci-archive:{archive}"), packages=GRAB_PACKAGES)
    archive.unlink()
    squashfs = pack(settings, IMAGE)  # the defaults: squashfs, with the agent
    # version 2 has content version 1 lacks: a disk reinstall to it shows it on / (test_disk.py)
    marker = settings.images_dir / IMAGE / "rootfs" / MARKER
    marker.write_text("2\n")
    tar = pack(settings, IMAGE, fmt="tar.zst")
    info = read_info(settings.agent_dir)
    assert info is not None, "pack did not build the agent bundle"
    yield E2EImages(settings, squashfs.manifest, tar.manifest, info.size, info.libtorrent)
    remove_tree(home)


@pytest.fixture(scope="session")
def lab(e2e_images: E2EImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ELab]:
    workdir = tmp_path_factory.mktemp("e2e-lab")
    public_key = make_ssh_key(workdir / "id_ed25519")
    # booted nodes seed for a node that comes 2 minutes later (test_boot.py), then stop by that rule
    spec = LabSpec(home=e2e_images.settings.home, workdir=workdir, settings=(("seed_idle_seconds", "120"),))
    with Lab(spec) as the_lab:
        the_lab.add_network()
        switch = the_lab.add_switch()
        the_lab.cli("switch", "add", "labsw", *switch.cli_args())
        for group, version, root, extra in (
            ("overlay", e2e_images.squashfs.version, "overlay", ("--ssh-key-file", str(public_key))),
            ("tmpfs", e2e_images.tar.version, "tmpfs", ("--ssh-key-file", str(public_key))),
        ):
            the_lab.cli("group", "add", group, "--image", IMAGE, "--image-version", str(version),
                        "--root", root, "--console", LAB_CONSOLE, "--kernel-args", GROUP_ARGS, *extra)
        (workdir / "disk.yaml").write_text(DISK_LAYOUT)
        (workdir / "raid.yaml").write_text(RAID_LAYOUT)
        (workdir / "post.sh").write_text(DISK_POST)
        for group, layout in (("disk", "disk.yaml"), ("disk-uefi", "disk.yaml"), ("raid", "raid.yaml")):
            the_lab.cli("group", "add", group, "--image", IMAGE,
                        "--image-version", str(e2e_images.squashfs.version), "--root", "disk",
                        "--layout", str(workdir / layout), "--post", str(workdir / "post.sh"),
                        "--console", LAB_CONSOLE, "--kernel-args", DISK_ARGS)
        (workdir / "nfs-post.sh").write_text(NFS_POST)
        the_lab.cli("group", "add", "nfs", "--image", IMAGE,
                    "--image-version", str(e2e_images.squashfs.version), "--root", "nfs", "--network", "lab",
                    "--post", str(workdir / "nfs-post.sh"),
                    "--console", LAB_CONSOLE, "--kernel-args", GROUP_ARGS)
        for name, (index, group, _firmware) in NODES.items():
            extra = ("--service",) if name == "n3" else ()
            if name == "n4":
                extra = ("--kernel-args", DEAD_SERVER_ARGS.format(ip=spec.server_ip))
            if name == PORT_NAMED:  # no MAC: bound to the one its switch port shows at its first boot
                extra = ("--switch", "labsw", "--port", the_lab.tap_of(name))
            else:
                extra = (*extra, "--mac", mac_for(index))
            the_lab.cli("node", "add", name, "--group", group, *extra)
        the_lab.start_server()
        yield E2ELab(the_lab, e2e_images, workdir / "id_ed25519", workdir)
