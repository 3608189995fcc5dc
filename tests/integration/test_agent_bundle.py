"""`swarmboot agent build`: a PyInstaller bundle that runs without the venv, rebuilt only when its
sources change, and the pack-time check of an image's glibc and libraries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from builder import elf
from builder.agent_bundle import NAME, GlibcTooOld, check_image, read_info

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("swarmboot-home")
    env = {**os.environ, "SWARMBOOT_HOME": str(home), "SWARMBOOT_CONFIG": str(home / "none.toml")}
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / ".venv/bin/swarmboot"), "agent", "build"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    print(f"\nagent build: {time.monotonic() - started:.1f} s; {result.stdout.strip()}")
    return home


def test_the_bundle_runs_without_python(home: Path, tmp_path: Path) -> None:
    exe = home / "agent/bundle" / NAME
    # A minimal environment: no venv on PATH, no PYTHONPATH, run from elsewhere.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    version = subprocess.run(
        [str(exe), "--version"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.startswith("swarmboot-agent ")
    started = time.monotonic()
    result = subprocess.run(
        [str(exe), "self-test"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    elapsed = time.monotonic() - started
    report = json.loads(result.stdout)
    assert report["versions"]["libtorrent"].startswith("2.")
    assert {"http.client", "pyudev", "ssl"} <= set(report["versions"])
    assert report["versions"]["parted"].startswith("3.")  # a GPT written and read back, frozen
    disks = subprocess.run([str(exe), "disks"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, check=True)
    assert isinstance(json.loads(disks.stdout), list)
    info = read_info(home / "agent")
    assert info is not None
    print(
        f"bundle: {info.size / 1e6:.1f} MB, {info.files} files, glibc >= {info.glibc}; "
        f"self-test {elapsed:.2f} s"
    )
    # the command line parser of the frozen agent works on a file
    (tmp_path / "cmdline").write_text("root=swarmboot swarmboot.server=http://h:8080 swarmboot.node=n1\n")
    parsed = subprocess.run(
        [str(exe), "cmdline", str(tmp_path / "cmdline")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(parsed.stdout)["servers"] == ["http://h:8080"]


def test_the_bundle_carries_only_the_agent_and_the_ground_of_ours(home: Path) -> None:
    """The freeze takes what the agent imports; the layers keep the rest of the product out."""
    info = read_info(home / "agent")
    assert info is not None and info.packages
    assert {"bootagent", "ground", "pyudev", "parted"} <= set(info.packages)
    head_node_only = {"server", "builder", "swarmboot", "lab", "tests", "sqlalchemy", "jinja2", "fastapi",
                      "starlette", "uvicorn", "alembic", "yaml", "psycopg", "PyInstaller",
                      "requests", "urllib3"}  # the agent speaks HTTP with the stdlib's http.client
    assert head_node_only & set(info.packages) == set()


def test_unchanged_sources_are_not_rebuilt(home: Path) -> None:
    before = (home / "agent/bundle.json").stat().st_mtime_ns
    env = {**os.environ, "SWARMBOOT_HOME": str(home), "SWARMBOOT_CONFIG": str(home / "none.toml")}
    subprocess.run(
        [str(ROOT / ".venv/bin/swarmboot"), "agent", "build"],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert (home / "agent/bundle.json").stat().st_mtime_ns == before


def test_the_host_can_run_it_and_an_old_libc_is_refused(home: Path, tmp_path: Path) -> None:
    bundle = home / "agent/bundle"
    assert "libraries present" in check_image(bundle, Path("/"))
    with pytest.raises(GlibcTooOld, match=r"no libc\.so\.6 found"):
        check_image(bundle, tmp_path / "empty")
    # An "image" whose libc.so.6 defines versions only up to GLIBC_2.31 (as bullseye's does): the
    # host's libpthread.so.0 (a real glibc ELF with such a version table) plays that libc.
    lib = tmp_path / "old/usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    shutil.copy(Path("/usr/lib/x86_64-linux-gnu/libpthread.so.0").resolve(), lib / "libc.so.6")
    old = max(elf.defined_versions(lib / "libc.so.6"))
    info = read_info(home / "agent")
    assert info is not None and old < tuple(int(x) for x in info.glibc.split("."))
    with pytest.raises(
        GlibcTooOld, match=rf"glibc {old[0]}\.{old[1]}, but the frozen agent needs glibc {info.glibc}"
    ):
        check_image(bundle, tmp_path / "old")
    # an image with a new enough libc but without libssl & co: the missing libraries are named
    shutil.copy(Path("/usr/lib/x86_64-linux-gnu/libc.so.6").resolve(), lib / "libc.so.6")
    with pytest.raises(GlibcTooOld, match=r"lacks libraries .*libssl\.so\.3"):
        check_image(bundle, tmp_path / "old")
