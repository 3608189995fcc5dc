"""A throw-away PostgreSQL server for tests: Debian's binaries, run as the `postgres` user, in a
temporary directory, on a free loopback port; stopped and removed afterwards.

    with postgres_server() as pg:
        url = pg.create_database("inventory")   # postgresql+psycopg://postgres@127.0.0.1:PORT/inventory
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ground import run as runmod
from ground.errors import MissingToolError


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return runmod.require_tool(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


@contextlib.contextmanager
def postgres_server(timeout: float = 120) -> Iterator[PostgresServer]:
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise MissingToolError("postgres (user)", "postgresql") from None
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="swarmboot-pg-"))
    os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "postgres.log"
    port = _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    runmod.run(
        [*as_postgres, initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
        timeout=timeout,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    runmod.run(
        [*as_postgres, pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", str(int(timeout)), "start"],
        timeout=timeout + 10,
    )
    try:
        yield PostgresServer(port=port, dir=root)
    finally:
        runmod.run([*as_postgres, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"], timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
