"""The nfs root mode's logic: the agent's mount (options, bounded jittered retries, the message
after the last one) and the server's ganesha configuration. The real export and the real mounts:
tests/integration/test_nfs_export.py and tests/e2e/test_nfs.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bootagent import nfs as agent_nfs
from bootagent.errors import RootError
from ground.contract.plan import NfsExport
from ground.errors import CommandError
from server import nfs as server_nfs

EXPORT = NfsExport(server="10.77.0.1", path="/swarmboot/e2e/1", port=2049, options=server_nfs.MOUNT_OPTIONS)


def test_the_mount_is_read_only_nfs4_to_the_servers_address_with_the_plans_options() -> None:
    argv = agent_nfs.mount_argv(EXPORT, Path("/run/swarmboot/mnt/lower"))
    assert argv[:4] == ["mount", "-t", "nfs4", "-o"]
    options = argv[4].split(",")
    assert options[:3] == ["ro", "addr=10.77.0.1", "port=2049"]
    assert "hard" in options and "vers=4.2" in options and "rw" not in options
    assert argv[5:] == ["10.77.0.1:/swarmboot/e2e/1", "/run/swarmboot/mnt/lower"]
    # the plan cannot turn the mount writable nor point it elsewhere
    sneaky = NfsExport(server="10.77.0.1", path="/x", port=2049, options="rw,addr=1.2.3.4,port=1,vers=4.1")
    assert agent_nfs.mount_options(sneaky) == "ro,addr=10.77.0.1,port=2049,vers=4.1"


def test_the_waits_between_attempts_double_up_to_a_cap_with_jitter() -> None:
    low = agent_nfs.waits(8, rng=lambda: 0.0)
    high = agent_nfs.waits(8, rng=lambda: 1.0)
    assert len(low) == 7
    assert low == [0.75, 1.5, 3.0, 6.0, 11.25, 11.25, 11.25]
    assert high == [1.25, 2.5, 5.0, 10.0, 18.75, 18.75, 18.75]
    assert sum(high) < 90  # the whole retry is bounded: about a minute


def refusing(stderr: str, succeed_at: int = 0) -> tuple[Callable[..., None], list[list[str]]]:
    calls: list[list[str]] = []

    def runner(argv: list[str], timeout: float) -> None:
        calls.append(argv)
        if len(calls) != succeed_at:
            raise CommandError(argv, 32, stderr)

    return runner, calls


def test_a_mount_that_works_on_the_third_attempt_returns_after_two_waits(tmp_path: Path) -> None:
    runner, calls = refusing("mount.nfs4: Connection refused", succeed_at=3)
    slept: list[float] = []
    said: list[str] = []
    attempts = agent_nfs.mount_export(EXPORT, tmp_path / "lower", sleep=slept.append, say=said.append,
                                      runner=runner)
    assert attempts == 3 and len(calls) == 3 and len(slept) == 2
    assert "10.77.0.1:/swarmboot/e2e/1" in said[0] and "attempt 1 of 8" in said[0]


@pytest.mark.parametrize(("stderr", "hint"), [
    ("mount(2): Permission denied", "network"),
    ("mount(2): No such file or directory", "does not export this version"),
    ("mount(2): Connection refused", "--no-nfs"),
    ("mount: unknown filesystem type 'nfs4'", "kernel modules"),
])
def test_after_the_last_attempt_the_error_names_server_path_port_and_what_to_check(
    tmp_path: Path, stderr: str, hint: str
) -> None:
    runner, calls = refusing(stderr)
    with pytest.raises(RootError) as failed:
        agent_nfs.mount_export(EXPORT, tmp_path / "lower", attempts=4, sleep=lambda s: None,
                               say=lambda s: None, runner=runner)
    assert len(calls) == 4
    message = str(failed.value)
    assert "10.77.0.1:/swarmboot/e2e/1" in message and "TCP port 2049" in message and "4 attempts" in message
    assert hint in failed.value.hint


def test_ganesha_exports_each_mounted_version_read_only_to_its_networks_only(tmp_path: Path) -> None:
    exports = [
        server_nfs.Export("e2e", 1, tmp_path / "image.squashfs", ("10.77.0.0/24",)),
        server_nfs.Export("e2e", 3, tmp_path / "v3.squashfs", ("10.77.0.0/24", "10.78.0.0/24")),
        server_nfs.Export("other", 2, tmp_path / "o.squashfs", ()),  # not mounted (yet): not exported
    ]
    mounts = {("e2e", 1): tmp_path / "mnt/e2e/1", ("e2e", 3): tmp_path / "mnt/e2e/3"}
    text = server_nfs.render_config(exports, mounts, bind="10.77.0.1", port=2049, recovery=tmp_path / "rec")
    assert "Protocols = 4;" in text and "NFS_Port = 2049;" in text and "Bind_addr = 10.77.0.1;" in text
    assert "Access_Type = None;" in text  # by default nobody
    blocks = text.split("EXPORT {")[1:]
    assert len(blocks) == 2
    assert f"Path = {tmp_path / 'mnt/e2e/1'};" in blocks[0] and "Pseudo = /swarmboot/e2e/1;" in blocks[0]
    assert "CLIENT { Clients = 10.77.0.0/24; Access_Type = RO; }" in blocks[0]
    assert "Clients = 10.77.0.0/24, 10.78.0.0/24; Access_Type = RO;" in blocks[1]
    assert "RW" not in text
    ids = [b.split("Export_Id = ")[1].split(";")[0] for b in blocks]
    assert len(set(ids)) == 2 and "0" not in ids  # 0 is the pseudo root
    # the ids are stable: the same export keeps its id whatever else is exported
    alone = server_nfs.render_config(exports[1:2], mounts, bind="0.0.0.0", port=2049, recovery=tmp_path)
    assert f"Export_Id = {ids[1]};" in alone


def test_the_plan_names_this_servers_address_and_the_versions_path() -> None:
    export = server_nfs.plan_export("e2e", 4, "http://10.77.0.1:8080", 2050)
    assert (export.server, export.path, export.port) == ("10.77.0.1", "/swarmboot/e2e/4", 2050)
    assert export.options == server_nfs.MOUNT_OPTIONS
    assert server_nfs.plan_export("e2e", 4, "http://localhost:8080", 2049).server == "127.0.0.1"
