"""The boot agent's main(): the boot, read as its list of stages.

    cmdline → network → plan → [service] → pre → [part] → download → root → files → post → handover

Each stage is a small function here that calls its module. main() returns 0 so dracut switches
root into the sysroot; 1 when a stage failed on its last attempt (the dracut hook reboots).
Nothing happens at import; paths, the rescue and the listen address are injectable for tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bootagent import PYTHON_STARTED, lldp, network, nodefiles, roots, scripts
from bootagent.context import AgentConfig, BootContext, Console, Paths
from bootagent.download import DownloadStatus, ImageDownload
from bootagent.errors import DownloadError
from bootagent.report import Reporter
from bootagent.rescue import ConsoleRescue, Rescue
from bootagent.seeder import signal_seeder, start_seeder
from bootagent.server import ServerClient
from bootagent.stages import BootFailed, Stage, StageResult, run_stages
from ground.contract import cmdline
from ground.contract.sets import Stage as Name
from ground.errors import CommandError

# -- the stages -----------------------------------------------------------------------------------


def stage_cmdline(ctx: BootContext) -> StageResult:
    args = cmdline.read_cmdline(ctx.paths.cmdline)
    ctx.args = args
    if ctx.lldp is None and ctx.config.lldp:  # from now on, LLDP frames are kept for the plan stage
        ctx.lldp = lldp.LldpListener()
        ctx.lldp.open()
    ctx.console.debug_enabled = ctx.console.debug_enabled or args.debug
    for warning in args.warnings:
        ctx.console.info(f"warning: {warning}")
    ctx.warnings.extend(args.warnings)
    reporter = ctx.reporter
    if reporter is not None:
        reporter.servers = args.servers
        reporter.token = args.token
        if args.node:
            reporter.set_events_url(f"{args.servers[0]}/api/v1/nodes/{args.node}/events")
        reporter.start()
    details: dict[str, object] = {"servers": list(args.servers), "node": args.node, "mac": args.mac}
    if args.warnings:
        details["warnings"] = list(args.warnings)
    return details


def stage_network(ctx: BootContext) -> StageResult:
    args = ctx.require_args()
    iface = network.find_boot_interface(args.mac, timeout=ctx.config.network_timeout, address=args.address)
    ctx.interface = iface
    if ctx.lldp is not None:
        ctx.lldp.join(iface.name)
    how = "as iPXE got it, no second DHCP" if iface.from_ipxe else "set by dracut"
    ctx.console.info(f"boot interface {iface.name} ({iface.mac}): {' '.join(iface.addresses)} ({how})")
    return {"interface": iface.name, "mac": iface.mac, "addresses": list(iface.addresses),
            "address_from": "ipxe" if iface.from_ipxe else "dracut"}


def stage_plan(ctx: BootContext) -> StageResult:
    args = ctx.require_args()
    mac = args.mac or (ctx.interface.mac if ctx.interface else "")
    # A node the iPXE script named has its plan whatever its port says: it asks at once, and what
    # LLDP says goes with a later stage's event. An unnamed one waits: its port may name it.
    named = bool(args.node)
    heard = switch_port(ctx, wait=not named)
    client = ServerClient(args.servers, ctx.console)
    plan, server = client.fetch_plan(
        mac, args.node, args.plan_timeout, heard.params() if heard and not named else None, token=args.token
    )
    ctx.plan, ctx.server, ctx.client = plan, server, client
    if network.set_hostname(plan.node.hostname, ctx.paths.hostname):
        ctx.console.info(f"host name {plan.node.hostname} (from the plan)")
    if ctx.reporter is not None:
        ctx.reporter.set_image(plan.image.name, plan.image.version)
        ctx.reporter.heartbeat_seconds = float(plan.reporting.heartbeat_seconds)
        ctx.reporter.set_events_url(plan.reporting.events_url)
    ctx.console.info(
        f"plan from {server}: node {plan.node.name}, image {plan.image.name} v{plan.image.version} "
        f"({plan.image.format}, {plan.image.size >> 20} MiB), root mode {plan.root.mode}"
    )
    if args.token and not plan.secret_files:
        ctx.console.info("note: the plan has no secret files")
    details: dict[str, object] = {
        "server": server,
        "node": plan.node.name,
        "root_mode": plan.root.mode,
        "secret_files": len(plan.secret_files),
    }
    if heard is not None and named:
        report_switch_port(ctx, details, heard)
    elif not named:  # it went with the plan request, which the server recorded: shown, not reported again
        if heard is not None:
            details["lldp"] = heard.params()
        close_lldp(ctx)
    return details


def switch_port(ctx: BootContext, wait: bool = True) -> lldp.LldpInfo | None:
    """What LLDP said on the boot NIC: waiting at most swarmboot.lldp_wait after the agent started,
    or (`wait` false) what came so far."""
    listener, args = ctx.lldp, ctx.require_args()
    if listener is None or ctx.interface is None:
        return None
    heard = listener.wait(ctx.interface.name, args.lldp_wait if wait else 0.0)
    if heard is not None:
        where = f"switch {heard.system or heard.chassis}, port {heard.port}"
        desc = f" ({heard.port_desc})" if heard.port_desc else ""
        ctx.console.info(f"LLDP on {heard.interface}: {where}{desc}")
    elif listener.error:
        ctx.console.debug(listener.error)
    return heard


def report_switch_port(
    ctx: BootContext, details: dict[str, object], heard: lldp.LldpInfo | None = None
) -> None:
    """What LLDP said, in this stage's event with the boot NIC's MAC (the server records it as from
    a plan request), once; then the listener closes. Without `heard`: a frame that came since the
    plan, if any."""
    if heard is None:
        if ctx.lldp is None:
            return
        heard = switch_port(ctx, wait=False)
        if heard is None:
            return
    mac = ctx.interface.mac if ctx.interface else ctx.require_args().mac
    details["lldp"] = {**heard.params(), "mac": mac}
    close_lldp(ctx)


def close_lldp(ctx: BootContext) -> None:
    if ctx.lldp is not None:
        ctx.lldp.close()
        ctx.lldp = None


def service_requested(ctx: BootContext) -> bool:
    return bool((ctx.args and ctx.args.service) or (ctx.plan and ctx.plan.service))


def stage_service(ctx: BootContext) -> StageResult:
    ctx.rescue.stop(ctx, "service", "service mode (swarmboot.service=1 or the node's service flag)")
    return {"service": True}


def stage_pre(ctx: BootContext) -> StageResult:
    scripts.run_script(ctx, "pre")
    return None


def part_wanted(ctx: BootContext) -> bool:
    plan = ctx.require_plan()
    return bool(plan.scripts.part.strip()) or plan.root.mode == "disk"


def stage_part(ctx: BootContext) -> StageResult:
    """Disk mode: plan the layout against the real disks, then partition, RAID1, mkfs (or the
    group's part script instead); other modes: the part script."""
    plan = ctx.require_plan()
    if plan.root.mode != "disk":
        scripts.run_script(ctx, "part")
        return None
    from bootagent.disk import install

    if ctx.disk is not None:  # a retry: start clean
        install.unwind(ctx.disk)
    client = ctx.client or ServerClient(ctx.require_args().servers, ctx.console)
    state = install.DiskInstall(
        boot_plan=plan, layout=plan.root.layout, firmware=install.firmware(), run_dir=ctx.paths.run_dir,
        fetch=lambda url, what: client.fetch_bytes(url, 300.0, what),
        agent_cmdline=install.agent_cmdline(ctx.paths.cmdline), console=ctx.console,
    )
    ctx.disk = state
    if plan.scripts.part.strip():  # the group's script replaces the declarative layout
        disks = [d.path for d in install.discovery.list_disks()]
        state.script_disks = tuple(disks)
        ctx.extra_env["SWARMBOOT_DISKS"] = " ".join(disks)
        scripts.run_script(ctx, "part")
        return {"part_script": True, "disks": disks}
    return install.run_part(state)


def start_beside_the_download(ctx: BootContext) -> None:
    """What runs beside the transfer, started once it runs: the root mode's modprobe (the root
    stage waits for it), the bundle carried for the booted system's seeding (the handover waits
    for it), and the boot-files process (this node serves its kernel and initramfs from now on).
    Not with the plan: on a node with one CPU (TCG's guests) their start-up took 0.5-0.9 s of the
    agent's own stages; a transfer mostly waits on the network (on a real node), and these wait for
    nothing the transfer needs."""
    from bootagent.seed_handover import carry_ahead, start_boot_files

    if ctx.preload is None:
        ctx.preload = roots.preload_modules(ctx.require_plan().root.mode)
    if ctx.carry_ahead is None:
        ctx.carry_ahead = carry_ahead(ctx)
    if ctx.boot_files_pid is None:
        ctx.boot_files_pid = start_boot_files(ctx)


def stage_download(ctx: BootContext) -> StageResult:
    plan = ctx.require_plan()
    if plan.root.mode == "nfs":  # the root is the server's export: nothing to fetch, nothing to seed
        source = plan.root.nfs.source if plan.root.nfs else ""
        ctx.console.info(f"download skipped: the root is mounted over NFS from {source}")
        start_beside_the_download(ctx)
        skipped: dict[str, object] = {"skipped": "nfs", "source": source}
        report_switch_port(ctx, skipped)
        return skipped
    config = ctx.config
    client = ctx.client or ServerClient(ctx.require_args().servers, ctx.console)
    cache = ctx.disk.cache_dir if ctx.disk is not None else None
    image_dir = cache or ctx.paths.image_dir  # the disk's image cache: the same sha256 is reused
    image_dir.mkdir(parents=True, exist_ok=True)
    torrent = client.fetch_bytes(plan.image.torrent_url, 120.0, "the image's .torrent")
    torrent_file = ctx.paths.run_dir / "image.torrent"
    torrent_file.write_bytes(torrent)
    reporter = ctx.reporter
    last = [0.0]

    def on_progress(status: DownloadStatus) -> None:
        now = time.monotonic()
        if now - last[0] >= config.progress_every:
            last[0] = now
            ctx.console.info(
                f"download {status.progress:6.1%}  {status.download_rate / 1048576:6.1f} MiB/s  "
                f"{status.peers} peers  {status.state}"
            )
            if reporter is not None:
                reporter.event(
                    "download",
                    "progress",
                    progress=status.progress,
                    details={"rate": status.download_rate, "peers": status.peers},
                )

    dl = ImageDownload.for_plan(plan, torrent, image_dir, listen_interfaces=config.listen_interfaces)
    ctx.download = dl
    try:
        dl.start()
        start_beside_the_download(ctx)
        path = dl.wait(
            on_progress, deadline=plan.torrent.max_download_seconds, stall=plan.torrent.stall_seconds
        )
        status = dl.status()
    finally:
        dl.close()
        ctx.download = None
    ctx.image_file = path
    seconds = status.elapsed
    summary = {
        "bytes": status.total,
        "seconds": round(seconds, 3),
        "reused": dl.reused,
        "from_peers": status.from_peers,
        "from_web_seeds": status.from_web_seeds,
        "uploaded": status.uploaded,  # to other nodes while downloading (the server's seeder takes nothing)
        "hash_failures": dl.hash_failures,
        "rechecks": dl.recheck.rechecks,
        "rehashed": dl.rehashed,
        "rate": int(status.total / seconds) if seconds > 0 and not dl.reused else 0,
    }
    (ctx.paths.run_dir / "download.json").write_text(json.dumps(summary) + "\n")
    ctx.console.info(f"image verified (sha256 ok): {path} ({status.total >> 20} MiB in {seconds:.1f} s)")
    if config.seed_after and plan.torrent.seed_until_switch_root:
        try:
            ctx.seeder_pid = start_seeder(
                torrent_file, path, plan.image.sha256, config.listen_interfaces, ctx.paths.run_dir
            )
        except OSError as exc:
            raise DownloadError(f"cannot start the seeding process: {exc}") from exc
    report_switch_port(ctx, summary)
    return summary


def stage_root(ctx: BootContext) -> StageResult:
    plan = ctx.require_plan()
    nfs = plan.root.mode == "nfs"
    if ctx.image_file is None and not nfs:
        raise RuntimeError("the root stage needs the downloaded image")
    if ctx.mounts is not None:  # a retry after a failure: start clean
        unwind_mounts(ctx)
    roots.finish_preload(ctx.preload)
    client_id = ""  # what the NFSv4 client was given (none: the kernel has no such file)
    if nfs:
        from bootagent import nfs as nfs_mount

        node_id = nodefiles.machine_id(plan.node.name)
        if nfs_mount.set_client_identifier(node_id, ctx.paths.nfs_client_identifier):
            client_id = node_id
            ctx.console.info(f"NFS client identifier {client_id} (this node's machine-id)")
    ctx.paths.sysroot.mkdir(parents=True, exist_ok=True)
    ctx.mounts = roots.build_root(
        plan.root, ctx.image_file or Path(), plan.image.format, ctx.paths.sysroot, ctx.paths.mounts_dir,
        ctx.disk, say=ctx.console.info,
    )
    if plan.root.mode == "tmpfs" or (plan.root.mode == "disk" and ctx.disk and not ctx.disk.cache_dir):
        # the archive is unpacked (into RAM, or onto the disk): free its RAM once seeding stops
        (ctx.paths.run_dir / "cleanup-files").write_text(f"{ctx.image_file}\n")
    details: dict[str, object] = {"mode": plan.root.mode, "sysroot": str(ctx.paths.sysroot)}
    if nfs and plan.root.nfs is not None:
        details["source"] = f"nfs {plan.root.nfs.source}"
        details["nfs_client_identifier"] = client_id
    if ctx.disk is not None:
        details["install_timings"] = dict(ctx.disk.timings)
        details["bootloader"] = ctx.disk.bootloader
    return details


def stage_files(ctx: BootContext) -> StageResult:
    plan = ctx.require_plan()
    args = ctx.require_args()
    boot_mac = ctx.interface.mac if ctx.interface else args.mac
    names = {n.mac: n.name for n in network.list_nics()}
    from bootagent.report import events_urls

    urls = events_urls(plan.reporting.events_url, args.servers)
    return nodefiles.write_node_files(
        plan, ctx.paths.sysroot, boot_mac, names, urls, resolv_conf=Path("/etc/resolv.conf"), token=args.token
    )


def stage_post(ctx: BootContext) -> StageResult:
    plan = ctx.require_plan()
    # disk mode: the post script runs inside the installed root (chroot), with the node's variables
    scripts.run_script(ctx, "post", chroot=ctx.paths.sysroot if plan.root.mode == "disk" else None)
    return None


def stage_handover(ctx: BootContext) -> StageResult:
    signal_seeder(ctx.paths.run_dir)  # it winds down meanwhile, not in the cleanup hook (bootagent/seeder.py)
    if ctx.boot_files_pid is not None:  # so does the boot-files server
        from bootagent.seed_handover import signal_boot_files

        signal_boot_files(ctx)
    total = time.monotonic() - ctx.console.started
    # The agent's own time: neither the transfer nor a person's time in the service shell.
    waited = ctx.timings.get("download", 0.0) + ctx.timings.get("service", 0.0)
    timings = {
        "stages": ctx.timings,
        "agent_seconds": round(total, 3),
        "without_transfer_seconds": round(total - waited, 3),
    }
    (ctx.paths.run_dir / "timings.json").write_text(json.dumps(timings) + "\n")
    seeding = hand_over_seeding(ctx)
    if ctx.boot_files_pid is not None:  # its files stay for the booted service, if one runs
        from bootagent.seed_handover import stop_boot_files

        stop_boot_files(ctx, keep=bool(seeding.get("after_boot")))
    ctx.console.info(f"handing over to the booted system after {total:.1f} s")
    details: dict[str, object] = {**timings, "seeding": seeding}
    if ctx.disk is not None:  # the install worked: the server boots this node from its disk now
        from bootagent.disk.install import install_record, settle

        settle(ctx.paths.sysroot)  # the node's files and the post script's on the disk too

        reused = json.loads((ctx.paths.run_dir / "download.json").read_text()).get("reused", False)
        details["install"] = install_record(ctx.disk, bool(reused))
    report_switch_port(ctx, details)  # the last chance for a frame that came after the download
    if ctx.lldp is not None:
        ctx.console.debug(f"no LLDP frame on the boot NIC in {time.monotonic() - ctx.lldp.started:.0f} s")
        close_lldp(ctx)
    return details


def hand_over_seeding(ctx: BootContext) -> dict[str, object]:
    """The booted system's seeding service (bootagent/seed_handover.py); the boot goes on without
    it when it cannot be set up."""
    from bootagent.seed_handover import stage_seed_handover

    try:
        return stage_seed_handover(ctx)
    except (OSError, CommandError) as exc:
        ctx.console.info(f"warning: no seeding after boot: {exc}")
        ctx.warnings.append(f"no seeding after boot: {exc}")
        return {"after_boot": False, "why_not": str(exc)}


def unwind_mounts(ctx: BootContext) -> None:
    """Undo the root's mounts (a retry starts clean); what could not be undone is shown and reported."""
    if ctx.mounts is None:
        return
    errors = ctx.mounts.unwind()
    ctx.mounts = None
    for error in errors:
        ctx.console.info(f"warning: could not undo a mount: {error}")
    ctx.warnings.extend(f"could not undo a mount: {e}" for e in errors)
    if errors and ctx.reporter is not None:
        ctx.reporter.event("root", "progress", message="could not undo: " + "; ".join(errors))


# The boot, in the contract's stage order (tests/unit/test_contract.py checks the names).
STAGES: tuple[Stage, ...] = (
    Stage(Name.CMDLINE, stage_cmdline),
    Stage(Name.NETWORK, stage_network),
    Stage(Name.PLAN, stage_plan),
    Stage(Name.SERVICE, stage_service, when=service_requested),
    Stage(Name.PRE, stage_pre),
    Stage(Name.PART, stage_part, when=part_wanted),
    Stage(Name.DOWNLOAD, stage_download),
    Stage(Name.ROOT, stage_root),
    Stage(Name.FILES, stage_files),
    Stage(Name.POST, stage_post),
    Stage(Name.HANDOVER, stage_handover),
)


def make_context(
    paths: Paths | None = None, rescue: Rescue | None = None, config: AgentConfig | None = None
) -> BootContext:
    paths = paths or Paths()
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    console = Console(paths)
    ctx = BootContext(
        paths=paths, console=console, rescue=rescue or ConsoleRescue(), config=config or AgentConfig()
    )
    ctx.reporter = Reporter(console)
    return ctx


def boot(ctx: BootContext, stages: tuple[Stage, ...] = STAGES) -> int:
    """Run the stages; 0: dracut switches root, 1: a stage failed on its last attempt."""
    ctx.console.info(f"agent started (monotonic clock {time.monotonic():.2f} s, as the kernel's log; "
                     f"its Python from {PYTHON_STARTED:.2f} s)")
    try:
        run_stages(ctx, stages, max_attempts=ctx.config.max_attempts)
    except BootFailed as failed:
        ctx.console.info(f"giving up: stage {failed.stage} failed {ctx.config.max_attempts} times")
        return 1
    finally:
        if ctx.reporter is not None:
            ctx.reporter.close(timeout=5.0)
        now = time.monotonic()
        ctx.console.info(f"agent exits after {now - ctx.console.started:.1f} s (monotonic clock {now:.2f} s)")
    return 0


def main(paths: Paths | None = None, rescue: Rescue | None = None, config: AgentConfig | None = None) -> int:
    """Boot this node (what the dracut pre-mount hook runs)."""
    return boot(make_context(paths, rescue, config))
