"""`swarmboot serve`: HTTP API, tracker, seeder and (optionally) dnsmasq, in one process.

The listening socket is bound before anything else starts, so `--listen 127.0.0.1:0` works (the
chosen port is printed and used for server_url) and the seeder's first announce to our own
tracker waits in the socket's backlog instead of failing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import signal
import socket
import sys
import threading
from types import FrameType

from ground.config import Settings
from ground.errors import UsageError

log = logging.getLogger(__name__)


def bind(listen: str) -> socket.socket:
    host, sep, port = listen.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise UsageError(f"--listen takes HOST:PORT, not {listen!r}", hint="e.g. --listen 0.0.0.0:8080")
    host = host.strip("[]") or "0.0.0.0"
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise UsageError(f"--listen needs an IP address, not {host!r}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {listen}: {exc.strerror}",
            hint="is another server running there? pick another port with --listen",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_url_for(settings: Settings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    bound = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return dataclasses.replace(settings, listen=bound).effective_server_url


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _start_port_poller(state: object, every: int) -> threading.Event | None:
    """Read every SNMP switch's forwarding table every `every` seconds (sightings for
    `swarmboot switch ports` and the boot menu's lookups); the Event stops it."""
    if every <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        import logging

        while not stop.wait(every):
            try:
                state.ports.read(max_age=every / 2)  # type: ignore[attr-defined]
            except Exception:  # keep polling whatever happens; the error is logged
                logging.getLogger(__name__).exception("reading the switches failed")

    threading.Thread(target=loop, name="switch-poller", daemon=True).start()
    return stop


def _nfs_server(settings: Settings, sock: socket.socket, state: object, db: object) -> object:
    """nfs-ganesha for the groups in nfs mode, on the address serve listens on (server/nfs.py)."""
    from server import nfs
    from server.events import running_versions

    catalog = state.catalog  # type: ignore[attr-defined]
    server = nfs.NfsServer(settings.home, sock.getsockname()[0], settings.nfs_port,
                           lambda: nfs.wanted_exports(db, catalog), lambda: running_versions(db))  # type: ignore[arg-type]
    server.start()
    state.listeners.append(server.request_sync)  # type: ignore[attr-defined]
    return server


def serve(
    settings: Settings, listen: str, dhcp_interface: str = "", seeder: bool = True, nfs: bool = True
) -> None:
    import uvicorn

    from server import auth, journal
    from server.api.app import create_app
    from server.dnsmasq import Dnsmasq
    from server.events import running_versions
    from server.inventory.db import Database
    from server.seeder import Seeder
    from server.state import ServerState

    journal.setup(settings.log_level)
    sock = bind(listen)
    # uvicorn handles SIGTERM, shuts down, then raises the signal again for the handler that was
    # there before it: the default one would end the process before the `finally` below stops
    # dnsmasq (left running, holding the DHCP port) and the seeder. Ours exits through it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    server_url = server_url_for(settings, sock)
    token = auth.ensure_token(settings.home)
    auth.ensure_token(settings.home, auth.VIEWER_TOKEN_FILE)
    db = Database.from_settings(settings, pool_size=20)
    state = ServerState(settings, server_url, token, db)
    state.refresh(force=True)
    dns = None
    if seeder:
        state.seeder = Seeder(
            state.catalog, settings.seeder_listen, lambda: running_versions(db), settings.seeder_upload_rate
        )
        state.seeder.start()
        state.listeners.append(state.seeder.request_sync)
    if nfs:
        state.nfs = _nfs_server(settings, sock, state, db)
    poller = _start_port_poller(state, settings.snmp_poll_seconds)
    try:
        if dhcp_interface:
            dns = Dnsmasq(settings, db, server_url, dhcp_interface)
            dns.start()
            state.listeners.append(dns.reload)
        print(
            f"swarmboot: serving on {server_url} (listening on {sock.getsockname()[0]}:"
            f"{sock.getsockname()[1]}; admin token in {auth.token_path(settings.home)}"
            + (f"; seeder port {state.seeder.port}" if state.seeder else "")
            + ")",
            flush=True,
        )
        print(
            f"swarmboot: status page {server_url}/status (viewer token in "
            f"{auth.token_path(settings.home, auth.VIEWER_TOKEN_FILE)}); API docs {server_url}/docs",
            flush=True,
        )
        app = create_app(state)
        state.reloader.install_handler()  # SIGHUP: read the settings and tokens again
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="uvloop",
            http="httptools",
            timeout_keep_alive=30,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: then anyone on the host,
            # or a proxy nobody configured, could pose as any node address (the tracker's peers).
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            backlog=2048,
            log_level=settings.log_level,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if poller is not None:
            poller.set()
        if dns is not None:
            dns.stop()
        if state.seeder is not None:
            state.seeder.stop()
        if state.nfs is not None:
            state.nfs.stop()
        db.close()
        sock.close()
        sys.stdout.flush()
