"""Bootstrap a Debian tree: mmdebstrap (fast, one apt run), debootstrap as the fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

from builder.sources import Mirrors, render_sources_list
from ground.errors import MissingToolError
from ground.run import run

MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
DIVERT_DRACUT = Path(__file__).with_name("divert-dracut.sh")
BOOTSTRAP_TIMEOUT = 3600.0


def pick_bootstrapper() -> str:
    """'mmdebstrap' when installed, else 'debootstrap'; neither is a MissingToolError."""
    for tool in ("mmdebstrap", "debootstrap"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return tool
    raise MissingToolError("mmdebstrap", "mmdebstrap")


def mmdebstrap_argv(release: str, rootfs: Path, sources_file: Path, packages: list[str]) -> list[str]:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        '--aptopt=Acquire::Languages "none"',
        f"--essential-hook={DIVERT_DRACUT}",
    ]
    if MERGED_USR_HOOKS.is_dir():
        # Without it mmdebstrap pulls in usrmerge and perl (FACTS).
        argv.append(f"--hook-dir={MERGED_USR_HOOKS}")
    if packages:
        argv.append("--include=" + ",".join(packages))
    return [*argv, release, str(rootfs), str(sources_file)]


def bootstrap(
    tool: str, release: str, mirrors: Mirrors, rootfs: Path, *, packages: list[str], workdir: Path
) -> None:
    """Create `rootfs` (which must not exist yet).

    mmdebstrap installs `packages` in the same run, with dracut diverted before they are
    unpacked; debootstrap makes a bare minbase (packages come in the packages phase).
    """
    if tool == "mmdebstrap":
        sources_file = workdir / "sources.list"
        sources_file.write_text(render_sources_list(release, mirrors))
        run(mmdebstrap_argv(release, rootfs, sources_file, packages), timeout=BOOTSTRAP_TIMEOUT)
        return
    run(
        ["debootstrap", "--variant=minbase", release, str(rootfs), mirrors.archive],
        timeout=BOOTSTRAP_TIMEOUT,
    )
