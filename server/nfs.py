"""The NFS export of packed versions for the nfs root mode: nfs-ganesha, a child of `swarmboot serve`.

There is no kernel NFS server on our head nodes, and a userspace one keeps the head node's kernel
out of it: nfs-ganesha 4 with its VFS backend (Debian: nfs-ganesha, nfs-ganesha-vfs), NFSv4 over
TCP only (one port; no rpcbind, no lock manager, no mountd).

Each exported version is its own squashfs, loop-mounted read-only on the server at
$SWARMBOOT_HOME/nfs/mnt/IMAGE/VERSION and exported read-only at the pseudo path
/swarmboot/IMAGE/VERSION to the networks of the groups that use it: a node sees exactly the
packed, immutable content. What is exported: the version of every group in nfs mode, and a
version exported before while a node still runs it (as the seeder keeps old versions).

The mounts outlive a restart of `serve` (in the same mount namespace): the restarted ganesha then
hands out the same file handles (they name the loop device), so nodes' hard mounts go on; with
the recovery directory kept too, they reclaim their state in the grace period. The configuration
is rendered here (`render_config`, a pure function), written under $SWARMBOOT_HOME/nfs/ and
re-read by ganesha on SIGHUP (exports added and removed without a restart).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ground import run as runmod
from ground.contract.plan import NfsExport
from ground.errors import CommandError, SwarmbootError

log = logging.getLogger(__name__)

PSEUDO_ROOT = "/swarmboot"
GANESHA = "ganesha.nfsd"
# The agent's mount options besides ro, addr and port: NFSv4.2 over TCP; hard (a server outage
# stalls the node's reads until it is back, never an I/O error); the content never changes, so
# attributes are cached for long and close-to-open revalidation is skipped.
MOUNT_OPTIONS = "vers=4.2,proto=tcp,hard,timeo=100,retrans=3,nocto,actimeo=600"
# NFSv4 state after a restart: clients reclaim it within the grace period (ganesha lifts it early
# once every known client has). A short lease keeps that grace short.
LEASE_SECONDS = 15
GRACE_SECONDS = 20
SYNC_SECONDS = 5.0


class NfsError(SwarmbootError):
    """The NFS export cannot be set up (the message says what to install or to check)."""


@dataclass(frozen=True)
class Export:
    image: str
    version: int
    image_file: Path  # the version's squashfs
    clients: tuple[str, ...]  # networks (CIDR) allowed to mount it

    @property
    def key(self) -> tuple[str, int]:
        return (self.image, self.version)

    @property
    def pseudo(self) -> str:
        return pseudo_path(self.image, self.version)


def pseudo_path(image: str, version: int) -> str:
    return f"{PSEUDO_ROOT}/{image}/{version}"


def plan_export(image: str, version: int, server_url: str, port: int) -> NfsExport:
    """What the plan carries for a node of a group in nfs mode: this server's address (the host
    of the URL nodes reach it by, resolved to an address: the initramfs has no resolver) and the
    version's pseudo path."""
    host = urlparse(server_url).hostname or ""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            address = socket.gethostbyname(host)
        except OSError as exc:
            raise NfsError(f"cannot resolve the server's host {host!r} for the NFS export: {exc}",
                           hint="set server_url to an address nodes reach the server at") from None
    return NfsExport(server=address, path=pseudo_path(image, version), port=port, options=MOUNT_OPTIONS)


def export_id(key: tuple[str, int], taken: set[int]) -> int:
    """A stable small id for an export (ganesha's Export_Id; 0 is the pseudo root)."""
    import zlib

    number = zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 60000 + 1
    while number in taken:
        number = number % 60000 + 1
    return number


def render_config(exports: list[Export], mountpoints: dict[tuple[str, int], Path], *, bind: str, port: int,
                  recovery: Path) -> str:
    """ganesha.conf for these exports (only those with a mountpoint), NFSv4 over TCP on bind:port."""
    lines = [
        "# Written by swarmboot serve (server/nfs.py) from the inventory. Do not edit: it is rewritten.",
        "NFS_CORE_PARAM {",
        "    Protocols = 4;",
        f"    NFS_Port = {port};",
        f"    Bind_addr = {bind};",
        "    Enable_NLM = false;",
        "    Enable_RQUOTA = false;",
        "}",
        "NFSV4 {",
        "    Only_Numeric_Owners = true;  # sec=sys clients send and expect numeric owners",
        "    RecoveryBackend = fs;",
        f"    RecoveryRoot = {recovery};",
        f"    Lease_Lifetime = {LEASE_SECONDS};",
        f"    Grace_Period = {GRACE_SECONDS};",
        "}",
        "NFS_KRB5 { Active_krb5 = false; }",
        "EXPORT_DEFAULTS {",
        "    SecType = sys; Protocols = 4; Transports = TCP;",
        "    Access_Type = None; Squash = None;  # nobody but the CLIENT blocks below; root is root",
        "}",
    ]
    taken: set[int] = set()
    for export in sorted(exports, key=lambda e: e.key):
        mountpoint = mountpoints.get(export.key)
        if mountpoint is None:
            continue
        number = export_id(export.key, taken)
        taken.add(number)
        lines += [
            "EXPORT {",
            f"    Export_Id = {number};",
            f"    Path = {mountpoint};",
            f"    Pseudo = {export.pseudo};",
            "    FSAL { Name = VFS; }",
        ]
        if export.clients:
            lines.append(f"    CLIENT {{ Clients = {', '.join(export.clients)}; Access_Type = RO; }}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def mounted_at(mountpoint: Path) -> bool:
    target = os.fsencode(mountpoint)
    with open("/proc/self/mountinfo", "rb") as info:
        return any(line.split()[4] == target for line in info)


def unmount_all(home: Path) -> list[str]:
    """Unmount every version mount under $SWARMBOOT_HOME/nfs/mnt (for the lab and the tests, after
    their server stopped); returns what could not be unmounted."""
    failed = []
    base = home / "nfs" / "mnt"
    for mountpoint in sorted(base.glob("*/*")) if base.is_dir() else []:
        if mounted_at(mountpoint):
            result = runmod.run(["umount", str(mountpoint)], timeout=60, check=False)
            if result.returncode != 0:
                failed.append(f"{mountpoint}: {result.stderr.strip()}")
    return failed


class NfsServer:
    """nfs-ganesha for `serve`: started with the first export a group needs, told of changes on
    SIGHUP, stopped with serve. `wanted()` gives the exports the inventory asks for now;
    `running()` the (image, version) pairs nodes run (kept exported)."""

    def __init__(
        self,
        home: Path,
        bind: str,
        port: int,
        wanted: Callable[[], list[Export]],
        running: Callable[[], set[tuple[str, int]]],
    ) -> None:
        self.dir = home / "nfs"
        self.bind = bind
        self.port = port
        self.wanted = wanted
        self.running = running
        self.exports: dict[tuple[str, int], Export] = {}
        self.mounts: dict[tuple[str, int], Path] = {}
        self.errors: list[str] = []
        self.child: runmod.Child | None = None
        self._config = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sync = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "ganesha.conf"

    @property
    def log_file(self) -> Path:
        return self.dir / "ganesha.log"

    def start(self) -> None:
        """Start watching the inventory (ganesha itself starts with the first export)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="nfs", daemon=True)
        self._thread.start()

    def request_sync(self) -> None:
        self._sync.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except (SwarmbootError, OSError) as exc:
                log.error("nfs: %s", exc)
                self.errors.append(str(exc))
                del self.errors[:-20]
            self._sync.wait(SYNC_SECONDS)
            self._sync.clear()

    def sync(self) -> None:
        """Mount what is newly wanted, rewrite the configuration, tell ganesha, unmount what it
        no longer exports."""
        with self._lock:
            wanted = {e.key: e for e in self.wanted()}
            running = self.running()
            for key, old in self.exports.items():  # still in use by a node: stays exported
                if key not in wanted and key in running:
                    wanted[key] = old
            for key, export in wanted.items():
                if key not in self.mounts:
                    self.mounts[key] = self._mount(export)
            gone = [key for key in self.mounts if key not in wanted]
            removed = {key: self.mounts.pop(key) for key in gone}
            self.exports = wanted
            config = render_config(list(wanted.values()), self.mounts, bind=self.bind, port=self.port,
                                   recovery=self.dir / "recovery")
            if config != self._config:
                self.conf.write_text(config)
                self._config = config
                if self.child is None or not self.child.running():
                    if wanted:
                        self._start_ganesha()
                else:
                    self.child.send_signal(signal.SIGHUP)
                    time.sleep(1.0)  # ganesha re-reads its exports; then the mount can go
                names = ", ".join(f"{k[0]}/{k[1]}" for k in sorted(wanted))
                log.info("nfs: exporting %s", names or "nothing")
            for key, mountpoint in removed.items():
                self._unmount(key, mountpoint)
            if self.child is not None and not self.child.running():
                raise NfsError(f"nfs-ganesha exited ({self.child.returncode}): {self._log_tail()}",
                               hint=f"read {self.log_file}; is port {self.port} in use?")

    def _mount(self, export: Export) -> Path:
        mountpoint = self.dir / "mnt" / export.image / str(export.version)
        mountpoint.mkdir(parents=True, exist_ok=True)
        if mounted_at(mountpoint):  # from before a restart of serve: the same device, the same handles
            return mountpoint
        try:
            runmod.run(["mount", "-t", "squashfs", "-o", "loop,ro,nodev,nosuid", str(export.image_file),
                        str(mountpoint)], timeout=60)
        except CommandError as exc:
            raise NfsError(f"cannot mount {export.image_file} for the NFS export: {exc.stderr.strip()}",
                           hint="loop devices and squashfs are needed on the head node") from None
        return mountpoint

    def _unmount(self, key: tuple[str, int], mountpoint: Path) -> None:
        result = runmod.run(["umount", str(mountpoint)], timeout=60, check=False)
        if result.returncode == 0:
            log.info("nfs: stopped exporting %s/%s", *key)
        else:
            log.warning("nfs: cannot unmount %s: %s", mountpoint, result.stderr.strip())

    def _start_ganesha(self) -> None:
        if shutil.which(GANESHA, path=runmod.SYSTEM_PATH) is None:
            raise NfsError("nfs-ganesha is not installed: the nfs root mode needs it",
                           hint="apt-get install nfs-ganesha nfs-ganesha-vfs (make setup), "
                                "or run swarmboot serve --no-nfs")
        (self.dir / "recovery").mkdir(exist_ok=True)
        argv = [GANESHA, "-F", "-f", str(self.conf), "-L", str(self.log_file),
                "-p", str(self.dir / "ganesha.pid")]
        self.child = runmod.spawn(argv, stdout=None, stderr=None)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.child.running():
                raise NfsError(f"nfs-ganesha did not start ({self.child.returncode}): {self._log_tail()}",
                               hint=f"read {self.log_file}; is port {self.port} in use?")
            if self._listening():
                log.info("nfs: nfs-ganesha listening on %s:%d (pid %d)", self.bind, self.port, self.child.pid)
                return
            time.sleep(0.2)
        raise NfsError(f"nfs-ganesha is not listening on port {self.port} after 15 s: {self._log_tail()}",
                       hint=f"read {self.log_file}")

    def _listening(self) -> bool:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else self.bind
        try:
            with socket.create_connection((host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        serious = [line for line in lines if ":CRIT :" in line or ":MAJ :" in line or ":FATAL :" in line]
        noise = ("DBUS", "krb5", "UDP")  # no D-Bus, no Kerberos, no UDP here: expected, not the cause
        serious = [line for line in serious if not any(n in line for n in noise)]
        return " | ".join(line.rsplit(" :", 1)[-1].strip() for line in serious[-3:]) or "(nothing in its log)"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            exports = [
                {"image": e.image, "version": e.version, "path": e.pseudo, "clients": list(e.clients),
                 "mountpoint": str(self.mounts.get(e.key, ""))}
                for e in sorted(self.exports.values(), key=lambda e: e.key)
            ]
        running = self.child is not None and self.child.running()
        return {"port": self.port, "running": running, "pid": self.child.pid if running and self.child else 0,
                "exports": exports, "errors": list(self.errors)}

    def stop(self) -> None:
        """Stop ganesha; the version mounts stay (a restarted serve reuses them: unmount_all)."""
        self._stop.set()
        self._sync.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.child is not None:
            self.child.stop(grace=10)


def wanted_exports(db: Any, catalog: Any) -> list[Export]:
    """The exports the inventory asks for: the version of each group in nfs mode (its pinned one
    or its image's current one), to the networks of the group and of its nodes (when neither names
    one: every network of the inventory; none at all: nobody)."""
    from sqlalchemy import select

    from server.inventory.models import Group, Network, Node

    found: dict[tuple[str, int], Export] = {}
    with db.read() as session:
        for group in session.scalars(select(Group)).all():
            if (group.root_options or {}).get("mode") != "nfs":
                continue
            version = catalog.get(group.image, group.image_version)
            if version is None or version.manifest.format != "squashfs":
                continue  # the plan says why to the node; the inventory refuses such a group
            of_nodes = select(Network.cidr).join(Node, Node.network_id == Network.id)
            networks = set(session.scalars(of_nodes.where(Node.group_id == group.id)).all())
            if group.network is not None:
                networks.add(group.network.cidr)
            if not networks:  # nodes on dynamic addresses only: the cluster's networks
                networks = set(session.scalars(select(Network.cidr)).all())
            previous = found.get(version.key)
            clients = tuple(sorted(networks | set(previous.clients if previous else ())))
            found[version.key] = Export(version.image, version.number,
                                        version.path(version.manifest.image_file.name), clients)
    return list(found.values())
