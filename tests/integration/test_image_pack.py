"""pack with the real tools, on one private copy of the base image with a package installed by
lchroot: the squashfs loop-mounts and holds the package, the torrent checks out in libtorrent,
transmission and aria2, an unchanged repack makes no version, tar.zst versions, rollback, rm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.kernel import image_kernel_version
from builder.torrent import piece_size_for
from builder.treeops import remove_tree
from ground.config import Settings
from ground.store import ImageStore, Manifest

pytestmark = pytest.mark.root
VENV_BIN = Path(sys.executable).parent
PACKAGE = "swarmboot-test-pkg"


@dataclass
class Packed:
    settings: Settings
    name: str
    kernel: str
    manifest: Manifest
    pack_output: str

    @property
    def store(self) -> ImageStore:
        return ImageStore(self.settings)

    def path(self, which: str) -> Path:
        return self.store.file_path(self.manifest, which)


def cli(
    settings: Settings, program: str, *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWARMBOOT_HOME": str(settings.home),
           "SWARMBOOT_HOOKS_DIR": str(settings.hooks_dir)}
    return subprocess.run([str(VENV_BIN / program), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def build_test_deb(workdir: Path) -> Path:
    """A tiny real .deb whose postinst records what `uname -r` says inside the image."""
    root = workdir / PACKAGE
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share" / PACKAGE).mkdir(parents=True)
    (root / "usr/share" / PACKAGE / "hello.txt").write_text("installed by the lchroot test\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: swarmboot tests <tests@example.org>\nDescription: lchroot test package\n"
    )
    postinst = root / "DEBIAN/postinst"
    postinst.write_text(
        f"#!/bin/sh\nset -e\nmkdir -p /var/lib/{PACKAGE}\nuname -r > /var/lib/{PACKAGE}/uname\n"
    )
    postinst.chmod(0o755)
    deb = workdir / f"{PACKAGE}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True, timeout=60)
    return deb


@pytest.fixture(scope="module")
def packed(
    clone_base: Callable[[Settings, str], str],
    settings_for: Callable[[Path], Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Packed]:
    home = tmp_path_factory.mktemp("pack-home")
    settings = settings_for(home)
    name = clone_base(settings, "work")
    rootfs = ImageStore(settings).rootfs(name)
    deb = build_test_deb(home)
    shutil.copy2(deb, rootfs / "root" / deb.name)
    installed = cli(settings, "lchroot", name, "dpkg", "-i", f"/root/{deb.name}")
    assert installed.returncode == 0, installed.stderr
    (rootfs / "root" / deb.name).unlink()
    result = cli(settings, "swarmboot", "image", "pack", name)
    assert result.returncode == 0, result.stderr
    kernel = image_kernel_version(rootfs)
    assert kernel is not None
    yield Packed(settings, name, kernel, ImageStore(settings).manifest(name), result.stderr)
    remove_tree(home)


def test_lchroot_installed_the_package_seeing_the_image_kernel(packed: Packed) -> None:
    rootfs = packed.store.rootfs(packed.name)
    assert (rootfs / "usr/share" / PACKAGE / "hello.txt").is_file()
    # The maintainer script ran inside the image and saw its kernel, as dracut or dkms would.
    assert (rootfs / "var/lib" / PACKAGE / "uname").read_text().strip() == packed.kernel
    assert cli(packed.settings, "lchroot", packed.name, "uname", "-r").stdout.strip() == packed.kernel


def test_pack_reports_each_stage(packed: Packed) -> None:
    for stage in ("fingerprint", "space", "kernel", "initramfs", "image", "torrent", "manifest", "publish"):
        assert f"pack {packed.name}: {stage} done in" in packed.pack_output
    assert "torrent pieces: 100 %" in packed.pack_output


def test_squashfs_loop_mounts_and_holds_the_package(packed: Packed, tmp_path: Path) -> None:
    image = packed.path("image")
    assert image.name == "image.squashfs"
    superblock = subprocess.run(["unsquashfs", "-s", str(image)], capture_output=True, text=True,
                                check=True, timeout=60).stdout
    assert "Compression zstd" in superblock
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", str(image), str(mountpoint)],
                   check=True, timeout=60)
    try:
        assert (mountpoint / "usr/share" / PACKAGE / "hello.txt").read_text().startswith("installed")
        assert (mountpoint / "var/lib/dpkg/info" / f"{PACKAGE}.list").is_file()
        assert (mountpoint / f"boot/vmlinuz-{packed.kernel}").is_file()
        assert list((mountpoint / "proc").iterdir()) == []  # excluded content, kept directory
        assert os.readlink(mountpoint / "usr/sbin/policy-rc.d") == "/run/lchroot/policy-rc.d"
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, timeout=60)


def test_manifest_and_show_json(packed: Packed) -> None:
    shown = cli(packed.settings, "swarmboot", "image", "show", packed.name, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["version"] == packed.manifest.version
    assert data["kernel_version"] == packed.kernel
    for which, path in data["paths"].items():
        assert Path(path).is_absolute() and Path(path).is_file(), which
    image = Path(data["paths"]["image"])
    sha = subprocess.run(["sha256sum", str(image)], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()[0]
    assert sha == data["image_file"]["sha256"]
    assert image.stat().st_size == data["image_file"]["size"]
    assert data["piece_size"] == piece_size_for(image.stat().st_size)
    import libtorrent as lt

    info = lt.torrent_info(data["paths"]["torrent"])
    assert str(info.info_hash()) == data["info_hash"]
    assert info.name() == "image.squashfs"
    assert not info.info_hashes().has_v2()


def _libtorrent_check(torrent: Path, save_path: Path) -> tuple[float, list[bool]]:
    import libtorrent as lt

    session = lt.session({
        "listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
    })
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(str(torrent))
    params.save_path = str(save_path)
    handle = session.add_torrent(params)
    states = lt.torrent_status.states
    done_checking = (states.downloading, states.finished, states.seeding)
    deadline = time.monotonic() + 120
    status = handle.status()
    while status.state not in done_checking and time.monotonic() < deadline:
        time.sleep(0.1)
        status = handle.status()
    assert status.state in done_checking, f"libtorrent still checking: {status.state}"
    pieces = list(status.pieces)
    session.remove_torrent(handle)
    return status.progress, pieces


def test_torrent_checks_out_in_libtorrent(packed: Packed, tmp_path: Path) -> None:
    image, torrent = packed.path("image"), packed.path("torrent")
    good = tmp_path / "good"
    good.mkdir()
    shutil.copyfile(image, good / image.name)
    progress, pieces = _libtorrent_check(torrent, good)
    assert progress == 1.0 and pieces and all(pieces)
    # The check is real: one flipped byte makes exactly that piece fail.
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copyfile(image, bad / image.name)
    piece = packed.manifest.piece_size
    with open(bad / image.name, "r+b") as handle:
        handle.seek(2 * piece + 100)
        byte = handle.read(1)
        handle.seek(2 * piece + 100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    progress, pieces = _libtorrent_check(torrent, bad)
    assert progress < 1.0
    assert [i for i, have in enumerate(pieces) if not have] == [2]


def test_torrent_checks_out_in_transmission_and_aria2(packed: Packed, tmp_path: Path) -> None:
    image, torrent = packed.path("image"), packed.path("torrent")
    shown = subprocess.run(["transmission-show", str(torrent)], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    assert f"Hash: {packed.manifest.info_hash}" in shown
    assert "image.squashfs" in shown
    files = subprocess.run(["aria2c", "--show-files", str(torrent)], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    assert packed.manifest.info_hash in files.lower()
    assert "image.squashfs" in files
    copy = tmp_path / "aria2"
    copy.mkdir()
    shutil.copyfile(image, copy / image.name)
    checked = subprocess.run(
        ["aria2c", "--check-integrity=true", "--seed-time=0", "--enable-dht=false",
         "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
         "--bt-stop-timeout=20", "--listen-port=51413-51420", "--console-log-level=warn",
         "--summary-interval=0", f"--dir={copy}", str(torrent)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout
    assert not (copy / f"{image.name}.aria2").exists()  # nothing left to download


def test_unchanged_repack_makes_no_new_version(packed: Packed) -> None:
    before = packed.store.versions(packed.name)
    started = time.monotonic()
    again = cli(packed.settings, "swarmboot", "image", "pack", packed.name)
    elapsed = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    assert "unchanged, no new version" in again.stdout
    assert packed.store.versions(packed.name) == before
    print(f"unchanged repack took {elapsed:.2f} s")


def test_agent_bundle_goes_into_the_initramfs(packed: Packed, tmp_path: Path) -> None:
    """The hook the boot agent uses: pack(…, agent_bundle=DIR) binds DIR at
    /usr/lib/swarmboot/agent while dracut runs with the repository's swarmboot module."""
    from builder.dracut_module import module_dirs, repo_modules_dir
    from builder.pack import pack

    if not any(m.name == "90swarmboot" for m in module_dirs(repo_modules_dir())):
        pytest.skip("dracut-module/90swarmboot is not in this checkout")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    agent = bundle / "swarmboot-agent"
    agent.write_text("#!/bin/sh\necho 'fake agent for the builder test'\n")
    agent.chmod(0o755)
    result = pack(packed.settings, packed.name, agent_bundle=bundle, check_agent=False)  # a fake agent
    assert result.created
    inputs = result.manifest.inputs
    assert inputs["agent_bundle"] and "swarmboot" in inputs["dracut_options"]
    initramfs = packed.store.file_path(result.manifest, "initramfs")
    listing = subprocess.run(
        ["sh", "-c", 'zstd -dc "$1" | cpio -it --quiet', "list", str(initramfs)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.splitlines()
    assert "usr/lib/swarmboot/agent/swarmboot-agent" in listing
    # Nothing of the bundle stays in the image: it was only bound there.
    assert list((packed.store.rootfs(packed.name) / "usr/lib/swarmboot/agent").iterdir()) == []
    again = pack(packed.settings, packed.name, agent_bundle=bundle, check_agent=False)
    assert not again.created and again.version == result.version


def test_tar_zst_version_rollback_and_rm(packed: Packed, tmp_path: Path) -> None:
    settings, name, store = packed.settings, packed.name, packed.store
    first = store.current_version(name)
    made = cli(settings, "swarmboot", "image", "pack", name, "--format", "tar.zst", "--compression", "zstd:5")
    assert made.returncode == 0, made.stderr
    second = store.current_version(name)
    assert second == (first or 0) + 1
    manifest = store.manifest(name)
    assert (manifest.format, manifest.compression) == ("tar.zst", "zstd:5")
    listing = subprocess.run(["tar", "--list", "--zstd", "-f", str(store.file_path(manifest, "image"))],
                             capture_output=True, text=True, check=True, timeout=120).stdout
    assert f"./usr/share/{PACKAGE}/hello.txt" in listing.splitlines()
    assert cli(settings, "swarmboot", "image", "rollback", name).returncode == 0
    assert store.current_version(name) == first
    assert cli(settings, "swarmboot", "image", "rollback", name, "--to", str(second)).returncode == 0
    assert store.current_version(name) == second
    missing = cli(settings, "swarmboot", "image", "rollback", name, "--to", "99")
    assert missing.returncode != 0 and "no version 99" in missing.stderr
    with store.lock(name, "test holds the lock"):
        refused = cli(settings, "swarmboot", "image", "rm", name)
    assert refused.returncode != 0 and "busy" in refused.stderr
    assert store.exists(name)
    listed = cli(settings, "swarmboot", "image", "list", "--json")
    assert [i["name"] for i in json.loads(listed.stdout)] == [name]


def test_image_diff_lists_htop_after_lchroot_apt_install_and_a_pack(packed: Packed) -> None:
    """Last in this module: it adds a version. Versions read from squashfs (mounted) and tar.zst
    (streamed) of the same tree compare equal; apt-get install htop shows up before and after
    its pack."""
    settings, name, store = packed.settings, packed.name, packed.store
    by_format = {store.manifest(name, v).format: v for v in store.versions(name)}
    if "tar.zst" in by_format:
        same = cli(settings, "swarmboot", "image", "diff", name, str(by_format["squashfs"]),
                   str(by_format["tar.zst"]), "--json")
        assert same.returncode == 0, same.stderr
        report = json.loads(same.stdout)
        assert not any(report[k] for k in ("packages_added", "packages_removed", "packages_upgraded",
                                           "files_added", "files_removed", "files_changed")), report
    before = store.current_version(name)
    installed = cli(settings, "lchroot", name, "sh", "-c",
                    "apt-get update -q && apt-get install -y -q --no-install-recommends htop", timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    pending = cli(settings, "swarmboot", "image", "diff", name)
    assert pending.returncode == 0, pending.stderr
    assert f"image {name}: version {before} → the tree" in pending.stdout
    assert any(line.startswith("  + htop ") for line in pending.stdout.splitlines()), pending.stdout
    assert "  + /usr/bin/htop" in pending.stdout
    assert cli(settings, "swarmboot", "image", "pack", name).returncode == 0
    after = store.current_version(name)
    assert after is not None and before is not None and after > before
    diff = cli(settings, "swarmboot", "image", "diff", name, str(before), str(after), "--json")
    assert diff.returncode == 0, diff.stderr
    report = json.loads(diff.stdout)
    assert "htop" in report["packages_added"] and "/usr/bin/htop" in report["files_added"]
    assert report["packages_removed"] == {} and "/var/lib/apt/lists" not in str(report["files_added"])
    same_again = cli(settings, "swarmboot", "image", "diff", name, str(before), str(before))
    assert same_again.returncode != 0 and "against itself" in same_again.stderr
    missing = cli(settings, "swarmboot", "image", "diff", name, "99")
    assert missing.returncode != 0 and "has no version 99" in missing.stderr
