"""Stopping in the initramfs: service mode, `swarmboot.break=STAGE` and failures.

The node shows a message on the console, starts an SSH server (dropbear from the image, a host
key made at boot, the plan's `ssh_authorized_keys` plus the image's root keys baked into the
initramfs) and opens a shell on the console. Leaving the shell returns to the agent: the boot goes
on (service, break) or the failed stage is tried again. The shell is bounded by
`swarmboot.rescue_timeout` (default 1 h): nobody at the node means the boot goes on or, after a
failure, the node reboots; there is no silent hang and no panic loop.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ground.errors import CommandError, MissingToolError
from ground.run import output, run, spawn

if TYPE_CHECKING:
    from bootagent.context import BootContext

BANNER = {
    "failure": "THE BOOT STOPPED",
    "final": "THE BOOT STOPPED (last attempt)",
    "service": "SERVICE MODE",
    "break": "STOPPED ON REQUEST (swarmboot.break)",
}
# A constant snippet (no data interpolated): open the console as the shell's controlling terminal.
SHELL_SNIPPET = 'exec setsid -c /bin/sh -i -l <>"$1" >&0 2>&0'


class Rescue:
    """How the agent stops for a person. Subclasses: the real console/SSH one, and tests' own."""

    def stop(self, ctx: BootContext, kind: str, message: str) -> None:
        raise NotImplementedError


def console_tty(
    sys_active: Path = Path("/sys/class/tty/console/active"), fallback: str = "/dev/console"
) -> str:
    """The console's real tty (the last `console=`), where a shell gets job control."""
    try:
        names = sys_active.read_text().split()
    except OSError:
        return fallback
    return f"/dev/{names[-1]}" if names else fallback


class ConsoleRescue(Rescue):
    def __init__(self, ssh_home: Path = Path("/root"), keys_dir: Path = Path("/etc/dropbear")) -> None:
        self.ssh_home = ssh_home
        self.keys_dir = keys_dir
        self.ssh_pid: int | None = None
        self.ssh_note = ""

    def stop(self, ctx: BootContext, kind: str, message: str) -> None:
        self.write_environment(ctx)
        self.start_ssh(ctx)
        args = ctx.args
        timeout = args.rescue_timeout if args is not None else 3600.0
        after = {
            "failure": "leave the shell (exit or Ctrl-D) to try the stage again",
            "final": "leave the shell (exit or Ctrl-D) to reboot the node",
            "service": "leave the shell (exit or Ctrl-D) to go on booting",
            "break": "leave the shell (exit or Ctrl-D) to go on booting",
        }[kind]
        unattended = {
            "failure": "the stage is tried again",
            "final": "the node reboots",
        }.get(kind, "the boot goes on")
        ctx.console.block(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    f"swarmboot: {BANNER[kind]}",
                    *message.splitlines(),
                    "",
                    f"  log: {ctx.paths.log_file}   {self.ssh_note}",
                    f"  {after}; without anyone here, in {timeout:.0f} s {unattended}.",
                    "=" * 72,
                ]
            )
        )
        self.shell(ctx, timeout)

    def write_environment(self, ctx: BootContext) -> None:
        """The scripts' environment for SSH sessions too: $HOME/.profile reads run_dir/env."""
        env = ctx.paths.run_dir / "env"
        env.write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(ctx.environment().items()))
        )
        self.ssh_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.ssh_home / ".profile").write_text(f"[ -r {env} ] && . {env}\nPS1='swarmboot# '\n")

    def shell(self, ctx: BootContext, timeout: float) -> None:
        tty = console_tty()
        try:
            run(
                ["/bin/sh", "-c", SHELL_SNIPPET, "swarmboot-rescue", tty],
                env=ctx.environment() | {"PS1": "swarmboot# ", "HOME": str(self.ssh_home)},
                capture=False,
                check=False,
                timeout=timeout,
            )
        except CommandError:
            ctx.console.info(f"the rescue shell was open for {timeout:.0f} s: closing it")

    def start_ssh(self, ctx: BootContext) -> None:
        if self.ssh_pid is not None:
            return
        keys = list(ctx.plan.ssh_authorized_keys) if ctx.plan is not None else []
        ssh_dir = self.ssh_home / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.ssh_home, 0o700)
        baked = ssh_dir / "authorized_keys.image"  # the image's root keys, put there by dracut
        if baked.is_file():
            keys += baked.read_text().splitlines()
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text("".join(k.strip() + "\n" for k in keys if k.strip()))
        os.chmod(authorized, 0o600)
        if shutil.which("dropbear") is None:
            self.ssh_note = "no SSH server in this initramfs (dropbear-bin is not in the image)"
            return
        if not any(k.strip() for k in keys):
            self.ssh_note = "SSH: no authorized key (plan.ssh_authorized_keys is empty)"
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        key = self.keys_dir / "dropbear_ed25519_host_key"
        try:
            if not key.exists():
                run(["dropbearkey", "-t", "ed25519", "-f", str(key)], timeout=60)
            fingerprint = output(["dropbearkey", "-y", "-f", str(key)], timeout=60).splitlines()
        except (CommandError, MissingToolError) as exc:
            self.ssh_note = f"SSH server not started: {exc}"
            return
        log = open(ctx.paths.run_dir / "dropbear.log", "ab")  # noqa: SIM115 - handed to the child
        proc = spawn(
            [
                "dropbear",
                "-F",
                "-E",
                "-s",
                "-p",
                "22",
                "-r",
                str(key),
                "-P",
                str(ctx.paths.run_dir / "dropbear.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.ssh_pid = proc.detach()  # it outlives the agent: the dracut cleanup hook stops it
        (ctx.paths.run_dir / "dropbear.pid").write_text(f"{self.ssh_pid}\n")
        address = (
            ctx.interface.addresses[0].split("/")[0] if ctx.interface and ctx.interface.addresses else "?"
        )
        fp = next((line for line in fingerprint if "Fingerprint" in line), "")
        self.ssh_note = self.ssh_note or f"SSH: ssh root@{address}  ({fp.strip()})"
