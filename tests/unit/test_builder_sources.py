"""Reading the host's apt sources (one-line and deb822) and writing an image's."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.sources import (
    AptSource,
    Mirrors,
    default_mirrors,
    host_sources,
    parse_deb822,
    parse_one_line,
    render_sources_list,
)
from ground.errors import ConfigError

DEB822 = """\
Types: deb deb-src
# a comment
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm
Components: main
"""


def test_deb822_stanzas_suites_and_disabled_entries() -> None:
    assert parse_deb822(DEB822) == [
        AptSource("http://mirror.example.org/debian", "bookworm", ("main", "contrib")),
        AptSource("http://mirror.example.org/debian", "bookworm-updates", ("main", "contrib")),
        AptSource("http://security.example.org/debian-security", "bookworm-security", ("main",)),
    ]


def test_one_line_format_with_options_comments_and_deb_src() -> None:
    text = (
        "# comment\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example.org/debian bookworm main\n"
        "deb-src http://m.example.org/debian bookworm main\n"
        "deb http://m.example.org/debian-security bookworm-security main non-free # trailing\n"
        "deb broken\n"
    )
    assert parse_one_line(text) == [
        AptSource("http://m.example.org/debian", "bookworm", ("main",)),
        AptSource("http://m.example.org/debian-security", "bookworm-security", ("main", "non-free")),
    ]


def _apt_dir(tmp_path: Path, sources_list: str = "", deb822: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources_list:
        (tmp_path / "sources.list").write_text(sources_list)
    if deb822:
        (tmp_path / "sources.list.d/debian.sources").write_text(deb822)
    return tmp_path


def test_default_mirrors_from_deb822_host(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, deb822=DEB822)
    assert len(host_sources(apt)) == 3
    assert default_mirrors("bookworm", apt_dir=apt) == Mirrors(
        "http://mirror.example.org/debian", "http://security.example.org/debian-security"
    )


def test_default_mirrors_from_one_line_host_without_security(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, sources_list="deb http://local.example.org/debian bookworm main\n")
    assert default_mirrors("bookworm", apt_dir=apt) == Mirrors(
        "http://local.example.org/debian", "http://local.example.org/debian-security"
    )


def test_default_mirrors_without_any_host_source(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path)
    assert default_mirrors("bookworm", apt_dir=apt).archive == "http://deb.debian.org/debian"


def test_explicit_mirror_wins_and_is_checked(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, deb822=DEB822)
    mirrors = default_mirrors("bookworm", "http://other.example.org/debian/", apt_dir=apt)
    assert mirrors == Mirrors("http://other.example.org/debian", "http://other.example.org/debian-security")
    with pytest.raises(ConfigError):
        default_mirrors("bookworm", "ftp.example.org", apt_dir=apt)


def test_image_sources_list_has_updates_and_security() -> None:
    text = render_sources_list("bookworm", Mirrors("http://m/debian", "http://m/debian-security"))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "deb http://m/debian bookworm main",
        "deb http://m/debian bookworm-updates main",
        "deb http://m/debian-security bookworm-security main",
    ]
    assert parse_one_line(text)[2].suite == "bookworm-security"  # what we write, we can read


def test_sid_has_no_updates_or_security() -> None:
    text = render_sources_list("sid", Mirrors("http://m/debian", "http://m/debian-security"))
    assert [s.suite for s in parse_one_line(text)] == ["sid"]
