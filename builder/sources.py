"""The apt sources of new images: read the host's apt configuration, write the image's.

The host may use the one-line format (/etc/apt/sources.list, *.list) or deb822
(*.sources, Debian 12's default). An image gets the full set for its release — RELEASE,
RELEASE-updates and RELEASE-security — so its kernel is the current one (FACTS: debootstrap
alone writes only `RELEASE main`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ground.errors import ConfigError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_DIR = Path("/etc/apt")
# Releases without -updates and -security suites.
ROLLING_RELEASES = ("sid", "unstable", "experimental")


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry: a URI, one suite and its components."""

    uri: str
    suite: str
    components: tuple[str, ...]


def parse_one_line(text: str) -> list[AptSource]:
    """Entries of a one-line-format file (`deb [options] URI SUITE COMPONENT…`); deb-src skipped."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            # options: "[arch=amd64 signed-by=…]" may span several words
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) < 2:
            continue
        uri, suite, *components = words
        sources.append(AptSource(uri.rstrip("/"), suite, tuple(components)))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Entries of a deb822 `.sources` file: one AptSource per (URI, suite) of `Types: deb` stanzas."""
    sources: list[AptSource] = []
    for stanza in _stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                sources.append(AptSource(uri.rstrip("/"), suite, components))
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()  # continuation line
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def host_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every `deb` entry of the host: sources.list, sources.list.d/*.list and *.sources."""
    found: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        found += parse_one_line(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                found += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                found += parse_deb822(path.read_text(errors="replace"))
    return found


@dataclass(frozen=True)
class Mirrors:
    """Where an image's packages come from: the archive and the security archive."""

    archive: str
    security: str


def security_for(archive: str) -> str:
    """The usual security archive beside an archive: …/debian → …/debian-security."""
    archive = archive.rstrip("/")
    if archive.endswith("/debian"):
        return archive + "-security"
    return "http://deb.debian.org/debian-security"


def default_mirrors(release: str, mirror: str = "", apt_dir: Path = APT_DIR) -> Mirrors:
    """The mirror given, else the host's; the security archive from the host when it has one."""
    sources = host_sources(apt_dir)
    security_uri = next((s.uri for s in sources if s.suite.endswith("-security")), "")
    if mirror:
        archive = mirror.rstrip("/")
        if not archive.startswith(("http://", "https://", "file:/")):
            raise ConfigError(f"mirror {mirror!r} is not an http(s):// or file:/ URL")
        return Mirrors(archive, security_for(archive))
    plain = [s for s in sources if not s.suite.endswith(("-security", "-updates", "-backports"))]
    # Prefer the host's entry for this release, then any plain entry, then the Debian default.
    same = [s for s in plain if s.suite == release]
    archive = (same or plain)[0].uri if (same or plain) else DEFAULT_MIRROR
    return Mirrors(archive, security_uri or security_for(archive))


def render_sources_list(release: str, mirrors: Mirrors, components: tuple[str, ...] = ("main",)) -> str:
    """The image's /etc/apt/sources.list (one-line format, readable by every apt)."""
    comps = " ".join(components)
    lines = ["# written by swarmboot image create", f"deb {mirrors.archive} {release} {comps}"]
    if release not in ROLLING_RELEASES:
        lines.append(f"deb {mirrors.archive} {release}-updates {comps}")
        lines.append(f"deb {mirrors.security} {release}-security {comps}")
    return "\n".join(lines) + "\n"
