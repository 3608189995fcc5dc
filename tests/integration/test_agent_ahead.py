"""What the agent does ahead, while the image downloads (issue 12, part 6): the root mode's kernel
modules loaded by modprobe (in the e2e's guests: the kernel's log shows them loaded during the
download; this host's kernel has them built in and no modprobe), and the frozen bundle carried
onto its real tmpfs for the seeding after boot, which the handover then only waits for."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bootagent import roots
from bootagent.seed_handover import CarryAhead, carry_bundle
from ground.run import run

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (modprobe, a tmpfs mount)")


def test_the_root_modes_modules_are_loaded_ahead_and_a_mode_without_any_starts_nothing() -> None:
    assert roots.preload_modules("tmpfs") is None and roots.preload_modules("disk") is None
    child = roots.preload_modules("overlay")
    if shutil.which("modprobe") is None:  # a kernel with everything built in (this CI's): nothing to do
        assert child is None
    else:
        assert child is not None and child.args[:3] == ["modprobe", "-a", "-q"], child.args
        roots.finish_preload(child)
        assert child.returncode is not None
    filesystems = Path("/proc/filesystems").read_text()
    assert "squashfs" in filesystems and "overlay" in filesystems  # loaded (or built in) either way
    roots.finish_preload(None)  # nothing started: nothing to wait for


def test_the_bundle_carried_ahead_is_on_its_tmpfs_and_the_handover_need_not_copy_it(tmp_path: Path) -> None:
    bundle, target = tmp_path / "bundle", tmp_path / "run/agent"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "swarmboot-agent").write_bytes(b"#!frozen")
    (bundle / "_internal/libpython.so").write_bytes(os.urandom(1 << 20))
    ahead = CarryAhead(bundle, target)
    try:
        assert ahead.done(60), ahead.error
        assert target.is_mount()
        assert (target / "swarmboot-agent").read_bytes() == b"#!frozen"
        assert (target / "_internal/libpython.so").stat().st_size == 1 << 20
        # carrying it again (the handover when the thread failed) replaces the mount, no error
        carry_bundle(bundle, target)
        assert target.is_mount() and (target / "swarmboot-agent").read_bytes() == b"#!frozen"
    finally:
        while target.is_mount():
            run(["umount", "-l", str(target)], timeout=30)
    failing = CarryAhead(tmp_path / "no-such-bundle", tmp_path / "run/agent2")
    assert not failing.done(60) and failing.error is not None  # the handover then carries it itself
    while (tmp_path / "run/agent2").is_mount():
        run(["umount", "-l", str(tmp_path / "run/agent2")], timeout=30)
