"""Hand the seeding over to the booted system (docs/swarm.md, "Seeding after boot").

Just before switch_root the agent leaves, in /run (which dracut moves into the booted system):
- its own frozen bundle on a small tmpfs of its own, /run/swarmboot/agent (dracut mounts /run
  noexec; this one is not), so that the image needs no Python;
- the handover file (settings, where to report, the boot's token: 0600);
- a runtime unit, /run/systemd/system/swarmboot-seed.service, wanted by multi-user.target: systemd
  reads /run/systemd/system at boot, so nothing is written into the image or onto the disk.
The unit runs `swarmboot-agent seed --handover …` at idle I/O and the lowest CPU priority
(bootagent/seeder.py, `seed_after_boot`); once it stops, the bundle's tmpfs is unmounted and a
tmpfs root's archive, an image nobody mounts, is deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from bootagent.boot_files import PORT as BOOT_FILES_PORT
from bootagent.context import BootContext
from bootagent.seeder import SEEDER_NICE, Handover, agent_command
from ground.contract.plan import BootPlan
from ground.errors import CommandError
from ground.run import run, spawn

UNIT = "swarmboot-seed.service"
HANDOVER_FILE = "seed-handover.json"
STATUS_FILE = "seed-status.json"  # the booted seeder's counters (seeder.json: the initramfs one's)
AGENT_DIR = "agent"
BOOT_FILES_DIR = "boot-files"  # the kernel and initramfs the booted service serves (bootagent/boot_files.py)
BOOT_FILES_PID = "boot-files.pid"  # `swarmboot-agent boot-files`, serving them while the node boots
AGENT_TMPFS_SIZE = "96m"  # the bundle is ~25 MB


def bundle_dir() -> Path | None:
    """The frozen agent's onedir bundle (None when the agent runs from source: nothing to carry)."""
    if not getattr(sys, "frozen", False):
        return None
    return Path(sys.executable).parent


def has_systemd(sysroot: Path) -> bool:
    return any((sysroot / p).exists() for p in ("usr/lib/systemd/systemd", "lib/systemd/systemd"))


def why_not(plan: BootPlan, image_file: Path | None, sysroot: Path, seed_after: bool) -> str:
    """Why the booted system will not seed ("" when it will)."""
    if not seed_after:
        return "seeding is off for this agent"
    if plan.torrent.seed_after_boot_seconds <= 0:
        return "the plan's seed_after_boot_seconds is 0"
    if plan.root.mode == "nfs" or image_file is None:
        return "no image file (the root is on NFS)"
    if not image_file.is_file():
        return f"the image file {image_file} is gone"
    if not has_systemd(sysroot):
        return "the image has no systemd to run the seeding unit"
    return ""


def render_unit(run_dir: Path) -> str:
    agent = run_dir / AGENT_DIR
    handover = run_dir / HANDOVER_FILE
    return f"""\
# Written by the swarmboot agent for this boot only (/run): seed the boot image to the nodes still
# booting, then stop (docs/swarm.md, "Seeding after boot").
[Unit]
Description=swarmboot: seed the boot image to nodes still booting
After=network-online.target
Wants=network-online.target
ConditionPathExists={handover}

[Service]
Type=simple
ExecStart={agent}/swarmboot-agent seed --handover {handover}
ExecStopPost=-/bin/umount -l {agent}
Nice=19
CPUSchedulingPolicy=batch
IOSchedulingClass=idle
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"""


def carry_bundle(source: Path, target: Path) -> None:
    """The bundle onto its own exec tmpfs under /run (a second handover replaces the first)."""
    if target.is_mount():
        run(["umount", "-l", str(target)], timeout=30)
    target.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", f"mode=0755,nosuid,nodev,size={AGENT_TMPFS_SIZE}",
         "swarmboot-agent", str(target)], timeout=30)
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)


class CarryAhead:
    """The bundle carried onto its tmpfs in a thread while the image downloads (the plan says the
    booted system seeds): the handover then only waits for it, instead of copying ~25 MB itself
    (0.6-1.2 s of a TCG guest's handover, measured in the e2e)."""

    def __init__(self, bundle: Path, target: Path) -> None:
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._carry, args=(bundle, target), name="carry-bundle",
                                        daemon=True)
        self._thread.start()

    def _carry(self, bundle: Path, target: Path) -> None:
        try:
            carry_bundle(bundle, target)
        except (OSError, CommandError) as exc:
            self.error = exc

    def done(self, timeout: float = 120.0) -> bool:
        """True once the bundle is in place (False: carry it again, or it failed)."""
        self._thread.join(timeout)
        return not self._thread.is_alive() and self.error is None


def carry_ahead(ctx: BootContext) -> CarryAhead | None:
    """Start carrying the bundle when the plan says the booted system will seed (None: it will
    not, or the agent is not frozen; `stage_seed_handover` decides with the rest it knows then)."""
    plan, bundle = ctx.require_plan(), bundle_dir()
    if bundle is None or not ctx.config.seed_after or plan.torrent.seed_after_boot_seconds <= 0:
        return None
    if plan.root.mode == "nfs":
        return None
    return CarryAhead(bundle, ctx.paths.run_dir / AGENT_DIR)


def start_boot_files(ctx: BootContext) -> int | None:
    """After the plan: `swarmboot-agent boot-files` fetches this version's kernel and initramfs
    again, checks them and serves them from the initramfs while the node boots, in a process of
    its own at the seeder's CPU priority (bootagent/boot_files.py). None: not for this boot."""
    plan, args = ctx.require_plan(), ctx.require_args()
    if not ctx.config.boot_files_while_booting or plan.root.mode == "nfs" or not args.servers:
        return None
    run_dir = ctx.paths.run_dir
    log = open(run_dir / "boot-files.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = spawn(
            [*agent_command(), "boot-files", "--servers", ",".join(args.servers), "--node", plan.node.name,
             "--dir", str(run_dir / BOOT_FILES_DIR), "--events-url", plan.reporting.events_url,
             "--image", plan.image.name, "--version", str(plan.image.version)],
            extra_env={"SWARMBOOT_TOKEN": args.token}, stdout=log, stderr=log,
        )
    except (OSError, CommandError) as exc:
        ctx.console.info(f"note: not serving the boot files while booting: {exc}")
        return None
    finally:
        log.close()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.proc.pid, SEEDER_NICE)
    pid = proc.detach()
    (run_dir / BOOT_FILES_PID).write_text(f"{pid}\n")  # the dracut cleanup hook's, if the boot goes wrong
    return pid


def signal_boot_files(ctx: BootContext) -> None:
    """The handover begins: the boot-files process stops serving meanwhile (`stop_boot_files`)."""
    if ctx.boot_files_pid is not None:
        with contextlib.suppress(OSError):
            os.kill(ctx.boot_files_pid, signal.SIGTERM)


def stop_boot_files(ctx: BootContext, keep: bool) -> None:
    """The end of the handover: the boot-files process (signalled at its start) stops serving and
    says so; the dracut cleanup hook waits for it just before switch_root (boot-files.pid, until
    boot-files.json says it stopped), not the agent. Its files stay for the booted service when
    `keep`, or go (a fetch that was still running removes its own partial file)."""
    pid, ctx.boot_files_pid = ctx.boot_files_pid, None
    if pid is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped if it is done already
    if not keep:
        shutil.rmtree(ctx.paths.run_dir / BOOT_FILES_DIR, ignore_errors=True)


def take_cleanup(run_dir: Path, image_file: Path) -> tuple[str, ...]:
    """The image file leaves the dracut hook's delete list (cleanup-files): the seeding service
    deletes it when it stops instead."""
    listing = run_dir / "cleanup-files"
    if not listing.exists():
        return ()
    names = [n for n in listing.read_text().splitlines() if n.strip()]
    kept = [n for n in names if Path(n) != image_file]
    listing.write_text("".join(f"{n}\n" for n in kept))
    return tuple(n for n in names if Path(n) == image_file)


def handover_for(  # noqa: PLR0917
    plan: BootPlan, run_dir: Path, image_file: Path, listen: str, events_urls: list[str], token: str,
    remove_after: tuple[str, ...] = (), servers: tuple[str, ...] = (), boot_files_port: int = BOOT_FILES_PORT,
) -> Handover:
    """What the seeding service is told: the plan's torrent.seed_* rules for the file the node holds
    (the torrent and the status in `run_dir`). The agent's handover and the swarm benchmark's
    lifecycle (bench/swarm_node.py) both build it here."""
    t = plan.torrent
    return Handover(
        torrent=str(run_dir / "image.torrent"),
        dir=str(image_file.parent),
        sha256=plan.image.sha256,
        listen=listen,
        status=str(run_dir / STATUS_FILE),
        max_seconds=float(t.seed_after_boot_seconds),
        idle_seconds=float(t.seed_idle_seconds),
        rate_limit=int(t.seed_rate_limit),
        events_urls=tuple(events_urls),
        token=token,
        image=plan.image.name,
        version=plan.image.version,
        remove_after=remove_after,
        node=plan.node.name,
        servers=tuple(servers),
        boot_files_dir=str(run_dir / BOOT_FILES_DIR) if servers else "",
        boot_files_port=boot_files_port,
        file=str(image_file),
    )


def stage_seed_handover(
    ctx: BootContext, bundle: Path | None = None, mount_bundle: bool = True
) -> dict[str, object]:
    """Leave the seeding service for the booted system; what was done, for the handover's details."""
    plan = ctx.require_plan()
    args = ctx.require_args()
    run_dir = ctx.paths.run_dir
    why = why_not(plan, ctx.image_file, ctx.paths.sysroot, ctx.config.seed_after)
    bundle = bundle or bundle_dir()
    if not why and bundle is None:
        why = "the agent is not frozen (it runs from source): no bundle to carry"
    if why:
        ctx.console.info(f"no seeding after boot: {why}")
        return {"after_boot": False, "why_not": why}
    assert ctx.image_file is not None and bundle is not None
    from bootagent.report import events_urls

    ahead = ctx.carry_ahead
    if ahead is not None and ahead.done():
        pass  # carried while the image downloaded
    elif mount_bundle:
        carry_bundle(bundle, run_dir / AGENT_DIR)
    else:  # tests on the host: a plain copy
        shutil.copytree(bundle, run_dir / AGENT_DIR, symlinks=True, dirs_exist_ok=True)
    t = plan.torrent
    handover = handover_for(
        plan, run_dir, ctx.image_file, ctx.config.listen_interfaces,
        events_urls(plan.reporting.events_url, args.servers), args.token,
        remove_after=take_cleanup(run_dir, ctx.image_file), servers=tuple(args.servers),
    )
    path = run_dir / HANDOVER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(handover.to_json())
    units = run_dir.parent / "systemd/system"
    (units / "multi-user.target.wants").mkdir(parents=True, exist_ok=True)
    (units / UNIT).write_text(render_unit(run_dir))
    link = units / "multi-user.target.wants" / UNIT
    if not os.path.lexists(link):
        link.symlink_to(f"../{UNIT}")
    ctx.console.info(
        f"the booted system seeds {ctx.image_file.name} for at most {t.seed_after_boot_seconds} s "
        f"(until no node has needed it for {t.seed_idle_seconds} s"
        + (f", at most {t.seed_rate_limit >> 10} KiB/s" if t.seed_rate_limit else "")
        + f"): {UNIT}"
    )
    return {"after_boot": True, "max_seconds": t.seed_after_boot_seconds,
            "idle_seconds": t.seed_idle_seconds, "rate_limit": t.seed_rate_limit}
