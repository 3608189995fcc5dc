"""The nfs root mode's export, for real: `swarmboot serve` in the lab's network namespace runs
nfs-ganesha, which exports the group's packed version (its squashfs, loop-mounted read-only) to
the group's network. Clients in other namespaces read it with libnfs (nfs-ls, nfs-cat, nfs-cp):
the host kernel has no NFS client (FACTS.md); the nodes' kernel client is the e2e's
(tests/e2e/test_nfs.py).

Shown: the content is the squashfs's, file by file (type, mode, owner, size, bytes); writes are
refused; a client outside the group's network is refused; after a restart of serve the export is
back; `serve --no-nfs` exports nothing and the plan says why.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.lab import BRIDGE, Lab, LabSpec
from lab.netns import Namespace
from lab.packed import make_version
from lab.server_process import start_server
from lab.vm import mac_for
from server.nfs import GRACE_SECONDS

pytestmark = [pytest.mark.root, pytest.mark.timeout(600)]
SUBNET = "10.79.0.0/24"
IMAGE = "nfsimg"


def tree(root: Path) -> None:
    """Owners, modes, a symlink, a hard link, an empty and a nested file."""
    (root / "home" / "alice").mkdir(parents=True)
    (root / "home" / "alice" / "notes.txt").write_text("alice's notes\n")
    os.chown(root / "home" / "alice", 1000, 1000)
    os.chown(root / "home" / "alice" / "notes.txt", 1000, 100)
    (root / "usr" / "bin").mkdir(parents=True)
    tool = root / "usr" / "bin" / "tool"
    tool.write_bytes(os.urandom(200_000))
    tool.chmod(0o4755)
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "shadow").chmod(0o640)
    os.symlink("/usr/bin/tool", root / "usr" / "bin" / "tool-link")
    os.link(tool, root / "usr" / "bin" / "tool-hardlink")
    (root / "empty").touch()


def expected(mounted: Path) -> dict[str, tuple[str, int, int, int, str]]:
    """path → (type and mode as ls shows it, uid, gid, size, sha256 of a regular file's bytes)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(mounted):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            mode = rwx(stat.filemode(st.st_mode))
            result[str(path.relative_to(mounted))] = (mode, st.st_uid, st.st_gid, size, digest)
    return result


def rwx(mode: str) -> str:
    """The mode as nfs-ls prints it: it shows r, w and x only (no setuid, setgid or sticky letter;
    the e2e checks those through the kernel's client)."""
    return mode.translate(str.maketrans({"s": "x", "t": "x", "S": "-", "T": "-"}))


def url(path: str = "") -> str:
    return f"nfs://10.79.0.1/swarmboot/{IMAGE}/1{path}?version=4"


def nfs_listing(ns: Namespace) -> dict[str, tuple[str, int, int, int]]:
    out = ns.run(["nfs-ls", "-R", url()], timeout=60).stdout
    result = {}
    for line in out.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6:
            mode, _links, uid, gid, size, name = fields
            result[name] = (mode, int(uid), int(gid), int(size))
    return result


def nfs_bytes(ns: Namespace, path: str) -> bytes:
    return subprocess.run(ns.argv(["nfs-cat", url("/" + path)]), capture_output=True, timeout=60,
                          check=True).stdout


@pytest.fixture
def nfs_lab(tmp_path: Path) -> Iterator[tuple[Lab, Namespace, Namespace, Path]]:
    home = tmp_path / "home"
    manifest = make_version(home / "images", IMAGE, 1, size=1 << 20, tree_hook=tree)
    squashfs = home / "images" / IMAGE / "versions" / str(manifest.version) / "image.squashfs"
    spec = LabSpec(home=home, workdir=tmp_path / "lab", subnet=SUBNET)
    with Lab(spec) as lab:
        lab.add_network()
        lab.cli("group", "add", "diskless", "--image", IMAGE, "--root", "nfs", "--network", "lab")
        lab.cli("node", "add", "c1", "--group", "diskless", "--mac", mac_for(61))
        inside, outside = lab.netlab.namespace("in"), lab.netlab.namespace("out")
        for ns, peer, address in ((inside, "vin", "10.79.0.50/24"), (outside, "vout", "10.80.0.5/24")):
            lab.netlab.veth(lab.namespace, peer, ns, "eth0")
            lab.netlab.attach(lab.namespace, peer, BRIDGE)
            lab.netlab.address(ns, "eth0", address)
        outside.ip("route", "add", "10.79.0.1/32", "dev", "eth0")  # it reaches the server, from outside
        lab.namespace.ip("route", "add", "10.80.0.5/32", "dev", BRIDGE)
        lab.start_server()
        yield lab, inside, outside, squashfs


def wait_exported(lab: Lab, count: int = 1) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        nfs = lab.admin("stats").get("nfs", {})
        if nfs.get("running") and len(nfs.get("exports", [])) >= count:
            return nfs
        time.sleep(0.5)
    nfs = lab.admin("stats").get("nfs")
    pytest.fail(f"the server exports nothing after 60 s: {nfs}\n{lab.server_tail()}")


def test_the_export_is_the_squashfs_read_only_and_only_to_the_groups_network(
    nfs_lab: tuple[Lab, Namespace, Namespace, Path], tmp_path: Path
) -> None:
    lab, inside, outside, squashfs = nfs_lab
    nfs = wait_exported(lab)
    assert nfs["exports"] == [{"image": IMAGE, "version": 1, "path": f"/swarmboot/{IMAGE}/1",
                               "clients": [SUBNET], "mountpoint": nfs["exports"][0]["mountpoint"]}]
    # what the squashfs holds, read from our own read-only loop mount of it
    mounted = tmp_path / "squashfs"
    mounted.mkdir()
    subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", str(squashfs), str(mounted)], check=True,
                   timeout=60)
    try:
        want = expected(mounted)
    finally:
        subprocess.run(["umount", str(mounted)], check=True, timeout=60)
    got = nfs_listing(inside)
    assert set(got) == set(want), f"only on NFS: {set(got) - set(want)}; missing: {set(want) - set(got)}"
    for path, (mode, uid, gid, size, digest) in want.items():
        assert got[path][:3] == (mode, uid, gid), path
        if not mode.startswith("d"):
            assert got[path][3] == size, path
        if digest:
            assert hashlib.sha256(nfs_bytes(inside, path)).hexdigest() == digest, path
    assert got["etc/shadow"][0] == "-rw-r-----" and got["home/alice/notes.txt"][1:3] == (1000, 100)
    # writes are refused: a new file, and over an existing one
    local = tmp_path / "x"
    local.write_text("written from a node\n")
    for target in ("/new-file", "/etc/shadow"):
        result = inside.run(["nfs-cp", str(local), url(target)], check=False, timeout=60)
        assert result.returncode != 0, f"a write to {target} was accepted"
        assert "ROFS" in result.stderr or "ACCESS" in result.stderr or "PERM" in result.stderr, result.stderr
    assert "new-file" not in nfs_listing(inside)
    # a client outside the group's network gets nothing
    refused = outside.run(["nfs-ls", url()], check=False, timeout=60)
    assert refused.returncode != 0 and "etc" not in refused.stdout, refused.stdout
    assert "ACCESS" in refused.stderr or "PERM" in refused.stderr or "NOENT" in refused.stderr, refused.stderr


def test_after_a_restart_of_serve_the_export_is_back_and_no_nfs_turns_it_off(
    nfs_lab: tuple[Lab, Namespace, Namespace, Path],
) -> None:
    lab, inside, _outside, _squashfs = nfs_lab
    wait_exported(lab)
    before = nfs_bytes(inside, "usr/bin/tool")
    lab.stop_server()
    assert inside.run(["nfs-ls", url()], check=False, timeout=60).returncode != 0  # down with serve
    lab.start_server()
    wait_exported(lab)
    # the restarted ganesha is in its grace period (clients reclaim their state; a new open is told
    # NFS4ERR_GRACE, which the kernel's client retries and libnfs does not): over in GRACE_SECONDS
    deadline, result = time.monotonic() + GRACE_SECONDS + 20, None
    while time.monotonic() < deadline:
        result = subprocess.run(inside.argv(["nfs-cat", url("/usr/bin/tool")]), capture_output=True,
                                timeout=60, check=False)
        if result.returncode == 0:
            break
        time.sleep(1)
    assert result is not None and result.returncode == 0, result and result.stderr
    assert result.stdout == before
    lab.stop_server()
    server = start_server(lab.spec.home, listen=f"{lab.spec.server_ip}:{lab.spec.port}",
                          extra_args=("--no-nfs",), env=lab.server_env(), namespace=lab.namespace,
                          log_path=lab.server_log)
    try:
        assert server.admin("stats")["nfs"] == {}
        status, body = lab.http().request(f"{lab.spec.server_url}/api/v1/plan?node=c1&plan_version=1.3")
        assert status == 409, body
        assert b"does not export NFS roots" in body and b"--no-nfs" in body
        assert inside.run(["nfs-ls", url()], check=False, timeout=60).returncode != 0
    finally:
        server.stop()
