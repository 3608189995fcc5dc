"""image grab's logic: what stays on the node (every file the agent writes into a booted system is
excluded; mounts; kept partitions), the SSH key block, rsync's itemized output, the errors a user
meets, and the one-step exchange of two trees."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from bootagent.nodefiles import write_node_files
from builder.grab import (
    GrabFrom,
    check_exclude_file,
    exclusions,
    explain,
    filter_text,
    parse_itemized,
    parse_mounts,
    restore_filter,
)
from builder.treeops import exchange_trees
from ground.contract.booted import KEYS_BEGIN, with_keys, without_keys
from ground.errors import SwarmbootError
from tests.unit.test_agent_nodefiles import plan, sysroot_with

NODE = GrabFrom("n7", "10.0.0.7", identity=Path("/k/id"), known_hosts=Path("/kh"))
MOUNTS = [("/", "overlay"), ("/proc", "proc"), ("/run", "tmpfs"), ("/boot", "ext4"), ("/boot/efi", "vfat"),
          ("/data", "ext4"), ("/home", "nfs4"), ("/srv/my disk", "xfs"), ("/mnt/a b", "nfs4")]


def excluded(path: str, rules: list[str]) -> bool:
    """rsync's meaning of the rules, for these shapes: anchored; '*' stays within a component; a
    rule ending in '/' is a directory and all below it; a match excludes everything below."""
    parts = path.strip("/").split("/")
    for rule in rules:
        body = rule.lstrip("/")
        if body.endswith("/"):
            if path.strip("/") == body.rstrip("/") or path.strip("/").startswith(body):
                return True
            continue
        pattern = body.split("/")
        pairs = zip(parts, pattern, strict=False)
        if len(parts) >= len(pattern) and all(fnmatch.fnmatchcase(p, q) for p, q in pairs):
            return True
    return False


def test_everything_the_agent_writes_into_the_booted_system_stays_on_the_node(tmp_path: Path) -> None:
    root = sysroot_with(tmp_path, "usr/lib/systemd/systemd-networkd")
    secret = {"path": "/etc/munge/munge.key", "content": "eA==", "encoding": "base64", "mode": 0o400}
    host_key = {"path": "/etc/ssh/ssh_host_ed25519_key", "content": "eA==", "encoding": "base64"}
    p = plan(files=[{"path": "/etc/motd", "content": "hi n1"}], secret_files=[secret, host_key],
             ssh_authorized_keys=["ssh-ed25519 AAAA admin"])
    write_node_files(p, root, "52:54:00:00:00:01", {"52:54:00:00:00:01": "ens3"}, ["http://s/e"], token="T")
    node = GrabFrom("n1", "10.0.0.1", own_files=("/etc/motd", "/etc/munge/munge.key"))
    rules = exclusions(node, [("/", "overlay")])
    written = sorted("/" + str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    left = [w for w in written if not excluded(w, rules)]
    # what remains is the image's (passwd, group: the fixture's) and the key block, dropped after
    assert left == ["/etc/group", "/etc/passwd", "/root/.ssh/authorized_keys",
                    "/usr/lib/systemd/systemd-networkd"]
    assert KEYS_BEGIN in (root / "root/.ssh/authorized_keys").read_text()


def test_mounts_other_than_local_disks_and_kept_partitions_stay_on_the_node() -> None:
    node = GrabFrom("d1", "10.0.0.11", kept=("/data", "/scratch"))
    rules = exclusions(node, MOUNTS)
    for path in ("/proc/1/status", "/run/swarmboot/upper/x", "/boot/efi/EFI/debian/grubx64.efi",
                 "/data/precious", "/home/alice/.bashrc", "/scratch/x", "/tmp/junk", "/dev/null",
                 "/etc/machine-id"):
        assert excluded(path, rules), path
    for path in ("/boot/vmlinuz", "/etc/golden", "/srv/my disk/tool", "/usr/bin/bash", "/data", "/proc"):
        assert not excluded(path, rules), path
    assert "/mnt/a b/*" in rules and excluded("/mnt/a b/x", rules)


def test_findmnt_raw_output_unescapes_spaces() -> None:
    assert parse_mounts("/ overlay\n/srv/my\\x20disk xfs\n\n") == [("/", "overlay"), ("/srv/my disk", "xfs")]


def test_the_administrators_rules_come_first(tmp_path: Path) -> None:
    own = tmp_path / "rules"
    own.write_text("# mine\n/home/*\n+ /etc/hosts\n")
    check_exclude_file(own)
    text = filter_text(GrabFrom("n1", "a", exclude_file=own), [])
    assert text.index("/home/*") < text.index("+ /etc/hosts") < text.index("/etc/hosts\n")


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"), ("- \n", "without a pattern"), ("  /home/*\n", "starts or ends with blanks"),
])
def test_a_bad_exclude_file_is_refused(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "rules"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SwarmbootError, match=message):
        check_exclude_file(path)


def test_the_key_block_is_replaced_and_dropped_and_the_images_keys_stay() -> None:
    image = "ssh-ed25519 AAAA image-key\n"
    booted = with_keys(image, ["ssh-ed25519 BBBB admin"])
    assert booted.startswith(image) and "BBBB admin" in booted
    assert with_keys(booted, ["ssh-ed25519 CCCC other"]).count(KEYS_BEGIN) == 1
    assert "BBBB" not in with_keys(booted, ["ssh-ed25519 CCCC other"])
    assert without_keys(booted) == image
    assert with_keys("", []) == "" and with_keys(booted, []) == image


ITEMIZED = """\
*deleting   etc/old.conf
.d..t...... etc/
>f+++++++++ etc/golden
>f.st...... etc/motd.d/tuned
.f...p..... usr/bin/tool
cL+++++++++ usr/bin/vi -> /etc/alternatives/vi
cd+++++++++ srv/new/
hf+++++++++ usr/bin/x => usr/bin/y
.d..t...... ./

Number of files: 1,234 (reg: 1,000, dir: 234)
Total file size: 734,003,200 bytes
Total transferred file size: 1,048,576 bytes
"""


def test_rsyncs_itemized_list_sorts_into_added_changed_attributes_deleted() -> None:
    changes = parse_itemized(ITEMIZED)
    assert changes.added == ["/etc/golden", "/usr/bin/vi", "/srv/new", "/usr/bin/x"]
    assert changes.changed == ["/etc/motd.d/tuned"]
    assert changes.attributes == ["/usr/bin/tool"]
    assert changes.deleted == ["/etc/old.conf"]
    assert (changes.total_bytes, changes.transfer_bytes) == (734_003_200, 1_048_576)


@pytest.mark.parametrize(
    ("code", "stderr", "message", "hint"),
    [
        (255, "root@10.0.0.7: Permission denied (publickey).", "refused the key /k/id", "--ssh-key-file"),
        (255, "ssh: connect to host 10.0.0.7 port 22: No route to host", "cannot reach node n7",
         "openssh-server"),
        (255, "ssh: connect to host 10.0.0.7 port 22: Connection refused", "cannot reach node n7",
         "node status"),
        (12, "sh: 1: rsync: not found\nrsync: connection unexpectedly closed", "has no rsync",
         "apt-get install"),
        (255, "Host key verification failed.", "another SSH host key", "ssh-keygen -R 10.0.0.7 -f /kh"),
        (23, 'rsync: read errors mapping "/x": Input/output error', "exit status 23", "nothing was written"),
        (23, 'rsync: opendir "/x" failed: Permission denied (13)', "Permission denied (13)", "grab again"),
    ],
)
def test_each_failure_says_what_went_wrong_and_what_to_do(
    code: int, stderr: str, message: str, hint: str
) -> None:
    error = explain(NODE, code, stderr)
    assert message in error.message and hint in error.hint, (error.message, error.hint)


def test_two_trees_are_exchanged_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/old").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b/new").write_text("b")
    exchange_trees(tmp_path / "a", tmp_path / "b")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["new"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["old"]
    with pytest.raises(SwarmbootError, match="cannot exchange"):
        exchange_trees(tmp_path / "a", tmp_path / "missing")


def test_what_the_transfer_left_on_the_node_is_what_the_image_keeps() -> None:
    text = restore_filter("# mine\n+ /etc/hosts\n/srv/scratch/*\n/etc/hosts\n/usr/local/lib/swarmboot/\n")
    assert text.splitlines() == [
        "+ /srv/scratch/*", "+ /srv/scratch/*/**", "+ /etc/hosts", "+ /etc/hosts/**",
        "+ /usr/local/lib/swarmboot/", "+ /usr/local/lib/swarmboot/**", "+ */", "- *",
    ]
