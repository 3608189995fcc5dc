"""pack puts the boot agent in by default: it builds the bundle and checks the image can run it
before anything is written, and says clearly when it cannot; --no-agent leaves it out.

(A real image packed with the agent, its initramfs listing and size, and the boots from it are in
tests/e2e/test_boot.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.agent_bundle import GlibcTooOld
from builder.pack import pack
from ground.config import Settings
from ground.store import ImageStore

pytestmark = [pytest.mark.root, pytest.mark.slow]


def fake_image(settings: Settings, name: str) -> Path:
    """A tree with a kernel and nothing else: no C library, no dracut."""
    rootfs = ImageStore(settings).rootfs(name)
    for directory in ("boot", "usr/lib/modules/6.1.0-test", "etc", "usr/lib/dracut/modules.d"):
        (rootfs / directory).mkdir(parents=True)
    (rootfs / "boot/vmlinuz-6.1.0-test").write_bytes(b"kernel")
    return rootfs


def test_an_image_that_cannot_run_the_agent_is_refused_before_anything_is_written(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_image(settings, "nolibc")
    with pytest.raises(GlibcTooOld, match=r"no libc\.so\.6 found in the image") as raised:
        pack(settings, "nolibc")
    assert "glibc-based" in raised.value.hint
    assert (settings.agent_dir / "bundle" / "swarmboot-agent").is_file()  # pack built the agent
    output = capsys.readouterr()
    assert "pack nolibc: agent" in output.err + output.out
    store = ImageStore(settings)
    assert store.versions("nolibc") == []
    assert not store.staging_dir.exists() or list(store.staging_dir.iterdir()) == []


def test_no_agent_leaves_the_agent_out(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    fake_image(settings, "plain")
    with pytest.raises(Exception, match=r"dracut|chroot") as raised:  # no dracut in this tree
        pack(settings, "plain", agent=False)
    assert not isinstance(raised.value, GlibcTooOld)
    assert not (settings.agent_dir / "bundle").exists()  # nothing was built
    output = capsys.readouterr()
    assert "--no-agent: the initramfs leaves out swarmboot" in output.err + output.out
