"""Pieces of the namespace side of lchroot that need no root: paths and the uname wrapper."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.chroot import ChrootSpec, chroot_env, namespace_argv
from builder.nsroot import UNAME_WRAPPER, parse_args, resolve_in_root
from ground.errors import SwarmbootError


def test_resolve_in_root_follows_links_inside_the_image(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, relative
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")  # absolute
    (root / "etc/loop").symlink_to("loop")
    assert resolve_in_root(root, "/bin/uname") == root / "usr/bin/uname"
    assert resolve_in_root(root, "/etc/resolv.conf") == root / "run/systemd/resolve/stub-resolv.conf"
    assert resolve_in_root(root, "/../../etc/../bin") == root / "usr/bin"  # never above the root
    with pytest.raises(SwarmbootError, match="too many symlinks"):
        resolve_in_root(root, "/etc/loop")


def test_uname_wrapper_replaces_only_the_release(tmp_path: Path) -> None:
    real = tmp_path / "uname.real"
    real.write_text('#!/bin/sh\ncase "$1" in\n  -r) echo 6.18.0-host;;\n'
                    '  *) echo "Linux node 6.18.0-host #1 SMP x86_64";;\nesac\n')
    real.chmod(0o755)
    wrapper = tmp_path / "uname"
    wrapper.write_text(UNAME_WRAPPER.format(kver="6.1.0-56-amd64", real=real))
    wrapper.chmod(0o755)

    def call(*args: str) -> str:
        return subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    assert call("-r") == "6.1.0-56-amd64\n"
    assert call("-a") == "Linux node 6.1.0-56-amd64 #1 SMP x86_64\n"


def test_namespace_command_line_and_environment() -> None:
    spec = ChrootSpec(root=Path("/img/rootfs"), kernel_version="6.1.0-1-amd64", label="img",
                      binds=((Path("/out"), "/run/lchroot/out"),), env={"X": "1"})
    argv = namespace_argv(spec, ["dracut", "--force"])
    assert argv[1:5] == ["--mount", "--propagation", "private", "--"]
    assert argv[-3:] == ["--", "dracut", "--force"]
    args = parse_args(argv[argv.index("builder.nsroot") + 1:])
    assert (args.root, args.kernel, args.bind, args.command) == (
        Path("/img/rootfs"), "6.1.0-1-amd64", ["/out:/run/lchroot/out"], ["dracut", "--force"])
    env = chroot_env(spec)
    assert env["debian_chroot"] == "img" and env["X"] == "1" and env["DEBIAN_FRONTEND"] == "noninteractive"
    assert "DEBIAN_FRONTEND" not in chroot_env(spec, interactive=True)
