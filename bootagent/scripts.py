"""The pre / part / post scripts of the plan. Each runs with the node's facts in its environment
(SWARMBOOT_NODE, SWARMBOOT_HOSTNAME, SWARMBOOT_ADDRESSES, SWARMBOOT_IMAGE, SWARMBOOT_IMAGE_VERSION,
SYSROOT, …: see BootContext.environment). A script that fails or runs too long stops the boot; its
output is shown on the console and sent with the failure event."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bootagent.context import BootContext
from bootagent.errors import ScriptError
from ground.errors import CommandError, CommandTimeout
from ground.run import run

OUTPUT_TAIL = 40  # lines of output kept in the failure message


def script_argv(path: Path, text: str) -> list[str]:
    """Run a script with its own interpreter when it has a #! line, with /bin/sh -e otherwise. The
    interpreter is called with the script as its argument, as the kernel would (the #! line's
    interpreter and its one optional argument): dracut mounts /run noexec, so the script itself
    cannot be executed from there."""
    if not text.startswith("#!"):
        return ["/bin/sh", "-e", str(path)]
    interpreter, _, argument = text[2:].split("\n", 1)[0].strip().partition(" ")
    return [interpreter, *([argument.strip()] if argument.strip() else []), str(path)]


def run_script(ctx: BootContext, which: str, chroot: Path | None = None) -> str:
    """Run the plan's `which` script ("pre", "part", "post"); return its output. With `chroot`
    (disk mode's post script) it runs inside that root, with /dev, /proc and /sys bound in."""
    plan = ctx.require_plan()
    text: str = getattr(plan.scripts, which)
    if not text.strip():
        return ""
    scripts = ctx.paths.run_dir / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    path = scripts / f"{which}.sh"
    path.write_text(text)
    os.chmod(path, 0o700)
    timeout = float(plan.scripts.timeout)
    ctx.console.info(f"running the {which} script ({len(text.splitlines())} lines, timeout {timeout:.0f} s)")
    argv, env = script_argv(path, text), ctx.environment() | {"SWARMBOOT_SCRIPT": which}
    binds = None
    if chroot is not None:
        from bootagent.mounts import MountStack

        inside = chroot / "tmp" / f"swarmboot-{which}.sh"
        inside.parent.mkdir(parents=True, exist_ok=True)
        inside.write_text(text)
        os.chmod(inside, 0o700)
        argv = ["chroot", str(chroot), *script_argv(Path("/tmp") / inside.name, text)]
        env = env | {"SYSROOT": "/", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        binds = MountStack()
        with binds.guard():
            for fs in ("dev", "proc", "sys"):
                binds.bind(Path("/") / fs, chroot / fs)
    try:
        result = run(
            argv,
            env=env,
            cwd=ctx.paths.run_dir,
            timeout=timeout,
            stderr=-2,  # subprocess.STDOUT: one stream, in order
        )
    except CommandError as exc:
        out = _tail(exc.stdout or exc.stderr)
        if isinstance(exc, CommandTimeout):
            reason = f"ran longer than {timeout:.0f} s and was stopped"
        elif exc.killed:
            reason = f"was killed by {signal.Signals(-exc.returncode).name}"
        else:
            reason = f"exited with code {exc.returncode}"
        raise ScriptError(
            f"the {which} script {reason}" + (":\n" + _indent(out) if out else " (no output)"),
            hint=f"fix the group's {which} script on the server; it is in {path} for a test by hand",
            output=out,
        ) from exc
    finally:
        if binds is not None:
            for problem in binds.unwind():
                ctx.console.info(f"warning: could not undo a bind mount: {problem}")
            (chroot / "tmp" / f"swarmboot-{which}.sh").unlink(missing_ok=True)  # type: ignore[operator]
    if result.stdout.strip():
        ctx.console.block(_indent(_tail(result.stdout)))
    return result.stdout


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-OUTPUT_TAIL:])


def _indent(text: str) -> str:
    return "\n".join("  | " + line for line in text.splitlines())
