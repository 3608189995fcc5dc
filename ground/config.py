"""Settings: one typed, frozen object, driven by one table.

Sources, later ones win: the defaults in SETTINGS, the file /etc/swarmboot/swarmboot.toml (or
$SWARMBOOT_CONFIG), then environment variables ($SWARMBOOT_HOME, $SWARMBOOT_SERVER_URL, …). A
missing file is fine; an unknown key or a value of the wrong type is a ConfigError that names the
key and the file. Settings are validated once, here, and immutable afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/etc/swarmboot/swarmboot.toml")
DEFAULT_HOME = Path("/var/lib/swarmboot")


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "SWARMBOOT_" + self.name.upper()


# The one table of settings. Add a row here and a field to Settings below (a unit test checks
# that they agree).
SETTINGS: tuple[Setting, ...] = (
    Setting("home", Path, DEFAULT_HOME, "where images, packed versions and the database live"),
    Setting("listen", str, "0.0.0.0:8080", "HOST:PORT the server listens on"),
    Setting("server_url", str, "", "URL nodes use to reach the server (default: from listen)"),
    Setting("database_url", str, "", "SQLAlchemy URL (default: sqlite in home)"),
    Setting("mirror", str, "", "Debian mirror for new images (default: the host's apt sources)"),
    Setting("release", str, "bookworm", "Debian release for new images"),
    Setting("image_format", str, "squashfs", "default packed format: squashfs or tar.zst"),
    Setting("compression", str, "zstd:3", "default compression (zstd|xz|lz4|gzip[:LEVEL])"),
    Setting("hooks_dir", Path, Path("/etc/swarmboot/hooks"), "site hooks that replace built-in ones"),
    Setting("log_level", str, "info", "debug, info, warning or error"),
    Setting("seeder_listen", str, "0.0.0.0:6880", "HOST:PORT the server's BitTorrent seeder listens on"),
    Setting("nfs_port", int, 2049, "TCP port of the NFS export (NFSv4) for groups in nfs root mode"),
    Setting("seeder_upload_rate", int, 0, "seeder upload limit in bytes/s (0: none; the LAN default)"),
    Setting("seed_after_boot_seconds", int, 1800,
            "at most this long a booted node seeds its image to nodes still booting (0: not after boot)"),
    Setting("seed_idle_seconds", int, 60,
            "a booted node stops seeding once the tracker has had no incomplete peer this long"),
    Setting("seed_after_boot_rate", int, 0, "a booted node's upload limit in bytes/s as it seeds (0: none)"),
    Setting("seed_on_demand", bool, True,
            "a booted node that stopped seeding its image seeds it again when nodes boot that version"),
    Setting("boot_files_from_peers", bool, True,
            "booted nodes serve the kernel and initramfs to rebooting ones (iPXE falls back to the server)"),
    Setting("boot_files_server_streams", int, 4,
            "kernel/initramfs transfers the server sends at once while no booted peer is free (0: no limit)"),
    Setting("boot_menu_timeout", int, 30, "seconds the unknown-machine boot menu waits before local boot"),
    Setting("rescue_group", str, "", "group whose image starts the rescue shell of unknown machines"),
    Setting("dhcp_interface", str, "", "interface `serve` runs dnsmasq on (empty: no DHCP/TFTP)"),
    Setting("tftp_root", Path, Path("/usr/lib/ipxe"), "directory with undionly.kpxe, snponly.efi, ipxe.efi"),
    Setting("trusted_proxies", str, "",
            "reverse proxies whose X-Forwarded-For is believed (default: none, not even loopback)"),
    Setting("tracker_peers_per_ip", int, 16, "peers of one swarm the tracker keeps from one IP address"),
    Setting("database_busy_seconds", int, 10, "how long a change waits for another writer (SQLite)"),
    Setting("snmp_timeout", int, 5, "seconds a switch has to give its forwarding table over SNMP"),
    Setting("snmp_poll_seconds", int, 300, "seconds between serve's readings of the switches (0: on demand)"),
    Setting("lldp_wait", int, 0,
            "seconds an unknown node's agent waits for LLDP before its plan (0: none; named ones never)"),
    Setting("initramfs_dhcp", bool, False,
            "the initramfs asks DHCP again (dracut's dhclient) instead of taking the address iPXE got"),
    Setting("power_concurrency", int, 64, "nodes `swarmboot power` talks to at once"),
    Setting("power_timeout", int, 10, "seconds one node's BMC has to answer a power action"),
    Setting("ipmi_client", str, "pyghmi", "IPMI with pyghmi (in process) or ipmitool (a process per node)"),
    Setting("ipmi_cipher_suite", int, 3, "the RMCP+ cipher suite ipmitool asks for (-1: ipmitool's choice)"),
    Setting("redfish_verify_tls", bool, True, "verify Redfish BMCs' TLS certificates"),
)


@dataclass(frozen=True)
class Settings:
    home: Path = DEFAULT_HOME
    listen: str = "0.0.0.0:8080"
    server_url: str = ""
    database_url: str = ""
    mirror: str = ""
    release: str = "bookworm"
    image_format: str = "squashfs"
    compression: str = "zstd:3"
    hooks_dir: Path = Path("/etc/swarmboot/hooks")
    log_level: str = "info"
    seeder_listen: str = "0.0.0.0:6880"
    nfs_port: int = 2049
    seeder_upload_rate: int = 0
    seed_after_boot_seconds: int = 1800
    seed_idle_seconds: int = 60
    seed_after_boot_rate: int = 0
    seed_on_demand: bool = True
    boot_files_from_peers: bool = True
    boot_files_server_streams: int = 4
    boot_menu_timeout: int = 30
    rescue_group: str = ""
    dhcp_interface: str = ""
    tftp_root: Path = Path("/usr/lib/ipxe")
    trusted_proxies: str = ""
    tracker_peers_per_ip: int = 16
    database_busy_seconds: int = 10
    snmp_timeout: int = 5
    snmp_poll_seconds: int = 300
    lldp_wait: int = 0
    initramfs_dhcp: bool = False
    power_concurrency: int = 64
    power_timeout: int = 10
    ipmi_client: str = "pyghmi"
    ipmi_cipher_suite: int = 3
    redfish_verify_tls: bool = True
    source: tuple[str, ...] = field(default=(), compare=False)

    # Derived locations: one definition each, used by every part.
    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def agent_dir(self) -> Path:
        return self.home / "agent"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'swarmboot.db'}"

    @property
    def effective_server_url(self) -> str:
        """The URL nodes use: server_url if set, otherwise built from listen."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host, _, port = self.listen.rpartition(":")
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = _primary_address()
        return f"http://{host}:{port}"

    def to_dict(self) -> dict[str, Any]:
        return {s.name: _to_plain(getattr(self, s.name)) for s in SETTINGS}


def _primary_address() -> str:
    """The host's address on its default route, for a server listening on all addresses."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            # No packet is sent: connect() on UDP only selects the route and source address.
            sock.connect(("192.0.2.1", 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _to_plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _convert(setting: Setting, value: Any, where: str) -> Any:
    if setting.type is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: '{setting.name}' must be a non-empty path string, not {value!r}")
        return Path(value)
    if setting.type is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: '{setting.name}' must be an integer, not {value!r}") from None
    if setting.type is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: '{setting.name}' must be true or false, not {value!r}")
    if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: '{setting.name}' must be of type {setting.type.__name__}, not {value!r}",
            hint=f"{setting.name}: {setting.help}",
        )
    return value


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the settings from defaults, the config file and the environment."""
    env = os.environ if environ is None else environ
    path = config_file or Path(env.get("SWARMBOOT_CONFIG", str(DEFAULT_CONFIG_FILE)))
    values: dict[str, Any] = {}
    sources: list[str] = []
    known = {s.name: s for s in SETTINGS}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", hint="fix the file or remove it") from exc
        for key, value in data.items():
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown setting '{key}'",
                    hint="known settings: " + ", ".join(sorted(known)),
                )
            values[key] = _convert(known[key], value, str(path))
        sources.append(str(path))
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _convert(setting, env[setting.env], f"${setting.env}")
            sources.append(f"${setting.env}")
    settings = Settings(**values, source=tuple(sources))
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.image_format not in ("squashfs", "tar.zst"):
        raise ConfigError(f"image_format must be 'squashfs' or 'tar.zst', not {settings.image_format!r}")
    port = settings.listen.rpartition(":")[2]
    if ":" not in settings.listen or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"listen must be HOST:PORT, not {settings.listen!r}")
    if settings.ipmi_client not in ("pyghmi", "ipmitool"):
        raise ConfigError(f"ipmi_client must be 'pyghmi' or 'ipmitool', not {settings.ipmi_client!r}")
    if settings.power_concurrency < 1 or settings.power_timeout < 1:
        raise ConfigError("power_concurrency and power_timeout must be at least 1")
    if not 0 <= settings.lldp_wait <= 300:
        raise ConfigError(f"lldp_wait must be 0-300 seconds, not {settings.lldp_wait}")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level must be debug, info, warning or error, not {settings.log_level!r}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings) if f.name != "source"]
