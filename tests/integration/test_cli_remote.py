"""The same CLI scenarios on the head node's database and through a server's API (`--server`):
the same output, the same errors and exit codes. Remotely the CLI runs with an empty home of its
own, so it can only have gone through the API."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.server import cli, running_server

Sb = Callable[..., subprocess.CompletedProcess[str]]

POST = "#!/bin/sh\necho post\n"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx8tXOyMVoBM0hyGbq4pM9JNvB3r1vgq6BrKDfvBPd8 me@host"


@pytest.fixture(params=["local", "remote"])
def sb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sb]:
    head = tmp_path / "head"
    head.mkdir()
    if request.param == "local":
        yield lambda *args: cli(head, *args, check=False)
        return
    client = tmp_path / "client"
    client.mkdir()
    with running_server(head) as server:
        token_file = tmp_path / "token"
        token_file.write_text(server.token + "\n")
        yield lambda *args: cli(client, "--server", server.url, "--token-file", str(token_file), *args,
                                check=False)
    assert not (client / "swarmboot.db").exists(), "the remote CLI opened a database of its own"


def ok(sb: Sb, *args: str) -> str:
    result = sb(*args)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def test_the_inventory_verbs_print_the_same_here_and_through_the_api(sb: Sb, tmp_path: Path) -> None:
    (tmp_path / "post.sh").write_text(POST)
    (tmp_path / "motd.j2").write_text("hello {{ node.name }}\n")
    ok(sb, "network", "add", "cluster", "--cidr", "10.0.0.0/24", "--gateway", "10.0.0.1",
       "--range", "10.0.0.10-10.0.0.200", "--dhcp-range", "10.0.0.201-10.0.0.250")
    assert ok(sb, "switch", "add", "sw1", "--address", "10.0.0.2") == (
        "name: sw1\naddress: 10.0.0.2\ndescription: -\nchassis_id: -\nsnmp: -\n")
    ok(sb, "group", "add", "compute", "--image", "compute", "--root", "tmpfs", "--tmpfs-size", "8G",
       "--post", str(tmp_path / "post.sh"), "--file", f"/etc/motd={tmp_path / 'motd.j2'}:0600",
       "--ssh-key", KEY)
    added = ok(sb, "node", "add", "node[001-004]", "--group", "compute")
    assert added == "added 4 nodes: node001 … node004\n"
    assert ok(sb, "node", "set", "node001", "--add-mac", "52:54:00:00:00:01", "--switch", "sw1",
              "--port", "7").startswith("name: node001\ngroup: compute\nmacs: 52:54:00:00:00:01\n")
    # set merges with the current group on the client side, remotely too
    ok(sb, "group", "set", "compute", "--kernel-args", "quiet", "--no-file", "/etc/motd")
    group = json.loads(ok(sb, "group", "show", "compute", "--json"))
    assert group["root"] == {"mode": "tmpfs", "tmpfs_size": "8G"} and group["files"] == []
    assert group["scripts"]["post"] == POST and group["ssh_keys"] == [KEY] and group["kernel_args"] == "quiet"
    assert ok(sb, "node", "list") == (
        "NAME     GROUP    MACS               ADDRESS    SWITCH  PORT  SERVICE\n"
        "node001  compute  52:54:00:00:00:01  10.0.0.10  sw1     7     no\n"
        "node002  compute  -                  10.0.0.11  -       -     no\n"
        "node003  compute  -                  10.0.0.12  -       -     no\n"
        "node004  compute  -                  10.0.0.13  -       -     no\n"
    )
    assert ok(sb, "group", "list") == (
        "NAME     IMAGE    VERSION  ROOT   NETWORK  KERNEL ARGS\n"
        "compute  compute  current  tmpfs  -        quiet\n"
    )
    listed = json.loads(ok(sb, "node", "list", "--json"))
    assert [n["name"] for n in listed] == [f"node00{i}" for i in range(1, 5)]
    shown = json.loads(ok(sb, "node", "show", "node002", "--json"))
    assert shown["address"] == "10.0.0.11" and shown["state"]["state"] == "new"
    assert ok(sb, "node", "status", "node00[1-2]") == (
        "NODE     STATE  STAGE  DOWNLOAD  IMAGE  ROOT   ON DISK  SEEDED  LAST SEEN  ALERTS  "
        "FAILURE / MESSAGE\n"
        "node001  new    -      -         -      tmpfs  -        -       never      -       -\n"
        "node002  new    -      -         -      tmpfs  -        -       never      -       -\n"
        "2 node(s): 2 new\n"
    )
    assert [r["state"] for r in json.loads(ok(sb, "node", "status", "--json"))] == ["new"] * 4

    # errors: the same message, hint and exit code
    dup = sb("node", "add", "node001", "--group", "compute")
    assert (dup.returncode, dup.stderr) == (
        1, "swarmboot: error: node 'node001' exists already\n  hint: change it with: swarmboot node set\n")
    bad = sb("node", "add", "Bad_Name", "--group", "compute")
    assert bad.returncode == 2 and "invalid node name 'Bad_Name'" in bad.stderr
    taken = sb("node", "set", "node002", "--mac", "52:54:00:00:00:01")
    assert taken.returncode == 1 and "belongs to node node001 already" in taken.stderr
    assert "--remove-mac 52:54:00:00:00:01" in taken.stderr
    used = sb("switch", "rm", "sw1")
    assert used.returncode == 1 and "switch sw1 is in use by 1 node(s)" in used.stderr
    missing = sb("group", "show", "nosuch")
    assert (missing.returncode, missing.stderr) == (
        1, "swarmboot: error: no group named 'nosuch'\n  hint: groups: compute\n")
    # a bulk add with one bad entry adds nothing, remotely too
    assert sb("node", "add", "node[005-006]", "--group", "compute", "--address", "10.0.0.13").returncode == 1
    assert len(json.loads(ok(sb, "node", "list", "--json"))) == 4

    # the whole inventory, round trip
    exported = ok(sb, "inventory", "export", "-")
    assert ok(sb, "node", "rm", "node00[3-4]") == "removed 2 node(s)\n"
    doc = tmp_path / "inv.yaml"
    doc.write_text(exported)
    assert ok(sb, "inventory", "import", str(doc)) == "imported 1 networks, 1 switches, 1 groups, 4 nodes\n"
    assert ok(sb, "inventory", "export", "-") == exported
    assert ok(sb, "node", "targets") == "[]\n"


def test_the_remote_cli_says_what_it_cannot_do(tmp_path: Path) -> None:
    home = tmp_path / "head"
    with running_server(home) as server:
        no_token = cli(tmp_path / "client", "--server", server.url, "node", "list", check=False,
                       SWARMBOOT_HOME=str(tmp_path / "client"))
        assert no_token.returncode == 2 and "--server needs the server's admin token" in no_token.stderr
        wrong = cli(tmp_path / "client", "--server", server.url, "node", "list", check=False,
                    SWARMBOOT_TOKEN="not-the-token")
        assert wrong.returncode == 1 and "the server refused the token" in wrong.stderr
        local_only = cli(tmp_path / "client", "--server", server.url, "image", "list", check=False,
                         SWARMBOOT_TOKEN=server.token)
        assert local_only.returncode == 2 and "runs on the head node itself" in local_only.stderr
        assert server.token not in server.log(), "the token was logged"
    gone = cli(tmp_path / "client", "--server", server.url, "node", "list", check=False, SWARMBOOT_TOKEN="x")
    assert gone.returncode == 1 and f"cannot reach the server {server.url}" in gone.stderr
