"""SIGHUP: read the settings (swarmboot.toml, the environment) and the tokens again, without a restart.

`systemctl reload swarmboot` sends SIGHUP. The signal handler only sets a flag; the server's
loop applies the new settings off the event loop within half a second:
- at once: log_level, boot_menu_timeout, rescue_group, seeder_upload_rate (the seeder's session),
  and the admin and viewer tokens (a new token file takes effect, old sessions stop working);
- the rest (listen, server_url, database_url, home, dhcp_interface, seeder_listen, tftp_root, …)
  needs a restart: the server keeps the old value and says which setting changed.
A settings file with an error is refused as a whole (logged); the server goes on as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import Any

from starlette.concurrency import run_in_threadpool

from ground.config import SETTINGS, load_settings
from ground.errors import SwarmbootError
from server import auth

log = logging.getLogger(__name__)
LIVE = ("log_level", "boot_menu_timeout", "rescue_group", "seeder_upload_rate")


class Reloader:
    def __init__(self, state: Any, app_state: Any) -> None:
        self.state = state
        self.app_state = app_state
        self.requested = False
        self.reloads = 0

    def install_handler(self) -> None:
        """Call from the main thread before the server runs (uvicorn takes SIGINT and SIGTERM only)."""
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.requested = True

    async def run(self) -> None:
        while True:
            if self.requested:
                self.requested = False
                await run_in_threadpool(self.reload)
            await asyncio.sleep(0.5)

    def reload(self) -> list[str]:
        """Apply what changed; return the names of the settings applied."""
        old = self.state.settings
        try:
            new = load_settings()
        except SwarmbootError as exc:
            log.error("reload: the settings were not changed: %s", exc)
            return []
        applied, kept = [], []
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            before, after = getattr(old, setting.name), getattr(new, setting.name)
            if before == after:
                continue
            if setting.name in LIVE:
                values[setting.name] = after
                applied.append(setting.name)
            else:
                kept.append(setting.name)
        self.state.settings = dataclasses.replace(old, **values)
        if "log_level" in values:
            logging.getLogger().setLevel(values["log_level"].upper())
        if "seeder_upload_rate" in values and self.state.seeder is not None:
            self.state.seeder.set_upload_rate(values["seeder_upload_rate"])
        self.state.token = auth.read_token(old.home)
        self.app_state.viewer_token = auth.read_token(old.home, auth.VIEWER_TOKEN_FILE)
        self.reloads += 1
        changes = ", ".join(f"{name}={getattr(new, name)!r}" for name in applied) or "no live setting changed"
        log.info("reload: settings read again (%s); tokens read again", changes)
        if kept:
            log.warning("reload: %s changed: restart the server to apply", ", ".join(kept))
        return applied
