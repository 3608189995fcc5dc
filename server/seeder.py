"""The server's BitTorrent seeder: one libtorrent session in a thread of the server process.

It seeds every image's current version, and older versions while a node still runs them (node
state says which version a node runs). Settings: bootagent.lan_tuning.session_settings("seed",
…) — uTP off, encryption off, the high-performance seed preset, large buffers, no rate limits.
Torrents are added in seed mode from the version directory (the info name is the image file's
name), carrying our tracker, so the seeder announces itself like any peer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from server.catalog import Catalog, Version

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


class Seeder:
    def __init__(
        self, catalog: Catalog, listen: str, wanted: Callable[[], set[tuple[str, int]]], upload_rate: int = 0
    ) -> None:
        self.catalog = catalog
        self.listen = listen
        self.upload_rate = upload_rate
        self.wanted_extra = wanted
        self.handles: dict[tuple[str, int], Any] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._sync = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.session: Any = None

    def start(self) -> None:
        import libtorrent as lt

        from bootagent.lan_tuning import session_settings

        self.session = lt.session(session_settings("seed", self.listen, upload_rate_limit=self.upload_rate))
        if self.upload_rate:
            # libtorrent exempts peers on the local network (a cluster LAN, loopback) from rate
            # limits: they are in the "local" peer class. Apply the limit there too.
            local = self.session.get_peer_class(lt.session.local_peer_class_id)
            local["upload_limit"] = self.upload_rate
            self.session.set_peer_class(lt.session.local_peer_class_id, local)
        self._thread = threading.Thread(target=self._run, name="seeder", daemon=True)
        self._thread.start()

    def set_upload_rate(self, rate: int) -> None:
        """A new upload cap (bytes/s, 0: none), for every peer, local ones included (SIGHUP)."""
        import libtorrent as lt

        self.upload_rate = rate
        if self.session is None:
            return
        self.session.apply_settings({"upload_rate_limit": rate})
        local = self.session.get_peer_class(lt.session.local_peer_class_id)
        local["upload_limit"] = rate
        self.session.set_peer_class(lt.session.local_peer_class_id, local)

    @property
    def port(self) -> int:
        return int(self.session.listen_port()) if self.session is not None else 0

    def request_sync(self) -> None:
        self._sync.set()

    def _wanted(self) -> dict[tuple[str, int], Version]:
        wanted = {}
        for image, number in self.catalog.current.items():
            version = self.catalog.get(image, number)
            if version is not None:
                wanted[version.key] = version
        for key in self.wanted_extra():
            version = self.catalog.versions.get(key)
            if version is not None:
                wanted[key] = version
        return wanted

    def sync(self) -> None:
        import libtorrent as lt

        wanted = self._wanted()
        with self._lock:
            for key in [k for k in self.handles if k not in wanted]:
                log.info("seeder: stops seeding %s/%s", *key)
                self.session.remove_torrent(self.handles.pop(key))
            for key, version in wanted.items():
                if key in self.handles:
                    continue
                params = lt.add_torrent_params()
                params.ti = lt.torrent_info(lt.bdecode(self.catalog.torrent(version)))
                params.save_path = str(version.dir)
                params.flags |= lt.torrent_flags.seed_mode
                params.flags &= ~lt.torrent_flags.auto_managed
                params.flags &= ~lt.torrent_flags.paused
                self.handles[key] = self.session.add_torrent(params)
                log.info("seeder: seeding %s/%s (%s)", *key, version.manifest.info_hash)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except (RuntimeError, OSError, ValueError) as exc:
                log.error("seeder: %s", exc)
                self.errors.append(str(exc))
            self._drain_alerts()
            self._sync.wait(POLL_SECONDS * 5)
            self._sync.clear()

    def _drain_alerts(self) -> None:
        import libtorrent as lt

        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.torrent_error_alert | lt.file_error_alert | lt.listen_failed_alert):
                log.error("seeder: %s", alert.message())
                self.errors.append(alert.message())
                del self.errors[:-20]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            items = list(self.handles.items())
        torrents = []
        for (image, number), handle in items:
            st = handle.status()
            torrents.append(
                {
                    "image": image,
                    "version": number,
                    "info_hash": str(st.info_hashes.v1),
                    "uploaded": int(st.total_payload_upload),
                    "all_time_upload": int(st.all_time_upload),
                    "peers": int(st.num_peers),
                    "state": str(st.state),
                    "seeding": bool(st.is_seeding),
                    "tracker": st.current_tracker,
                }
            )
        return {"listen_port": self.port, "torrents": torrents, "errors": list(self.errors)}

    def stop(self) -> None:
        self._stop.set()
        self._sync.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.session is not None:
            with self._lock:
                for handle in self.handles.values():
                    self.session.remove_torrent(handle)
                self.handles.clear()
            self.session = None
