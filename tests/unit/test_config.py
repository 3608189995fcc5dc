"""Settings: one table, a TOML file, environment variables, validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ground.config import SETTINGS, Settings, field_names, load_settings
from ground.errors import ConfigError


def test_table_and_dataclass_agree() -> None:
    assert [s.name for s in SETTINGS] == field_names()
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default, setting.name
        assert isinstance(setting.default, setting.type), setting.name


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "missing.toml", environ={})
    assert settings == Settings()
    assert settings.compression == "zstd:3" and settings.image_format == "squashfs"
    assert settings.images_dir == Path("/var/lib/swarmboot/images")
    assert settings.source == ()


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "swarmboot.toml"
    config.write_text('home = "/srv/sb"\ncompression = "xz"\nrelease = "trixie"\n')
    settings = load_settings(config, environ={"SWARMBOOT_COMPRESSION": "lz4", "SWARMBOOT_HOOKS_DIR": "/h"})
    assert settings.home == Path("/srv/sb")
    assert settings.compression == "lz4"  # the environment wins over the file
    assert settings.release == "trixie"
    assert settings.hooks_dir == Path("/h")
    assert settings.images_dir == Path("/srv/sb/images")
    assert settings.source == (str(config), "$SWARMBOOT_COMPRESSION", "$SWARMBOOT_HOOKS_DIR")


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('image_format = "tar.zst"\n')
    assert load_settings(environ={"SWARMBOOT_CONFIG": str(config)}).image_format == "tar.zst"


def test_json_round_trip() -> None:
    settings = Settings(home=Path("/x"), compression="gzip:9")
    data = json.loads(json.dumps(settings.to_dict()))
    restored = Settings(
        **{s.name: (Path(data[s.name]) if s.type is Path else data[s.name]) for s in SETTINGS}
    )
    assert restored == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1", "unknown setting 'colour'"),
        ("home = 3", "non-empty path"),
        ('image_format = "zip"', "image_format"),
        ('log_level = "loud"', "log_level"),
        ('listen = "nohost"', "HOST:PORT"),
        ("release = [1]", "type str"),
        ("not toml =", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "swarmboot.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def test_bad_environment_value(tmp_path: Path) -> None:
    ints = [s for s in SETTINGS if s.type is int]
    if not ints:
        pytest.skip("no integer setting")
    with pytest.raises(ConfigError, match="integer"):
        load_settings(tmp_path / "none.toml", environ={ints[0].env: "many"})


def test_settings_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().home = Path("/tmp")  # type: ignore[misc]
