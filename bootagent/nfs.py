"""The nfs root mode's mount: the server's read-only export of the packed version (plan
root.nfs), with bounded, jittered retries. The kernel's NFS client does it (the nfs and nfsv4
modules are in every initramfs: dracut-module/90swarmboot); no mount.nfs helper is needed:
util-linux mount passes the options to the kernel, with the server's address as `addr=`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from bootagent.errors import RootError
from ground.contract.plan import NfsExport
from ground.errors import CommandError, CommandTimeout
from ground.run import run

ATTEMPTS = 8  # ~1 + 2 + 4 + 8 + 15 x 3 s of waiting (±25 %) between them: about a minute
FIRST_WAIT = 1.0
MAX_WAIT = 15.0
MOUNT_TIMEOUT = 90.0  # one mount(2): a hard mount's first RPCs retry for timeo x retrans


def set_client_identifier(unique: str, path: Path) -> bool:
    """Give this node's NFSv4 client its own identifier before the first mount creates it (the
    nfs module loaded). `path` is Paths.nfs_client_identifier: /sys/fs/nfs/net/nfs_client/identifier,
    which Debian 12's 6.1 kernel has and nfs-utils' udev rule fills on a normal system (from
    /etc/nfs4-id or the machine-id). The client's name is then unique even where host names are
    not. False when the kernel has no such file."""
    try:
        path.write_text(unique + "\n")
    except OSError:
        return False
    return True


def mount_options(export: NfsExport) -> str:
    options = ["ro", f"addr={export.server}", f"port={export.port}"]
    ours = ("ro", "rw", "addr", "port")
    options += [o for o in export.options.split(",") if o and o.split("=")[0] not in ours]
    return ",".join(options)


def mount_argv(export: NfsExport, target: Path) -> list[str]:
    return ["mount", "-t", "nfs4", "-o", mount_options(export), export.source, str(target)]


def waits(attempts: int = ATTEMPTS, rng: Callable[[], float] = random.random) -> list[float]:
    """The waits between attempts: doubling from FIRST_WAIT to MAX_WAIT, each ±25 % (nodes that
    lost their server together do not come back in step)."""
    result, wait = [], FIRST_WAIT
    for _ in range(attempts - 1):
        result.append(wait * (0.75 + 0.5 * rng()))
        wait = min(wait * 2, MAX_WAIT)
    return result


def why(stderr: str) -> str:
    """What the mount's error means, and what to check."""
    text = stderr.lower()
    if "permission denied" in text or "access denied" in text or "operation not permitted" in text:
        return ("the server refused this node: the export admits only the networks of the group and "
                "of its nodes (swarmboot network/node show; the node's address must be in one)")
    if "no such file" in text:
        return ("the server does not export this version (yet): is the group still in nfs mode, its "
                "version packed as squashfs? (swarmboot admin stats: nfs.exports)")
    if "connection refused" in text or "timed out" in text or "no route" in text or "unreachable" in text:
        return ("nothing answers NFS there: is swarmboot serve running without --no-nfs, and TCP port "
                "reachable from the node (firewall)?")
    if "unknown filesystem" in text or "no such device" in text:
        return "the initramfs lacks the nfs/nfsv4 kernel modules: re-pack the image with this swarmboot"
    return ("check the server's NFS export (swarmboot admin stats: nfs) and its log "
            "(SWARMBOOT_HOME/nfs/ganesha.log)")


def mount_export(
    export: NfsExport,
    target: Path,
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
    runner: Callable[..., object] = run,
) -> int:
    """Mount the export read-only at `target`; returns the attempts it took. RootError after the
    last attempt, naming the server, the path, the port and what to check."""
    target.mkdir(parents=True, exist_ok=True)
    argv = mount_argv(export, target)
    pauses = waits(attempts)
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            runner(argv, timeout=MOUNT_TIMEOUT)
            return attempt
        except CommandTimeout:
            last = f"no answer within {MOUNT_TIMEOUT:.0f} s (timed out)"
        except CommandError as exc:
            lines = (exc.stderr or "").strip().splitlines()
            last = lines[-1] if lines else str(exc)
        if attempt < attempts:
            pause = pauses[attempt - 1]
            say(f"NFS root {export.source} (port {export.port}): {last}; again in {pause:.1f} s "
                f"(attempt {attempt} of {attempts})")
            sleep(pause)
    raise RootError(
        f"cannot mount the NFS root {export.source} (server {export.server}, TCP port {export.port}, "
        f"path {export.path}) after {attempts} attempts: {last}",
        hint=why(last),
    )
