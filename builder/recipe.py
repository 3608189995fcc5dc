"""Recipes: what to add to an image beyond the base (TOML, validated once when read).

    base = "compute"               # optional: start from a copy of that image's tree, not a mirror
    packages = ["htop", "openmpi-bin"]
    debs = ["debs/site-tools_1.2_all.deb"]   # local .deb files (relative to the recipe), with apt

    [[files]]                      # copied in during post-install (paths relative to the recipe)
    source = "files/motd"
    dest = "/etc/motd"
    mode = "0644"                  # optional; default: the source's mode

    [[hooks.configure]]            # phases: install, packages, post-install, configure
    name = "motd"
    run = "echo 'welcome' >> /etc/motd"   # a shell script body, run inside the image

    [[hooks.post-install]]
    name = "site-repo"
    script = "hooks/site-repo.sh"  # a script file; chroot = false runs it on the head node
    chroot = true
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from builder.packages import check_package_names
from ground.errors import UsageError
from ground.inputs import bad_text
from ground.store import check_name

PHASES: tuple[str, ...] = ("install", "packages", "post-install", "configure")
HOOK_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: not `$` (a trailing newline)


class RecipeError(UsageError):
    """A recipe file is not valid."""


@dataclass(frozen=True)
class RecipeFile:
    source: Path  # absolute, on the head node
    dest: str  # absolute path inside the image
    mode: int | None = None


@dataclass(frozen=True)
class RecipeHook:
    phase: str
    name: str
    run: str = ""  # inline script body
    script: Path | None = None  # or a script file (absolute)
    chroot: bool = True  # run inside the image (True) or on the head node


@dataclass(frozen=True)
class Recipe:
    path: Path | None = None
    packages: tuple[str, ...] = ()
    base: str = ""  # an image whose tree this one starts from
    debs: tuple[Path, ...] = ()  # local .deb files (absolute), installed in the packages phase
    files: tuple[RecipeFile, ...] = ()
    hooks: tuple[RecipeHook, ...] = ()
    text: str = ""  # the file as read, kept in image.json

    def hooks_for(self, phase: str) -> list[RecipeHook]:
        return [hook for hook in self.hooks if hook.phase == phase]


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from exc
    return parse_recipe(text, path.resolve())


def parse_recipe(text: str, path: Path) -> Recipe:
    where = str(path)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise RecipeError(f"{where}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"base", "packages", "debs", "files", "hooks"}
    if unknown:
        raise RecipeError(
            f"{where}: unknown key(s): {', '.join(sorted(unknown))}",
            hint="a recipe has 'base', 'packages', 'debs', 'files' and 'hooks' (see docs/builder.md)",
        )
    base = path.parent
    packages = data.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise RecipeError(f"{where}: 'packages' must be a list of package names")
    try:
        check_package_names(packages)
    except UsageError as error:
        raise RecipeError(f"{where}: {error.message}", hint=error.hint) from None
    files = tuple(_parse_file(entry, base, where) for entry in _table_list(data, "files", where))
    debs = tuple(_parse_deb(entry, base, where) for entry in _string_list(data, "debs", where))
    base_image = data.get("base", "")
    if base_image != "":
        try:
            check_name(base_image)
        except UsageError as error:
            raise RecipeError(f"{where}: 'base': {error.message}", hint=error.hint) from None
    hooks_table = data.get("hooks", {})
    if not isinstance(hooks_table, dict):
        raise RecipeError(f"{where}: 'hooks' must be a table of phases")
    hooks: list[RecipeHook] = []
    for phase, entries in hooks_table.items():
        if phase not in PHASES:
            raise RecipeError(f"{where}: unknown hook phase {phase!r}", hint=f"phases: {', '.join(PHASES)}")
        if not isinstance(entries, list):
            raise RecipeError(f"{where}: hooks.{phase} must be an array of tables ([[hooks.{phase}]])")
        hooks += [_parse_hook(phase, entry, base, where) for entry in entries]
    names = [(h.phase, h.name) for h in hooks]
    dupes = {f"{p}/{n}" for p, n in names if names.count((p, n)) > 1}
    if dupes:
        raise RecipeError(f"{where}: hook names must be unique per phase: {', '.join(sorted(dupes))}")
    return Recipe(path=path, packages=tuple(packages), base=base_image, debs=debs, files=files,
                  hooks=tuple(hooks), text=text)


def _string_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{where}: '{key}' must be a list of strings")
    return value


def _parse_deb(entry: str, base: Path, where: str) -> Path:
    _check_path(entry, "a 'debs' entry", where)
    path = (base / entry).resolve()
    if path.suffix != ".deb" or not path.is_file():
        raise RecipeError(f"{where}: 'debs' names {entry!r}: not a .deb file ({path})",
                          hint="give .deb files, relative to the recipe")
    return path


def _table_list(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RecipeError(f"{where}: '{key}' must be an array of tables ([[{key}]])")
    return value


def _parse_file(entry: dict[str, Any], base: Path, where: str) -> RecipeFile:
    extra = set(entry) - {"source", "dest", "mode"}
    if extra or "source" not in entry or "dest" not in entry:
        raise RecipeError(f"{where}: each [[files]] needs 'source' and 'dest' (and optional 'mode')")
    for key in ("source", "dest"):
        _check_path(entry[key], f"[[files]] {key}", where)
    source = (base / str(entry["source"])).resolve()
    if not source.exists():
        raise RecipeError(f"{where}: file to copy in does not exist: {source}")
    dest = str(entry["dest"])
    if not dest.startswith("/") or ".." in PurePosixPath(dest).parts:
        raise RecipeError(f"{where}: 'dest' must be an absolute path inside the image, not {dest!r}")
    mode = entry.get("mode")
    if mode is not None:
        try:
            mode = int(str(mode), 8)
        except ValueError:
            raise RecipeError(f"{where}: 'mode' must be octal like \"0644\", not {mode!r}") from None
        if not 0 <= mode <= 0o7777:
            raise RecipeError(f"{where}: 'mode' out of range: {entry['mode']!r}")
    return RecipeFile(source=source, dest=dest, mode=mode)


def _check_path(value: Any, what: str, where: str) -> None:
    """A path from the recipe: a string, valid Unicode, one line, no NUL (the OS refuses those)."""
    if not isinstance(value, str):
        raise RecipeError(f"{where}: {what} must be a string, not {value!r}")
    problem = bad_text(value)
    if problem or not value:
        raise RecipeError(f"{where}: {what} {value!r} is not a usable path: {problem or 'it is empty'}")


def _parse_hook(phase: str, entry: dict[str, Any], base: Path, where: str) -> RecipeHook:
    if not isinstance(entry, dict):
        raise RecipeError(f"{where}: hooks.{phase} entries must be tables")
    extra = set(entry) - {"name", "run", "script", "chroot"}
    if extra:
        raise RecipeError(f"{where}: hooks.{phase}: unknown key(s) {', '.join(sorted(extra))}")
    name = entry.get("name", "")
    if not isinstance(name, str) or not HOOK_NAME_RE.fullmatch(name):
        raise RecipeError(f"{where}: hooks.{phase}: 'name' must be a simple name, not {name!r}")
    run, script = entry.get("run", ""), entry.get("script")
    if not isinstance(run, str) or bad_text(run, multiline=True):
        raise RecipeError(f"{where}: hook {phase}/{name}: 'run' must be a script (text without NUL)")
    if bool(run) == bool(script):
        raise RecipeError(f"{where}: hook {phase}/{name} needs exactly one of 'run' and 'script'")
    chroot = entry.get("chroot", True)
    if not isinstance(chroot, bool):
        raise RecipeError(f"{where}: hook {phase}/{name}: 'chroot' must be true or false")
    if phase == "install" and chroot:
        raise RecipeError(
            f"{where}: hook install/{name} cannot run inside the image (it does not exist yet)",
            hint="set chroot = false; the tree is in $SWARMBOOT_ROOTFS",
        )
    script_path = None
    if script:
        _check_path(script, f"hook {phase}/{name}: 'script'", where)
        script_path = (base / str(script)).resolve()
        if not script_path.is_file():
            raise RecipeError(f"{where}: hook {phase}/{name}: script not found: {script_path}")
    return RecipeHook(phase=phase, name=name, run=str(run), script=script_path, chroot=chroot)
