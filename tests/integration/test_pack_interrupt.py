"""An interrupted `swarmboot image pack` leaves nothing running: dracut runs in a PID namespace of
its own whose first process dies with pack (setpriv --pdeathsig, unshare --kill-child), so SIGKILL
of pack takes dracut and every helper it started with it; SIGTERM stops them and unwinds (the
work directory goes, the image's lock is free)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ground import run as runmod
from ground.config import Settings
from lab.server_process import home_env, swarmboot_command

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of every process below `root`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = st[0]
    found: dict[int, tuple[int, str]] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                st = _stat(child)
                if st is None:
                    continue
                raw = Path(f"/proc/{child}/cmdline").read_bytes()
                found[child] = (st[1], raw.replace(b"\0", b" ").decode(errors="replace"))
                frontier.append(child)
    return found


def alive(processes: dict[int, tuple[int, str]]) -> list[str]:
    """The ones still running (the same process: same start time, not a reused PID)."""
    return [cmd for pid, (start, cmd) in processes.items() if (st := _stat(pid)) and st[1] == start]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_an_interrupted_pack_leaves_no_dracut_behind(
    image_from_base: tuple[Settings, str], sig: signal.Signals
) -> None:
    settings, name = image_from_base
    env = home_env(settings.home)
    log = settings.home / "pack.log"
    with log.open("wb") as out:
        pack = runmod.spawn([*swarmboot_command(), "image", "pack", name, "--no-agent"], env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        tree: dict[int, tuple[int, str]] = {}
        while time.monotonic() < deadline and pack.running():
            tree = descendants(pack.pid)
            helpers = [cmd for _start, cmd in tree.values() if "dracut" in cmd and "nsroot" not in cmd]
            if len(helpers) >= 2:  # dracut itself and something it started
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"dracut did not start:\n{log.read_text()[-3000:]}")
        time.sleep(1.0)
        tree = descendants(pack.pid)
        os.kill(pack.pid, sig)
        code = pack.wait(timeout=60)
        end = time.monotonic() + 15
        while alive(tree) and time.monotonic() < end:
            time.sleep(0.2)
        assert not alive(tree), f"left running after {sig.name} of pack: {alive(tree)}"
    finally:
        pack.stop()
    assert code != 0
    staging = settings.images_dir / ".staging"
    if sig is signal.SIGTERM:  # it unwound: no work directory, a clear last line, the lock is free
        assert not staging.exists() or not any(staging.iterdir()), list(staging.iterdir())
        assert "stopped (SIGTERM)" in log.read_text()
    from ground.store import ImageStore

    with ImageStore(settings).lock(name, "test"):
        pass
    assert ImageStore(settings).versions(name) == []



