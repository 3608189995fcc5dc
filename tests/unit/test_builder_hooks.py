"""Which hooks run in a phase, in which order, and how site and recipe hooks replace or add."""

from __future__ import annotations

from pathlib import Path

from builder.hooks import hooks_for_phase, recipe_hook_name
from builder.recipe import PHASES, parse_recipe
from builder.steps import BUILTIN_HOOKS


def names(
    phase: str, hooks_dir: Path, recipe_text: str = "", base: Path | None = None
) -> list[tuple[str, str]]:
    recipe = parse_recipe(recipe_text, (base or hooks_dir) / "r.toml") if recipe_text else None
    return [(h.name, h.origin) for h in hooks_for_phase(phase, hooks_dir, recipe, BUILTIN_HOOKS)]


def test_every_phase_has_built_ins_in_name_order(tmp_path: Path) -> None:
    for phase in PHASES:
        found = names(phase, tmp_path)
        assert found, phase
        assert [n for n, _ in found] == sorted(n for n, _ in found)
    assert names("install", tmp_path) == [("10-bootstrap", "built-in")]
    configure = [n for n, _ in names("configure", tmp_path)]
    assert configure.index("80-undivert-dracut") < configure.index("90-clean")


def test_site_hook_replaces_built_in_of_same_name_and_adds_others(tmp_path: Path) -> None:
    site = tmp_path / "hooks"
    (site / "install").mkdir(parents=True)
    for name, executable in [("10-bootstrap", True), ("20-extra.chroot", True), ("30-not-exec", False),
                             (".hidden", True)]:
        path = site / "install" / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755 if executable else 0o644)
    hooks = hooks_for_phase("install", site, None, BUILTIN_HOOKS)
    assert [(h.name, h.origin, h.chroot) for h in hooks] == [
        ("10-bootstrap", "site", False),
        ("20-extra", "site", True),
    ]


def test_recipe_hooks_are_named_into_the_order(tmp_path: Path) -> None:
    assert recipe_hook_name("motd") == "50-motd"
    assert recipe_hook_name("85-late") == "85-late"
    found = names("configure", tmp_path / "none",
                  '[[hooks.configure]]\nname = "motd"\nrun = "true"\n'
                  '[[hooks.configure]]\nname = "95-last"\nrun = "true"\n', base=tmp_path)
    order = [n for n, _ in found]
    assert order.index("30-mount-points") < order.index("50-motd") < order.index("80-undivert-dracut")
    assert order[-1] == "95-last"
    assert ("50-motd", "recipe") in found
