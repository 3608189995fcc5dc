"""`swarmboot image grab NODE IMAGE`: an image's tree taken from a booted node, by rsync over SSH
(Luna's osgrab, xCAT's imgcapture, SystemImager's golden client).

    grab_new(settings, "golden", node, access)         # a new image (image create's phases after it)
    grab_into(settings, "compute", node, access)       # the image's tree, for its next pack
    preview(settings, "compute", node, access)         # --dry-run: what would change, nothing written

The node's root comes over without what is the node's and not the image's (`exclusions`): the
content of pseudo and RAM file systems (/proc, /sys, /dev, /run: the overlay's upper layer and
the agent's mounts are under /run), /tmp, every mount that is not a local disk file system (NFS,
tmpfs, the ESP), the kept partitions of a disk node, its identity (machine-id, SSH host keys,
hostname), the files the agent wrote for this boot (ground/contract/booted.py) and the group's
per-node and secret files; then the exclude file's rules (rsync patterns; first, so that its
`+ PATTERN` lines can take back a default).

Nothing is written into the image until the transfer succeeded: rsync fills a staging directory
(for an existing image with --link-dest, so unchanged files are hard links, not copies), the tree
is finished (identity reset, swarmboot's SSH key block dropped), and only then is it exchanged
with the image's tree in one rename (renameat2 RENAME_EXCHANGE) under the image's lock.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from builder.kernel import image_kernel_version
from builder.treeops import clean_stale_staging, exchange_trees, remove_tree, staging_path
from ground.config import Settings
from ground.contract.booted import AGENT_FILES, AUTHORIZED_KEYS, NODE_FILES, without_keys
from ground.errors import SwarmbootError
from ground.run import run
from ground.store import ImageStore, write_atomic

RSYNC_TIMEOUT = 4 * 3600.0
SSH_TIMEOUT = 60.0
# Only these are the image's files when mounted below /: local disk file systems (the root itself
# is always taken, whatever it is: the overlay of a RAM node, a disk node's ext4, NFS's overlay).
DISK_FSTYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "zfs"})
# Directories whose content is never the image's (the directories themselves are kept).
EMPTY_DIRS = ("proc", "sys", "dev", "run", "tmp", "var/tmp", "var/log/journal", "var/lib/dhcp")
# What a running node accumulates that is its own (not written by the agent: ground/contract/booted.py)
NODE_STATE = ("var/lib/NetworkManager/secret_key", "var/lib/NetworkManager/*.lease",
              "var/lib/NetworkManager/timestamps", "var/log/wtmp", "var/log/btmp", "var/log/lastlog",
              "root/.bash_history", "root/.ssh/known_hosts", "root/.lesshst", "root/.viminfo")
RSYNC_OPTIONS = ["-aHAXS", "--numeric-ids", "--delete", "--stats"]
# rsync's exit codes that mean "the tree is complete" (24: files vanished while it read them: a
# live system's logs and caches; what vanished is not in the image, as it is not on the node).
RSYNC_VANISHED = 24


@dataclass(frozen=True)
class GrabFrom:
    """The node to take the tree from, and what of its root is its own."""

    name: str
    address: str
    kept: tuple[str, ...] = ()  # mount points of its kept partitions (disk mode)
    own_files: tuple[str, ...] = ()  # the group's per-node files and secret files, absolute
    identity: Path | None = None  # the SSH private key (default: ssh's own choice)
    known_hosts: Path | None = None  # where the nodes' host keys are remembered
    exclude_file: Path | None = None  # the administrator's own rules

    def ssh_argv(self) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=4", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "LogLevel=ERROR"]
        if self.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity is not None:
            argv += ["-o", "IdentitiesOnly=yes", "-i", str(self.identity)]
        return argv

    @property
    def remote(self) -> str:
        return f"root@{self.address}"


@dataclass
class Changes:
    """What a transfer changes in the target tree (rsync's itemized list)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # content (or type)
    attributes: list[str] = field(default_factory=list)  # owner, mode, ACLs, xattrs only
    deleted: list[str] = field(default_factory=list)
    transfer_bytes: int = 0  # what rsync would send (its "Total transferred file size")
    total_bytes: int = 0  # the size of the node's files it looked at

    def to_dict(self) -> dict[str, object]:
        return {"added": self.added, "changed": self.changed, "attributes": self.attributes,
                "deleted": self.deleted, "transfer_bytes": self.transfer_bytes,
                "total_bytes": self.total_bytes}


@dataclass(frozen=True)
class GrabResult:
    image: str
    node: str
    rootfs: Path
    seconds: float
    received_bytes: int
    files: int


# -- what stays on the node -------------------------------------------------------------------------
def parse_mounts(text: str) -> list[tuple[str, str]]:
    """`findmnt -rn -o TARGET,FSTYPE` → [(target, fstype)] (findmnt -r writes a space as \\x20)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            target = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), fields[0])
            mounts.append((target, fields[1]))
    return mounts


def _glob_escape(path: str) -> str:
    return re.sub(r"([*?\[\\])", r"\\\1", path)


def exclusions(node: GrabFrom, mounts: list[tuple[str, str]]) -> list[str]:
    """The rsync exclude rules for this node's root, anchored at / (see the module's text)."""
    rules = [f"/{d}/*" for d in EMPTY_DIRS]
    seen = set(EMPTY_DIRS)
    kept = {k.strip("/") for k in node.kept if k.strip("/")}
    for target, fstype in mounts:
        rel = target.strip("/")
        if rel and rel not in seen and (rel in kept or fstype not in DISK_FSTYPES):
            seen.add(rel)
            rules.append(f"/{_glob_escape(rel)}/*")
    rules += [f"/{_glob_escape(k)}/*" for k in sorted(kept - seen)]
    rules += [f"/{p}" for p in (*NODE_FILES, *AGENT_FILES, *NODE_STATE)]
    rules += ["/" + _glob_escape(p.lstrip("/")) for p in node.own_files if p.strip("/")]
    return rules


def filter_text(node: GrabFrom, mounts: list[tuple[str, str]]) -> str:
    own = node.exclude_file.read_text() if node.exclude_file is not None else ""
    lines = ["# the administrator's rules (first: `+ PATTERN` takes back a default)", own.rstrip("\n"),
             "# swarmboot's defaults (builder/grab.py)", *exclusions(node, mounts)]
    return "\n".join(line for line in lines if line) + "\n"


def check_exclude_file(path: Path | None) -> None:
    if path is None:
        return
    if not path.is_file():
        raise SwarmbootError(f"the exclude file {path} does not exist",
                             hint="give a file of rsync patterns, one per line (e.g. /home/*)")
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        pattern = text[2:] if text[:2] in ("+ ", "- ") else text
        if text in ("+", "-") or not pattern.strip():
            raise SwarmbootError(f"{path}:{number}: a rule without a pattern: {line!r}",
                                 hint="write `- PATTERN` or `+ PATTERN`, or just PATTERN (an exclude)")
        if line != line.strip():
            raise SwarmbootError(f"{path}:{number}: {line!r} starts or ends with blanks: rsync would take "
                                 "them as part of the pattern, which then matches nothing",
                                 hint="remove the blanks around the pattern")


# -- ssh and rsync --------------------------------------------------------------------------------
def explain(node: GrabFrom, returncode: int, stderr: str) -> SwarmbootError:
    """The error of a failed ssh or rsync, saying what to do."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"exit status {returncode}"
    where = f"node {node.name} ({node.remote})"
    if returncode == 255 and "Permission denied" in text:
        key = f"the key {node.identity}" if node.identity else "root's SSH keys on this host"
        return SwarmbootError(
            f"{where} refused {key}: {last}",
            hint=f"a booted node authorizes its group's keys (swarmboot group set GROUP --ssh-key-file "
                 f"KEY.pub, then reboot {node.name}; an image packed before swarmboot wrote them needs "
                 "`image pack` first) and the image's /root/.ssh/authorized_keys; give the private key "
                 "that matches with --identity")
    if "Host key verification failed" in text or "IDENTIFICATION HAS CHANGED" in text:
        return SwarmbootError(
            f"{where} shows another SSH host key than the one remembered in {node.known_hosts}",
            hint=f"if {node.name} was given a new key on purpose, forget the old one: ssh-keygen -R "
                 f"{node.address} -f {node.known_hosts}")
    if re.search(r"rsync: (command )?not found|rsync: No such file", text):
        return SwarmbootError(
            f"{where} has no rsync",
            hint="install it in the node's image (swarmboot image shell IMAGE apt-get install -y rsync), "
                 "pack and reboot the node; or apt-get install rsync on the node itself")
    unreachable = ("Connection refused", "No route to host", "timed out", "Network is unreachable",
                   "Could not resolve", "Connection closed by", "Connection reset")
    if returncode == 255 and any(s in text for s in unreachable):
        return SwarmbootError(
            f"cannot reach {where} by SSH: {last}",
            hint=f"is it booted and up (swarmboot node status {node.name})? Its image needs an SSH server "
                 "(openssh-server); give its address with --address if the inventory has none")
    tail = "\n".join("  " + line for line in text.splitlines()[-10:])
    return SwarmbootError(f"the transfer from {where} failed (exit status {returncode}):\n{tail or last}",
                          hint="nothing was written into the image; fix what rsync says and grab again "
                               "(an exclude file can leave a path that cannot be read on the node)")


def remote_mounts(node: GrabFrom) -> list[tuple[str, str]]:
    argv = [*node.ssh_argv(), node.remote, "findmnt -rn -o TARGET,FSTYPE"]
    result = run(argv, timeout=SSH_TIMEOUT, check=False)
    if result.returncode != 0:
        raise explain(node, result.returncode, result.stderr)
    return parse_mounts(result.stdout)


def rsync_argv(node: GrabFrom, target: Path, rules: Path, *, dry_run: bool = False,
               link_dest: Path | None = None) -> list[str]:
    argv = ["rsync", *RSYNC_OPTIONS, f"--exclude-from={rules}", "-e", shlex.join(node.ssh_argv())]
    if dry_run:
        argv += ["--dry-run", "--itemize-changes"]
    if link_dest is not None:
        argv.append(f"--link-dest={link_dest.resolve()}")
    return [*argv, f"{node.remote}:/", f"{target}/"]


def _stat(text: str, label: str) -> int:
    match = re.search(rf"^{label}: ([\d,]+)", text, re.MULTILINE)
    return int(match.group(1).replace(",", "")) if match else 0


def parse_itemized(text: str) -> Changes:
    """rsync --itemize-changes output (plus --stats) → Changes. Directories whose only change is
    their time are left out (every new file changes its directory's)."""
    changes = Changes(transfer_bytes=_stat(text, "Total transferred file size"),
                      total_bytes=_stat(text, "Total file size"))
    for line in text.splitlines():
        if line.startswith("*deleting "):
            changes.deleted.append("/" + line[len("*deleting "):].strip().rstrip("/"))
            continue
        match = re.match(r"([<>ch.*])([fdLDS])([^ ]{9}) (.+)$", line)
        if not match:
            continue
        kind, ftype, flags, name = match.groups()
        name = "/" + name.split(" -> ")[0].split(" => ")[0].rstrip("/")
        if name == "/.":
            continue
        if flags.startswith("+"):
            changes.added.append(name)
        elif kind in "<>ch" and ftype != "d":  # received, or a link/device made anew
            changes.changed.append(name)
        elif flags.strip(".") and not (ftype == "d" and flags.strip(".t") == ""):
            changes.attributes.append(name)
    return changes


@dataclass(frozen=True)
class Transfer:
    stdout: str
    seconds: float
    rules: str  # the filter rules it ran with


def _transfer(node: GrabFrom, target: Path, *, dry_run: bool = False,
              link_dest: Path | None = None) -> Transfer:
    """rsync the node's root into `target`."""
    mounts = remote_mounts(node)
    text = filter_text(node, mounts)
    with tempfile.NamedTemporaryFile("w", prefix="swarmboot-grab.", suffix=".rules") as rules:
        rules.write(text)
        rules.flush()
        started = time.monotonic()
        result = run(rsync_argv(node, target, Path(rules.name), dry_run=dry_run, link_dest=link_dest),
                     timeout=RSYNC_TIMEOUT, check=False)
    if result.returncode not in (0, RSYNC_VANISHED):
        raise explain(node, result.returncode, result.stderr)
    return Transfer(result.stdout, time.monotonic() - started, text)


def restore_filter(rules: str) -> str:
    """The transfer's rules turned around: what they left on the node (its identity, its mounts'
    content, the exclude file's paths) is what the image keeps of its own."""
    lines = []
    for line in rules.splitlines():
        if not line.strip() or line.lstrip()[0] in "#;" or line.startswith("+ "):
            continue
        pattern = line[2:] if line.startswith("- ") else line
        lines += [f"+ {pattern}", f"+ {pattern.rstrip('/')}/**"]
    return "\n".join([*lines, "+ */", "- *"]) + "\n"


def keep_image_files(image_rootfs: Path, target: Path, rules: str) -> None:
    """Put the image's own files at the paths the transfer left out into `target` (hard links: one
    file system), never over what came from the node."""
    with tempfile.NamedTemporaryFile("w", prefix="swarmboot-grab.", suffix=".keep") as keep:
        keep.write(restore_filter(rules))
        keep.flush()
        run(["rsync", "-aHAXS", "--numeric-ids", "--ignore-existing", "--prune-empty-dirs",
             f"--link-dest={image_rootfs.resolve()}", f"--exclude-from={keep.name}",
             f"{image_rootfs}/", f"{target}/"], timeout=RSYNC_TIMEOUT)


# -- the image's side -------------------------------------------------------------------------------
DEFAULT_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def finish_tree(rootfs: Path) -> None:
    """After the transfer (and, into an image, its own files back): no node's identity, no
    swarmboot key block; plain defaults where nothing is left (a new image)."""
    from builder.steps import reset_identity_of

    reset_identity_of(rootfs)
    keys = rootfs / AUTHORIZED_KEYS
    if keys.is_file() and not keys.is_symlink():
        text = keys.read_text(errors="replace")
        kept = without_keys(text)
        if kept != text:
            keys.write_text(kept)
    defaults = (("etc/hosts", DEFAULT_HOSTS), ("etc/fstab", "# the agent writes this at boot\n"),
                ("etc/resolv.conf", ""))
    for rel, default in defaults:
        path = rootfs / rel
        if not path.exists() and not path.is_symlink():
            path.write_text(default)


def grab_origin_info(node: GrabFrom) -> dict[str, object]:
    return {"node": node.name, "address": node.address,
            "grabbed": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def fill_from_node(rootfs: Path, node: GrabFrom) -> float:
    """image create's install phase for origin `grab`: the node's root into `rootfs`."""
    transfer = _transfer(node, rootfs)
    finish_tree(rootfs)
    return transfer.seconds


def grab_new(settings: Settings, image: str, node: GrabFrom) -> Path:
    """A new image from the node: its root, then image create's phases (the base packages that are
    missing, the dracut module, identity reset, cleaning)."""
    from builder.create import create_image
    from builder.origin import Origin

    return create_image(settings, image, origin=Origin("grab", node.name, grab=node))


def grab_into(settings: Settings, image: str, node: GrabFrom) -> GrabResult:
    """The node's root becomes the image's tree (its versions stay as they are: pack makes the next)."""
    store = ImageStore(settings)
    store.require(image)
    current = store.rootfs(image)
    with store.lock(image, f"swarmboot image grab {node.name} {image}"):
        clean_stale_staging(store.staging_dir)
        staging = staging_path(store.staging_dir, image, "grab-" + uuid.uuid4().hex[:8])
        staging.mkdir(parents=True)
        started = time.monotonic()
        try:
            target = staging / "rootfs"
            transfer = _transfer(node, target, link_dest=current)
            keep_image_files(current, target, transfer.rules)
            finish_tree(target)
            exchange_trees(current, target)  # the image's tree is the node's now; the old one is in staging
            record_grab(store, image, node)
        finally:
            remove_tree(staging)
    return GrabResult(image, node.name, current, time.monotonic() - started,
                      _stat(transfer.stdout, "Total transferred file size"),
                      _stat(transfer.stdout, "Number of files"))


def record_grab(store: ImageStore, image: str, node: GrabFrom) -> None:
    path = store.image_dir(image) / "image.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        info = {"name": image}
    info["grabbed"] = grab_origin_info(node)
    info["kernel_version"] = image_kernel_version(store.rootfs(image))
    write_atomic(path, json.dumps(info, indent=2) + "\n")


def preview(settings: Settings, image: str | None, node: GrabFrom) -> Changes:
    """--dry-run: what the grab would change in the image's tree (none: a new image, all of it)."""
    store = ImageStore(settings)
    if image is not None:
        store.require(image)
        return parse_itemized(_transfer(node, store.rootfs(image), dry_run=True).stdout)
    empty = Path(tempfile.mkdtemp(prefix="swarmboot-grab-preview."))
    try:
        transfer = _transfer(node, empty, dry_run=True)
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    return parse_itemized(transfer.stdout)


def render_changes(changes: Changes, limit: int) -> str:
    lines = []
    for title, names in (("added", changes.added), ("changed", changes.changed),
                         ("attributes only", changes.attributes), ("deleted", changes.deleted)):
        lines.append(f"{title}: {len(names)}")
        lines += [f"  {n}" for n in names[:limit]]
        if len(names) > limit:
            lines.append(f"  … and {len(names) - limit} more (--files N, or --json)")
    lines.append(f"to transfer: {changes.transfer_bytes / 2**20:.1f} MiB "
                 f"of {changes.total_bytes / 2**20:.1f} MiB")
    return "\n".join(lines)
