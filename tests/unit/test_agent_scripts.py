"""pre/post scripts: the environment they get, output shown, failures and timeouts stop the boot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bootagent.context import BootContext, Console, Paths
from bootagent.errors import ScriptError
from bootagent.network import BootInterface
from bootagent.rescue import Rescue
from bootagent.scripts import run_script
from ground.contract.plan import BootPlan


def context(tmp_path: Path, scripts: dict[str, Any]) -> tuple[BootContext, io.StringIO]:
    echo = io.StringIO()
    paths = Paths(
        cmdline=tmp_path / "cmdline",
        sysroot=tmp_path / "sysroot",
        console=tmp_path / "console",
        run_dir=tmp_path / "run",
        hostname=tmp_path / "hostname",
        nfs_client_identifier=tmp_path / "nfs-client-identifier",
    )
    ctx = BootContext(paths=paths, console=Console(paths, echo=echo), rescue=Rescue())
    ctx.plan = BootPlan.from_dict(
        {
            "version": 1,
            "node": {"name": "n7", "hostname": "node7", "group": "gpu", "domain": "lab"},
            "image": {
                "name": "compute",
                "version": 4,
                "format": "squashfs",
                "size": 1,
                "sha256": "0" * 64,
                "torrent_url": "/t",
                "http_url": "/i",
            },
            "reporting": {"events_url": "/e"},
            "scripts": scripts,
        }
    )
    ctx.interface = BootInterface("ens3", "52:54:00:00:00:07", ("10.0.0.7/24", "fd00::7/64"), "10.0.0.1")
    ctx.server = "http://10.0.0.1:8080"
    return ctx, echo


def test_the_script_environment(tmp_path: Path) -> None:
    ctx, echo = context(tmp_path, {"pre": 'env | grep -E "^(SWARMBOOT_|SYSROOT=)" | sort\n'})
    out = run_script(ctx, "pre")
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["SWARMBOOT_NODE"] == "n7" and env["SWARMBOOT_HOSTNAME"] == "node7"
    assert env["SWARMBOOT_ADDRESSES"] == "10.0.0.7/24 fd00::7/64" and env["SWARMBOOT_ADDRESS"] == "10.0.0.7"
    assert env["SWARMBOOT_IMAGE"] == "compute" and env["SWARMBOOT_IMAGE_VERSION"] == "4"
    assert env["SYSROOT"] == str(tmp_path / "sysroot") and env["SWARMBOOT_SCRIPT"] == "pre"
    assert env["SWARMBOOT_SERVER"] == "http://10.0.0.1:8080" and env["SWARMBOOT_BOOT_IFACE"] == "ens3"
    assert "SWARMBOOT_NODE=n7" in echo.getvalue()  # the output is shown on the console


def test_a_failing_script_stops_with_its_output(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, {"post": "echo preparing\necho 'disk sdz missing' >&2\nexit 3\necho never\n"})
    with pytest.raises(ScriptError, match="the post script exited with code 3") as info:
        run_script(ctx, "post")
    assert "preparing" in info.value.output and "disk sdz missing" in info.value.output
    assert "never" not in info.value.output
    assert str(tmp_path / "run/scripts/post.sh") in info.value.hint


def test_a_failing_command_inside_stops_the_script(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, {"pre": "false\necho should not run\n"})
    with pytest.raises(ScriptError, match="exited with code 1"):
        run_script(ctx, "pre")


def test_a_shebang_picks_the_interpreter_and_a_timeout_is_bounded(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, {"pre": "#!/bin/sh\necho $0\n", "post": "sleep 30\n", "timeout": 1})
    assert run_script(ctx, "pre").strip().endswith("pre.sh")
    with pytest.raises(ScriptError, match="ran longer than 1 s and was stopped"):
        run_script(ctx, "post")


def test_a_script_runs_through_its_interpreter_so_a_noexec_run_dir_is_no_obstacle(tmp_path: Path) -> None:
    """dracut mounts /run noexec: the agent hands the script to its #! interpreter, as the kernel
    would (the e2e's post script failed with 'Permission denied' when it was executed itself)."""
    from bootagent.scripts import script_argv

    assert script_argv(Path("/run/x.sh"), "#!/bin/sh\n") == ["/bin/sh", "/run/x.sh"]
    assert script_argv(Path("/run/x.sh"), "#! /bin/bash -eu \nls\n") == ["/bin/bash", "-eu", "/run/x.sh"]
    env = ["/usr/bin/env", "python3", "/run/x.py"]
    assert script_argv(Path("/run/x.py"), "#!/usr/bin/env python3\n") == env
    assert script_argv(Path("/run/x.sh"), "echo hi\n") == ["/bin/sh", "-e", "/run/x.sh"]
    ctx, _ = context(tmp_path, {"post": "#!/bin/sh\necho ran\n"})
    assert run_script(ctx, "post").strip() == "ran"


def test_a_script_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, {"post": "echo before\nkill -KILL $$\n"})
    with pytest.raises(ScriptError, match="post script was killed by SIGKILL") as caught:
        run_script(ctx, "post")
    assert "before" in str(caught.value)


def test_no_script_runs_nothing(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path, {})
    assert run_script(ctx, "pre") == ""
    assert not (tmp_path / "run/scripts").exists()
