"""`swarmboot image grab` end to end: a booted QEMU node's root taken into a new image by rsync over
SSH (the node authorizes its group's key; the e2e image has openssh-server and rsync), what must
stay behind checked in the tree file by file, a second grab into the existing image after a
dry run that lists exactly the change, then the image packed and booted by the same node.

n1 is the node: test_boot.py boots it (and keeps it up for this); run alone, this test boots it."""

from __future__ import annotations

import json
import time

import pytest

from lab.lab import LAB_CONSOLE, make_ssh_key, ssh_argv
from lab.server_process import swarmboot_command
from tests.helpers.e2e import FIGURES, GRAB_DEADLINE, GROUP_ARGS, IMAGE, E2ELab, next_boot

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(2400)]
NODE = "n1"
GOLDEN = "golden"
BOOT_TIMEOUT = 600


def booted_node(lab: E2ELab) -> dict:
    """n1 booted into the e2e image: still up from test_boot.py, or booted now."""
    the_lab = lab.lab
    vm = the_lab.vms.get(NODE)
    if vm is not None and vm.running():
        (row,) = the_lab.status([NODE])
        if row["state"] == "booted":
            return row
        the_lab.power_cycle(NODE)
    elif vm is not None:
        the_lab.power_cycle(NODE)
    else:
        the_lab.start_vm(NODE, lab.mac(NODE), lab.firmware(NODE), deadline_s=GRAB_DEADLINE)
    return the_lab.wait_booted([NODE], timeout=BOOT_TIMEOUT)[NODE]


def test_a_booted_node_grabbed_into_an_image_keeps_its_tuning_leaves_its_identity_and_boots(
    lab: E2ELab,
) -> None:
    the_lab, settings = lab.lab, lab.lab.settings
    row = booted_node(lab)
    assert row["image"] == IMAGE, the_lab.evidence([NODE])
    address = json.loads(the_lab.cli("node", "show", NODE, "--json"))["address"]

    def on_node(command: str) -> str:
        result = None
        for _attempt in range(5):  # sshd may still be starting right after the booted report
            result = the_lab.namespace.run(ssh_argv(lab.ssh_key, address, command), check=False, timeout=60)
            if result.returncode == 0:
                return result.stdout
            time.sleep(3)
        raise AssertionError(f"ssh {command!r}: {result and result.stderr}\n" + the_lab.evidence([NODE]))

    def grab(*args: str, check: bool = True) -> tuple[int, str]:
        argv = [*swarmboot_command(), "image", "grab", NODE, *args]
        result = the_lab.namespace.run(argv, env=the_lab.env(), check=False, timeout=1800)
        assert not check or result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
        return result.returncode, result.stdout + result.stderr

    # the administrator's tuning, and what must not come along
    node_key = on_node("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    node_machine_id = on_node("cat /etc/machine-id").strip()
    on_node("echo tuned > /etc/golden-tuning && mkdir -p /srv/scratch /var/cache/golden && "
            "echo junk > /srv/scratch/big && echo junk > /tmp/junk && echo kept > /var/cache/golden/x")
    exclude = lab.workdir / "grab.exclude"
    exclude.write_text("# the node's scratch space\n/srv/scratch/*\n")
    key = ("--identity", str(lab.ssh_key))

    # bad input: a key the node does not authorize, an address where no node answers
    wrong = lab.workdir / "wrong_key"
    make_ssh_key(wrong)
    code, out = grab(GOLDEN, "--new", "--identity", str(wrong), check=False)
    assert code != 0 and "refused the key" in out and "--ssh-key-file" in out, out
    code, out = grab(GOLDEN, "--new", *key, "--address", the_lab.spec.host(98), check=False)
    assert code != 0 and "cannot reach node n1" in out, out
    assert not (settings.images_dir / GOLDEN).exists()

    code, out = grab(GOLDEN, "--new", *key, "--dry-run")
    assert "/etc/golden-tuning" in out and "nothing was written" in out, out
    assert not (settings.images_dir / GOLDEN).exists()

    started = time.monotonic()
    grab(GOLDEN, "--new", *key, "--exclude-file", str(exclude))
    seconds = time.monotonic() - started
    tree = settings.images_dir / GOLDEN / "rootfs"
    assert (tree / "etc/golden-tuning").read_text() == "tuned\n"
    assert (tree / "var/cache/golden/x").read_text() == "kept\n"
    for empty in ("proc", "sys", "run", "tmp", "srv/scratch"):  # pseudo fs, RAM, the exclude file
        assert (tree / empty).is_dir() and not any((tree / empty).iterdir()), empty
    # /dev: only the few nodes every image has (image create's), none of the node's devtmpfs
    image_dev = {p.name for p in (settings.images_dir / IMAGE / "rootfs/dev").iterdir()}
    assert {p.name for p in (tree / "dev").iterdir()} <= image_dev, sorted((tree / "dev").iterdir())
    assert not list((tree / "etc/ssh").glob("ssh_host_*")), "the node's SSH host keys came along"
    assert (tree / "etc/machine-id").read_text() == "", "the node's machine-id came along"
    assert (tree / "etc/hostname").read_text() == "localhost\n"
    for agent_file in ("usr/local/lib/swarmboot", "etc/systemd/system/swarmboot-booted.service"):
        assert not (tree / agent_file).exists(), agent_file  # the booted report (with the boot's token)
    assert not list((tree / "etc/systemd/network").glob("*swarmboot*"))
    authorized = tree / "root/.ssh/authorized_keys"
    assert not authorized.exists() or "swarmboot" not in authorized.read_text()
    show = the_lab.cli("image", "show", GOLDEN)
    assert f"the root of node {NODE} ({address})" in show, show
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    FIGURES.append(f"image grab {NODE} --new: {size / 2**20:.0f} MiB of files in {seconds:.0f} s "
                   f"(rsync over SSH from a TCG guest, plus image create's phases)")

    # a second change; the dry run into the existing image names it and writes nothing
    on_node("echo second > /etc/golden-second && rm /etc/golden-tuning")
    code, out = grab(GOLDEN, *key, "--exclude-file", str(exclude), "--dry-run", "--json")
    changes = json.loads(out[out.index("{"):])
    assert "/etc/golden-second" in changes["added"] and "/etc/golden-tuning" in changes["deleted"], changes
    assert not (tree / "etc/golden-second").exists()
    inode = (tree / "usr/bin/bash").stat().st_ino
    (tree / "srv/scratch/image-own").write_text("the image's\n")  # at an excluded path: the image keeps it
    started = time.monotonic()
    grab(GOLDEN, *key, "--exclude-file", str(exclude))
    again = time.monotonic() - started
    assert (tree / "etc/golden-second").read_text() == "second\n"
    assert not (tree / "etc/golden-tuning").exists()
    assert (tree / "usr/bin/bash").stat().st_ino == inode, "an unchanged file was copied, not linked"
    assert (tree / "srv/scratch/image-own").read_text() == "the image's\n"
    assert not (tree / "srv/scratch/big").exists()
    assert "grabbed   the root of node n1" in the_lab.cli("image", "show", GOLDEN)
    FIGURES.append(f"image grab {NODE} into the existing image: {again:.0f} s (unchanged files linked)")

    # packed and booted: n1 comes up from the grabbed image, with its own identity again
    the_lab.cli("image", "pack", GOLDEN, timeout=1800)
    public = lab.ssh_key.with_name(lab.ssh_key.name + ".pub")
    the_lab.cli("group", "add", GOLDEN, "--image", GOLDEN, "--root", "overlay", "--ssh-key-file", str(public),
                "--console", LAB_CONSOLE, "--kernel-args", GROUP_ARGS)
    the_lab.cli("node", "set", NODE, "--group", GOLDEN)
    try:
        the_lab.power_cycle(NODE)
        row = next_boot(lab, NODE, BOOT_TIMEOUT)
        assert row["image"] == GOLDEN and row["details"]["root_fstype"] == "overlay", the_lab.evidence([NODE])
        assert on_node("cat /etc/golden-second") == "second\n"
        assert on_node("hostname").strip() == NODE
        assert on_node("cat /etc/machine-id").strip() == node_machine_id  # the node's, made by the agent
        assert on_node("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1] == node_key  # the server's
    finally:
        the_lab.cli("node", "set", NODE, "--group", "overlay")
