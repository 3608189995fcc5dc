"""Hooks: the steps of `image create`, by phase, and how a site or a recipe adds or replaces one.

Phases run in order: install → packages → post-install → configure. A phase's hooks come from
three places and run in the order of their names:

  built-in   Python functions in builder/steps.py (named like "10-bootstrap");
  site       executables in <hooks_dir>/<phase>/ (setting `hooks_dir`, default
             /etc/swarmboot/hooks); one with a built-in's name replaces it. A file whose name
             ends in ".chroot" runs inside the image (its name without ".chroot" is what counts);
             others run on the head node.
  recipe     [[hooks.<phase>]] tables; named "50-<name>" unless the name starts with a digit.

A host-side hook gets the environment SWARMBOOT_ROOTFS, SWARMBOOT_IMAGE, SWARMBOOT_PHASE,
SWARMBOOT_RELEASE, SWARMBOOT_MIRROR and (with a recipe) SWARMBOOT_RECIPE_DIR. A hook that
fails stops the build: its name, exit code and output are shown and nothing is kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.recipe import PHASES, Recipe
from ground.errors import CommandError, SwarmbootError

if TYPE_CHECKING:
    from builder.create import BuildContext

CHROOT_SUFFIX = ".chroot"
HOOK_TIMEOUT = 3600.0


class HookError(SwarmbootError):
    """A hook failed; the message names it and shows its output."""

    def __init__(self, phase: str, name: str, detail: str, output: str = "", hint: str = "") -> None:
        tail = "\n".join(output.strip().splitlines()[-30:])
        message = f"hook {phase}/{name} failed: {detail}"
        if tail:
            message += "\n" + "\n".join("  | " + line for line in tail.splitlines())
        super().__init__(
            message,
            hint=hint or "fix the hook (or the recipe) and run create again; nothing was kept",
        )
        self.phase = phase
        self.name = name
        self.output = output


BuiltinFunction = Callable[["BuildContext"], None]


@dataclass(frozen=True)
class Hook:
    phase: str
    name: str
    origin: str  # "built-in", "site" or "recipe"
    function: BuiltinFunction | None = None
    path: Path | None = None  # script file (site or recipe)
    inline: str = ""  # recipe `run = "…"`
    chroot: bool = False

    def describe(self) -> str:
        where = "in the image" if self.chroot else "on the head node"
        return f"{self.phase}/{self.name} ({self.origin}, {where})"


@dataclass(frozen=True)
class Builtin:
    """A built-in hook: a Python function of builder/steps.py (its BUILTIN_HOOKS tuple)."""

    phase: str
    name: str
    function: BuiltinFunction

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"built-in hook {self.name}: unknown phase {self.phase!r}")


def site_hooks(hooks_dir: Path, phase: str) -> list[Hook]:
    directory = hooks_dir / phase
    if not directory.is_dir():
        return []
    hooks = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name.startswith(".") or not os.access(path, os.X_OK):
            continue
        chroot = path.name.endswith(CHROOT_SUFFIX)
        name = path.name.removesuffix(CHROOT_SUFFIX)
        hooks.append(Hook(phase, name, "site", path=path, chroot=chroot))
    return hooks


def recipe_hook_name(name: str) -> str:
    return name if name[:1].isdigit() else f"50-{name}"


def hooks_for_phase(
    phase: str, hooks_dir: Path, recipe: Recipe | None, builtins: Sequence[Builtin]
) -> list[Hook]:
    """Every hook of a phase, in the order they run."""
    by_name: dict[str, Hook] = {}
    for builtin in builtins:
        if builtin.phase == phase:
            by_name[builtin.name] = Hook(phase, builtin.name, "built-in", function=builtin.function)
    for hook in site_hooks(hooks_dir, phase):
        by_name[hook.name] = hook  # replaces a built-in of the same name
    if recipe is not None:
        for entry in recipe.hooks_for(phase):
            name = recipe_hook_name(entry.name)
            by_name[name] = Hook(
                phase, name, "recipe", path=entry.script, inline=entry.run, chroot=entry.chroot
            )
    return [by_name[name] for name in sorted(by_name)]


def run_hook(hook: Hook, ctx: BuildContext) -> None:
    """Run one hook; raise HookError with its output if it fails."""
    if hook.function is not None:
        try:
            hook.function(ctx)
        except CommandError as error:
            raise HookError(hook.phase, hook.name, f"exit code {error.returncode}",
                            error.stdout + error.stderr) from error
        except SwarmbootError as error:
            raise HookError(hook.phase, hook.name, error.message, hint=error.hint) from error
        return
    if hook.chroot:
        _run_in_image(hook, ctx)
    else:
        _run_on_host(hook, ctx)


def _hook_env(hook: Hook, ctx: BuildContext, inside: bool) -> dict[str, str]:
    env = {
        "SWARMBOOT_IMAGE": ctx.name,
        "SWARMBOOT_PHASE": hook.phase,
        "SWARMBOOT_RELEASE": ctx.release,
        "SWARMBOOT_MIRROR": ctx.mirrors.archive,
    }
    if not inside:
        env["SWARMBOOT_ROOTFS"] = str(ctx.rootfs)
        if ctx.recipe is not None and ctx.recipe.path is not None:
            env["SWARMBOOT_RECIPE_DIR"] = str(ctx.recipe.path.parent)
    return env


def _command(hook: Hook, script_inside: str | None) -> list[str]:
    if hook.inline:
        return ["/bin/sh", "-e", "-c", hook.inline, hook.name]
    assert hook.path is not None
    script = script_inside or str(hook.path)
    # An executable script runs through its #! line; a plain file through /bin/sh.
    return [script] if os.access(hook.path, os.X_OK) else ["/bin/sh", "-e", script]


def _run_on_host(hook: Hook, ctx: BuildContext) -> None:
    from ground.run import run

    cwd = ctx.recipe.path.parent if ctx.recipe is not None and ctx.recipe.path else ctx.rootfs
    result = run(
        _command(hook, None),
        extra_env=_hook_env(hook, ctx, inside=False),
        cwd=cwd,
        timeout=HOOK_TIMEOUT,
        check=False,
        stderr=-2,  # subprocess.STDOUT: one stream, in order
    )
    if result.returncode != 0:
        raise HookError(hook.phase, hook.name, f"exit code {result.returncode}", result.stdout)


def _run_in_image(hook: Hook, ctx: BuildContext) -> None:
    from builder.chroot import run_in_image

    script_inside = "/run/lchroot/hook" if hook.path is not None else None
    binds_ro = ((hook.path, script_inside),) if hook.path is not None and script_inside else ()
    spec = ctx.chroot_spec(binds_ro=binds_ro, env=_hook_env(hook, ctx, inside=True))
    result = run_in_image(spec, _command(hook, script_inside), timeout=HOOK_TIMEOUT, check=False,
                          stderr=-2)
    if result.returncode != 0:
        raise HookError(hook.phase, hook.name, f"exit code {result.returncode}", result.stdout)
