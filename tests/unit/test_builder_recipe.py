"""Recipe parsing and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.recipe import RecipeError, load_recipe, parse_recipe


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_full_recipe(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files/motd").write_text("hi\n")
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks/repo.sh").write_text("#!/bin/sh\n")
    recipe = load_recipe(write(tmp_path, """
packages = ["htop", "openmpi-bin", "linux-headers-amd64=6.1.1", "foo/bookworm-backports"]
[[files]]
source = "files/motd"
dest = "/etc/motd"
mode = "0640"
[[hooks.configure]]
name = "motd"
run = "echo hi"
[[hooks.post-install]]
name = "repo"
script = "hooks/repo.sh"
chroot = false
"""))
    assert recipe.packages == ("htop", "openmpi-bin", "linux-headers-amd64=6.1.1", "foo/bookworm-backports")
    assert recipe.files[0].source == (tmp_path / "files/motd").resolve()
    assert (recipe.files[0].dest, recipe.files[0].mode) == ("/etc/motd", 0o640)
    assert [h.name for h in recipe.hooks_for("configure")] == ["motd"]
    (hook,) = recipe.hooks_for("post-install")
    assert (hook.script, hook.chroot, hook.run) == ((tmp_path / "hooks/repo.sh").resolve(), False, "")
    assert recipe.hooks_for("install") == []


def test_empty_recipe_is_fine(tmp_path: Path) -> None:
    recipe = parse_recipe("", tmp_path / "r.toml")
    assert (recipe.packages, recipe.files, recipe.hooks) == ((), (), ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("packages = 'htop'", "must be a list"),
        ('packages = ["-o", "x"]', "invalid package name"),
        ('packages = ["Bad Name"]', "invalid package name"),
        ("colour = 1", "unknown key"),
        ("not toml [", "not valid TOML"),
        ('[[hooks.later]]\nname = "x"\nrun = "true"', "unknown hook phase"),
        ('[[hooks.configure]]\nname = "x"', "exactly one of"),
        ('[[hooks.configure]]\nname = "x"\nrun = "a"\nscript = "b"', "exactly one of"),
        ('[[hooks.configure]]\nname = "../x"\nrun = "a"', "simple name"),
        ('[[hooks.configure]]\nname = "x"\nrun = "a"\n[[hooks.configure]]\nname = "x"\nrun = "b"', "unique"),
        ('[[hooks.install]]\nname = "x"\nrun = "a"', "cannot run inside the image"),
        ('[[hooks.configure]]\nname = "x"\nscript = "missing.sh"', "script not found"),
        ('[[hooks.configure]]\nname = "x"\nrun = "a"\nchroot = "yes"', "true or false"),
        ('[[files]]\nsource = "missing"\ndest = "/etc/x"', "does not exist"),
        ('[[files]]\nsource = "."\ndest = "etc/x"', "absolute path"),
        ('[[files]]\nsource = "."\ndest = "/etc/../../x"', "absolute path"),
        ('[[files]]\nsource = "."\ndest = "/etc/x"\nmode = "rw"', "octal"),
        ('[[files]]\ndest = "/etc/x"', "needs 'source' and 'dest'"),
    ],
)
def test_invalid_recipes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text))


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "nope.toml")
