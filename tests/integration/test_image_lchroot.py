"""lchroot with the real tools: mounts, policy, exit codes, no trace, locks, SIGKILL.

(Installing a package and uname -r: tests/integration/test_image_pack.py, on a private copy.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.fingerprint import fingerprint
from ground.config import Settings
from ground.store import ImageStore

pytestmark = pytest.mark.root
VENV_BIN = Path(sys.executable).parent


def host_mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def env_for(settings: Settings) -> dict[str, str]:
    return {**os.environ, "SWARMBOOT_HOME": str(settings.home),
            "SWARMBOOT_HOOKS_DIR": str(settings.hooks_dir)}


def lchroot(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "lchroot"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env_for(settings))


def test_lchroot_environment_and_exit_code_leave_no_trace(base_image: tuple[Settings, str]) -> None:
    settings, name = base_image  # read-only use: the test checks that nothing changes
    rootfs = ImageStore(settings).rootfs(name)
    before = fingerprint(rootfs, excludes=())
    script = (
        "set -e; grep -q ' /proc ' /proc/self/mountinfo; test -c /dev/null; test -d /dev/pts;"
        " test -d /sys/class; cat /etc/resolv.conf;"
        " /usr/sbin/policy-rc.d ssh start || echo policy=$?; exit 7"
    )
    result = lchroot(settings, name, "sh", "-c", script)
    assert result.returncode == 7, result.stderr
    assert "policy=101" in result.stdout
    host_resolv = Path("/etc/resolv.conf").read_text()
    assert host_resolv.strip() in result.stdout
    assert lchroot(settings, name, "no-such-command").returncode == 127
    # Nothing was written to the image and nothing stays mounted on the host.
    assert fingerprint(rootfs, excludes=()) == before
    assert host_mounts_under(rootfs) == []


def test_kill_9_leaves_no_mount_and_frees_the_lock(base_image: tuple[Settings, str]) -> None:
    settings, name = base_image  # read-only use
    store = ImageStore(settings)
    rootfs = store.rootfs(name)
    proc = subprocess.Popen([str(VENV_BIN / "lchroot"), name, "sleep", "600"], env=env_for(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Wait (bounded) until the command runs chrooted, with its mounts in its own namespace
        # (its mountinfo shows paths as seen from inside the image).
        deadline = time.monotonic() + 30
        points: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if os.readlink(f"/proc/{proc.pid}/root") == str(rootfs):
                    text = Path(f"/proc/{proc.pid}/mountinfo").read_text()
                    points = [line.split()[4] for line in text.splitlines()]
                    break
            except FileNotFoundError:
                break
            time.sleep(0.1)
        assert os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert {"/proc", "/dev/pts", "/run", "/usr/bin/uname"} <= set(points), points
        assert host_mounts_under(rootfs) == [], "the host never sees lchroot's mounts"
        busy = subprocess.run([str(VENV_BIN / "swarmboot"), "image", "pack", name], env=env_for(settings),
                              capture_output=True, text=True, timeout=60, check=False)
        assert busy.returncode != 0 and "busy" in busy.stderr
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert host_mounts_under(rootfs) == []
    with store.lock(name, "test"):
        pass  # the lock died with the process
