"""`image import` with the real tools: an OCI archive built here with umoci from the base image's
tree (layer 1), a second layer that deletes, replaces, re-owns and adds files (umoci's
whiteouts), a third made by hand with an opaque directory; skopeo reads the archive, umoci
unpacks it, and the imported tree is checked file by file against the base. Hostile layers
(`../`, an absolute path, a write through a symlink to /, a hard link out) and a damaged archive
are refused with a message naming the layer and the member, and nothing is left behind.
The imported image is then packed (squashfs, initramfs with the agent's dracut module)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.image_diff import compare, walk_tree
from builder.treeops import remove_tree
from ground.config import Settings
from ground.store import ImageStore
from tests.helpers.oci import TAG, layer_tar, layout_of_tree, new_layout, sh, to_archive

pytestmark = pytest.mark.root
VENV_BIN = Path(sys.executable).parent
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")  # v2, permitted: cap_net_raw


def cli(settings: Settings, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARMBOOT_HOME": str(settings.home), "SWARMBOOT_HOOKS_DIR": str(settings.hooks_dir)}
    return subprocess.run([str(VENV_BIN / "swarmboot"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@dataclass
class Imported:
    settings: Settings
    base_rootfs: Path
    archive: Path
    output: str

    @property
    def rootfs(self) -> Path:
        return ImageStore(self.settings).rootfs("imp")


@pytest.fixture(scope="module")
def imported(
    base_image: tuple[Settings, str], settings_for: Callable[[Path], Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Imported]:
    work = tmp_path_factory.mktemp("import")
    settings = settings_for(work / "home")
    base_rootfs = ImageStore(base_image[0]).rootfs(base_image[1])
    layout, bundle = layout_of_tree(base_rootfs, work)
    root = bundle / "rootfs"
    (root / "etc/issue").unlink()  # a whiteout
    shutil.rmtree(root / "usr/share/doc/zstd")  # a whole directory's whiteout
    (root / "etc/issue.net").write_text("replaced by layer 2\n")
    site = root / "opt/site"
    site.mkdir(parents=True)
    for name in ("old1", "old2"):
        (site / name).write_text(f"{name}, hidden by layer 3's opaque directory\n")
    owned = root / "opt/owned"
    owned.write_text("owned by 1234:5678, mode 0640, with a user xattr\n")
    os.chown(owned, 1234, 5678)
    owned.chmod(0o640)
    os.setxattr(owned, "user.swarmboot", b"kept")
    os.setxattr(owned, "security.capability", CAP_NET_RAW)  # what ping carries
    os.link(owned, root / "opt/owned-link")
    sh("umoci", "repack", "--image", f"{layout}:{TAG}", str(bundle))
    opaque = layer_tar(work / "opaque.tar", [("opt/", "dir", ""), ("opt/site/", "dir", ""),
                                             ("opt/site/.wh..wh..opq", "file", ""),
                                             ("opt/site/new", "file", "layer 3\n")])
    sh("umoci", "raw", "add-layer", "--image", f"{layout}:{TAG}", str(opaque))
    archive = to_archive(layout, work / "compute.oci.tar")
    remove_tree(bundle)
    made = cli(settings, "image", "import", "imp", f"oci-archive:{archive}")
    assert made.returncode == 0, made.stdout + made.stderr
    yield Imported(settings, base_rootfs, archive, made.stdout + made.stderr)
    remove_tree(work)


def test_the_imported_tree_is_the_base_with_the_layers_changes_file_by_file(imported: Imported) -> None:
    root = imported.rootfs
    assert not (root / "etc/issue").exists() and not (root / "usr/share/doc/zstd").exists()
    assert (root / "etc/issue.net").read_text() == "replaced by layer 2\n"
    assert sorted(p.name for p in (root / "opt/site").iterdir()) == ["new"]  # opaque: old1, old2 gone
    owned = (root / "opt/owned").stat()
    assert (owned.st_uid, owned.st_gid, owned.st_mode & 0o7777) == (1234, 5678, 0o640)
    assert os.getxattr(root / "opt/owned", "user.swarmboot") == b"kept"
    assert os.getxattr(root / "opt/owned", "security.capability") == CAP_NET_RAW
    assert (root / "opt/owned-link").stat().st_ino == owned.st_ino  # the hard link stays one
    diff = compare("imp", walk_tree(imported.base_rootfs, "base"), walk_tree(root, "imported"))
    assert diff.packages_added == diff.packages_removed == diff.packages_upgraded == {}
    assert set(diff.files_added) == {"/opt/site", "/opt/site/new", "/opt/owned", "/opt/owned-link"}
    assert set(diff.files_removed) == {"/etc/issue", "/usr/share/doc/zstd",
                                       *(f"/usr/share/doc/zstd/{p.name}"
                                         for p in (imported.base_rootfs / "usr/share/doc/zstd").iterdir())}
    # the packages phase writes sources.list and diverts dracut (and back), the configure phase
    # rewrites the identity files; nothing else differs (owners, modes, sizes, mtimes, symlink
    # targets of every other entry of ~18,000)
    phases = {"/etc/apt/sources.list", "/var/lib/dpkg/diversions", "/var/lib/dpkg/diversions-old",
              "/etc/hostname", "/etc/machine-id", "/etc/resolv.conf"}
    assert set(diff.files_changed) - phases == {"/etc/issue.net"}, diff.files_changed
    assert "/etc/issue.net" in diff.files_changed


def test_the_source_and_its_digest_are_recorded_and_shown(imported: Imported) -> None:
    store = ImageStore(imported.settings)
    info = json.loads((store.image_dir("imp") / "image.json").read_text())
    origin = info["origin"]
    digest = sh("skopeo", "inspect", "--format", "{{.Digest}}", f"oci-archive:{imported.archive}").strip()
    assert origin["kind"] == "oci" and origin["source"] == f"oci-archive:{imported.archive}"
    assert origin["digest"] == digest and len(origin["layers"]) == 3
    assert info["release"] == "bookworm"
    shown = cli(imported.settings, "image", "show", "imp")
    assert f"origin    container image oci-archive:{imported.archive} ({digest})" in shown.stdout
    assert "the container image oci-archive:" in imported.output  # what create said it started from


def test_the_imported_image_packs_with_the_agents_dracut_module(imported: Imported) -> None:
    packed = cli(imported.settings, "image", "pack", "imp", "--no-agent")
    assert packed.returncode == 0, packed.stderr
    manifest = ImageStore(imported.settings).manifest("imp")
    assert manifest.format == "squashfs" and manifest.kernel_version


def hostile(work: Path, name: str, members: list[tuple[str, str, str]]) -> Path:
    """A tiny image (one plain layer) with one hostile layer on top, as an OCI archive."""
    where = work / name
    where.mkdir()
    layout, bundle = new_layout(where)
    (bundle / "rootfs/etc").mkdir()
    (bundle / "rootfs/etc/os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
    sh("umoci", "repack", "--image", f"{layout}:{TAG}", str(bundle))
    if members:
        sh("umoci", "raw", "add-layer", "--image", f"{layout}:{TAG}",
           str(layer_tar(where / "layer.tar", members)))
    return to_archive(layout, where / "image.tar")


@pytest.mark.parametrize(("members", "says"), [
    ([("../../escaped", "file", "evil\n")], "'../../escaped' is a path outside the image's root"),
    ([("/etc/cron.d/evil", "file", "evil\n")], "'/etc/cron.d/evil' is a path outside the image's root"),
    ([("link", "symlink", "/"), ("link/etc/cron.d/evil", "file", "x")],
     "'link/etc/cron.d/evil' is written through the symlink link -> /"),
    ([("up", "symlink", "../.."), ("up/escaped", "file", "x")], "through the symlink up -> ../.."),
    ([("shadow", "hardlink", "../../etc/shadow")], "is a hard link to '../../etc/shadow'"),
])
def test_a_hostile_layer_is_refused_by_name_and_nothing_is_imported(
    settings: Settings, tmp_path: Path, members: list[tuple[str, str, str]], says: str
) -> None:
    archive = hostile(tmp_path, "evil", members)
    refused = cli(settings, "image", "import", "evil", f"oci-archive:{archive}")
    assert refused.returncode != 0
    assert "layer 2 of 2 (sha256:" in refused.stderr and says in refused.stderr, refused.stderr
    assert "nothing was imported" in refused.stderr
    store = ImageStore(settings)
    assert not store.exists("evil") and not any(store.staging_dir.glob("evil.*"))
    assert not (tmp_path / "escaped").exists() and not Path("/escaped").exists()


def test_a_damaged_archive_or_a_tree_without_apt_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    archive = hostile(tmp_path, "ok", [])
    data = archive.read_bytes()
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(data[: len(data) // 2])
    broken = cli(settings, "image", "import", "broken", f"oci-archive:{damaged}")
    assert broken.returncode != 0 and "cannot read the container image oci-archive:" in broken.stderr, \
        broken.stderr
    no_apt = cli(settings, "image", "import", "noapt", f"oci-archive:{archive}")
    assert no_apt.returncode != 0 and "has no apt-get or dpkg" in no_apt.stderr, no_apt.stderr
    unknown = cli(settings, "image", "import", "x", str(archive))
    assert unknown.returncode != 0 and "unknown source" in unknown.stderr
    store = ImageStore(settings)
    assert store.list_images() == [] and not any(store.staging_dir.glob("*"))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A real registry (Debian's docker-registry, distribution 2.8) on loopback; its address."""
    import socket
    import time
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is missing: run `make setup` (scripts/host-packages.txt)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: "
                      f"{tmp_path / 'registry'}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"the registry did not start: {proc.stderr and proc.stderr.read()!r}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_image_from_a_registry_over_http_is_fetched_checked_and_refused_or_unpacked(
    settings: Settings, tmp_path: Path, registry: str
) -> None:
    """docker://: skopeo takes it from a registry (--insecure: plain HTTP); a hostile layer that
    comes from a registry is refused as from a file; a missing tag is a clear error."""
    for name, members in (("ok", []), ("evil", [("../../escaped", "file", "evil\n")])):
        archive = hostile(tmp_path, name, members)
        sh("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive}",
           f"docker://{registry}/site/{name}:v1")
    https = cli(settings, "image", "import", "ok", f"docker://{registry}/site/ok:v1")
    assert https.returncode != 0 and f"the registry of docker://{registry}" in https.stderr, https.stderr
    assert "HTTP response to HTTPS client" in https.stderr and "--insecure" in https.stderr, https.stderr
    unpacked = cli(settings, "image", "import", "ok", f"docker://{registry}/site/ok:v1", "--insecure")
    # fetched, checked and unpacked: the tiny tree is refused only for what it lacks
    assert unpacked.returncode != 0 and "has no apt-get or dpkg" in unpacked.stderr, unpacked.stderr
    evil = cli(settings, "image", "import", "evil", f"docker://{registry}/site/evil:v1", "--insecure")
    assert "'../../escaped' is a path outside the image's root" in evil.stderr, evil.stderr
    missing = cli(settings, "image", "import", "x", f"docker://{registry}/site/none:v1", "--insecure")
    assert missing.returncode != 0 and "cannot read the container image" in missing.stderr, missing.stderr
    store = ImageStore(settings)
    assert store.list_images() == [] and not any(store.staging_dir.glob("*"))
    assert not (tmp_path / "escaped").exists()
