"""`swarmboot image pack`: turn an image tree into a new immutable, torrent-ready version.

The pipeline (each stage timed and logged; see `pack`):

    prepare      sync the repository's dracut modules into the image, check tools
    agent        the frozen boot agent (built when its sources changed), checked against the
                 image's glibc and libraries (builder/agent_bundle.py)
    fingerprint  hash the tree and every other input; stop here if a version has them all
    space        enough free disk for the estimate?
    kernel       /boot/vmlinuz-KVER → vmlinuz
    initramfs    dracut inside the image (builder/initramfs.py)    } at the same time
    image        mksquashfs or tar --zstd, on every core           }
    torrent      v1 .torrent (builder/torrent.py) and sha256 of each file, in parallel
    manifest     manifest.json, written last
    publish      rename the work directory to versions/N, make N current
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import dracut_module, torrent
from builder.fingerprint import fingerprint
from builder.formats import Compression, check_format, cores, parse_compression, write_squashfs, write_tar_zst
from builder.initramfs import agent_bundle_hash, build_initramfs, dracut_options
from builder.kernel import require_kernel
from builder.progress import Percent, Stages, say
from builder.treeops import clean_stale_staging, remove_tree, staging_path
from ground import __version__
from ground.config import Settings
from ground.contract.image import AGENT_MOUNT_POINT
from ground.errors import NotFoundError, SwarmbootError
from ground.inputs import digits
from ground.run import require_tool
from ground.store import IMAGE_FILE, FileEntry, ImageStore, Manifest, write_atomic

PACK_REVISION = 1  # bump when pack's output changes for the same inputs
SPACE_MARGIN = 512 * 1024 * 1024  # kernel, initramfs, torrent, slack
HASH_BLOCK = 4 * 1024 * 1024


class DiskSpaceError(SwarmbootError):
    """Not enough free disk for a pack."""


@dataclass
class PackResult:
    image: str
    version: int
    created: bool  # False: an existing version already had these inputs
    manifest: Manifest
    timings: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class PackJob:
    """What one pack works with; filled in stage by stage."""

    store: ImageStore
    name: str
    format: str
    compression: Compression
    agent_bundle: Path | None
    dracut_modules: Path | None
    agent: bool = True  # put the boot agent (and the swarmboot dracut module) into the initramfs
    check_agent: bool = True  # check that the image can run the agent bundle
    installed_modules: list[str] = field(default_factory=list)
    kernel_version: str = ""
    modules: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    inputs_hash: str = ""
    tree_bytes: int = 0
    work: Path = Path()
    version: int = 0

    @property
    def rootfs(self) -> Path:
        return self.store.rootfs(self.name)

    @property
    def image_file(self) -> Path:
        return self.work / IMAGE_FILE[self.format]


def pack(
    settings: Settings,
    name: str,
    *,
    fmt: str | None = None,
    compression: str | None = None,
    agent_bundle: Path | None = None,
    agent: bool = True,
    check_agent: bool = True,
    dracut_modules: Path | None = None,
    overlap: bool = True,
) -> PackResult:
    """Pack image `name`. `agent`: put the boot agent into the initramfs (default), so nodes boot
    `root=swarmboot`; its bundle is `agent_bundle` if given, else the one `swarmboot agent build`
    makes (built here when missing or out of date), and is checked against the image
    (`check_agent`). `dracut_modules`: where the dracut modules come from (default: the
    repository's). `overlap`: build the initramfs and the image file at the same time (faster;
    False runs them one after the other, e.g. to time the image stage alone)."""
    store = ImageStore(settings)
    store.require(name)
    job = PackJob(
        store=store,
        name=name,
        format=fmt or settings.image_format,
        compression=parse_compression(compression or settings.compression),
        agent_bundle=agent_bundle if agent else None,
        dracut_modules=dracut_modules if dracut_modules is not None else dracut_module.repo_modules_dir(),
        agent=agent,
        check_agent=check_agent,
    )
    check_format(job.format, job.compression)
    if agent_bundle is not None and not agent_bundle.is_dir():
        raise NotFoundError(f"agent bundle {agent_bundle} is not a directory",
                            hint="build one with: swarmboot agent build")
    stages = Stages(f"pack {name}")
    with store.lock(name, "swarmboot image pack"):
        with stages.stage("prepare"):
            prepare(job)
        with stages.stage("agent"):
            prepare_agent(job, settings)
        with stages.stage("fingerprint"):
            compute_inputs(job)
        existing = find_same_inputs(job)
        if existing is not None:
            say(f"pack {name}: nothing changed since version {existing.version}; no new version "
                f"({stages.total():.2f} s)")
            return PackResult(name, existing.version, False, existing, stages.times)
        with stages.stage("space"):
            check_space(job)
        clean_stale_staging(store.staging_dir)
        job.version = next_version(job)
        job.work = staging_path(store.staging_dir, name, f"pack{job.version}")
        job.work.mkdir(parents=True)
        try:
            with stages.stage("kernel", job.kernel_version):
                copy_kernel(job)
            initramfs_and_image(job, stages, overlap)
            with stages.stage("torrent"):
                hashes, info = hash_and_torrent(job)
            with stages.stage("manifest"):
                manifest = write_manifest(job, hashes, info)
            with stages.stage("publish"):
                version = publish(job)
        except BaseException:
            remove_tree(job.work)
            raise
    say(stages.summary())
    say(f"pack {name}: version {version} is current "
        f"({manifest.image_file.size / 2**20:.1f} MiB {job.format}, info-hash {manifest.info_hash})")
    return PackResult(name, version, True, manifest, stages.times)


def prepare(job: PackJob) -> None:
    for tool in ("mksquashfs",) if job.format == "squashfs" else ("tar", "zstd"):
        require_tool(tool)
    require_tool("unshare")
    changed = dracut_module.sync_modules(job.rootfs, job.dracut_modules)
    if changed:
        say(f"  dracut module(s) updated in the image: {', '.join(changed)}")
    job.installed_modules = dracut_module.installed_modules(job.rootfs, job.dracut_modules)
    (job.rootfs / AGENT_MOUNT_POINT).mkdir(parents=True, exist_ok=True)
    job.kernel_version = require_kernel(job.rootfs, job.name)


def prepare_agent(job: PackJob, settings: Settings) -> None:
    """The frozen agent for the initramfs: built if needed, and checked against the image (its
    glibc must be new enough, the libraries it takes from the image must be there)."""
    from builder.agent_bundle import check_image, ensure_bundle, read_info

    installed = job.installed_modules
    # The swarmboot module needs the frozen agent: without one it is left out.
    if not job.agent:
        job.agent_bundle, job.modules = None, []
        if installed:
            say(f"  --no-agent: the initramfs leaves out {', '.join(installed)}; it cannot boot "
                "nodes with root=swarmboot")
        return
    if "swarmboot" not in installed:
        job.agent_bundle, job.modules = None, installed
        say(f"  no swarmboot dracut module in {job.dracut_modules}: the initramfs has no boot agent")
        return
    if job.agent_bundle is None:
        job.agent_bundle = ensure_bundle(settings)
        info = read_info(settings.agent_dir)
        if info is not None:
            say(f"  agent bundle {job.agent_bundle}: {info.size / 1e6:.1f} MB, {info.files} files, "
                f"libtorrent {info.libtorrent.split()[0]}")
    job.modules = installed
    if job.check_agent:
        say(f"  {check_image(job.agent_bundle, job.rootfs)}")


def compute_inputs(job: PackJob) -> None:
    tree = fingerprint(job.rootfs)
    job.tree_bytes = tree.size
    job.inputs = {
        "tree": tree.digest,
        "format": job.format,
        "compression": str(job.compression),
        "kernel_version": job.kernel_version,
        "dracut_options": dracut_options(job.modules),
        "dracut_modules": dracut_module.modules_hash(job.dracut_modules),
        "agent_bundle": agent_bundle_hash(job.agent_bundle),
        "tool_version": __version__,
        "pack_revision": PACK_REVISION,
    }
    job.inputs_hash = hashlib.sha256(json.dumps(job.inputs, sort_keys=True).encode()).hexdigest()
    say(f"  tree: {tree.files} entries, {tree.size / 2**20:.0f} MiB; inputs {job.inputs_hash[:16]}")


def find_same_inputs(job: PackJob) -> Manifest | None:
    """The newest version made from exactly these inputs, if any."""
    for version in reversed(job.store.versions(job.name)):
        manifest = job.store.manifest(job.name, version)
        if manifest.inputs_hash == job.inputs_hash:
            current = job.store.current_version(job.name)
            if current != version:
                say(f"  version {version} has these inputs but version {current} is current: "
                    f"swarmboot image rollback {job.name} --to {version}")
            return manifest
    return None


def check_space(job: PackJob) -> None:
    """The packed image is at most the tree's size (compression only shrinks it)."""
    need = job.tree_bytes + SPACE_MARGIN
    where = job.store.root
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < need:
        raise DiskSpaceError(
            f"not enough free disk to pack {job.name!r}: {free / 2**20:.0f} MiB free in {where}, "
            f"up to {need / 2**20:.0f} MiB needed",
            hint="free some space (old versions: swarmboot image show NAME) or move SWARMBOOT_HOME",
        )


def next_version(job: PackJob) -> int:
    vdir = job.store.versions_dir(job.name)
    numbers = [int(p.name) for p in vdir.iterdir() if digits(p.name)] if vdir.is_dir() else []
    return max(numbers, default=0) + 1


def copy_kernel(job: PackJob) -> None:
    source = job.rootfs / "boot" / f"vmlinuz-{job.kernel_version}"
    shutil.copyfile(source, job.work / "vmlinuz")
    (job.work / "vmlinuz").chmod(0o644)


def initramfs_and_image(job: PackJob, stages: Stages, overlap: bool) -> None:
    """The two long stages, at the same time unless `overlap` is False: dracut is mostly
    single-threaded shell work, so mksquashfs (or tar) fills the other cores meanwhile."""
    jobs = [
        ("initramfs", "dracut" + "".join(f" --add {m}" for m in job.modules), lambda: make_initramfs(job)),
        ("image", f"{job.format}, {job.compression}, {cores()} cores", lambda: write_image(job)),
    ]
    if overlap:
        stages.parallel(jobs)
    else:
        stages.sequential(jobs)


def make_initramfs(job: PackJob) -> None:
    output = job.work / "initramfs.img"
    build_initramfs(job.rootfs, job.kernel_version, output, modules=job.modules,
                    agent_bundle=job.agent_bundle, label=job.name)
    output.chmod(0o644)  # served over HTTP like the rest


def write_image(job: PackJob) -> None:
    if job.format == "squashfs":
        write_squashfs(job.rootfs, job.image_file, job.compression)
    else:
        write_tar_zst(job.rootfs, job.image_file, job.compression)


def sha256_file(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return FileEntry(name=path.name, size=path.stat().st_size, sha256=digest.hexdigest())


def hash_and_torrent(job: PackJob) -> tuple[dict[str, FileEntry], torrent.TorrentInfo]:
    """sha256 of every file in threads while libtorrent hashes the pieces on the others."""
    files = {"kernel": job.work / "vmlinuz", "initramfs": job.work / "initramfs.img",
             "image": job.image_file}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(sha256_file, path) for key, path in files.items()}
        info = torrent.make_torrent(job.image_file, progress=Percent("torrent pieces", 25))
        hashes = {key: future.result() for key, future in futures.items()}
    (job.work / "image.torrent").write_bytes(info.data)
    hashes["torrent"] = sha256_file(job.work / "image.torrent")
    return hashes, info


def write_manifest(job: PackJob, hashes: dict[str, FileEntry], info: torrent.TorrentInfo) -> Manifest:
    manifest = Manifest(
        image=job.name,
        version=job.version,
        format=job.format,
        compression=str(job.compression),
        kernel_version=job.kernel_version,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
        inputs_hash=job.inputs_hash,
        info_hash=info.info_hash,
        piece_size=info.piece_size,
        kernel=hashes["kernel"],
        initramfs=hashes["initramfs"],
        image_file=hashes["image"],
        torrent=hashes["torrent"],
        inputs=job.inputs,
    )
    write_atomic(job.work / "manifest.json", json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest


def publish(job: PackJob) -> int:
    version = job.version
    target = job.store.version_dir(job.name, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    job.work.rename(target)
    job.store.set_current(job.name, version)
    return version
