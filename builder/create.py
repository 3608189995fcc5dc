"""`swarmboot image create` and `image import`: make an image's tree from its origin (a mirror,
a base image, a container image: builder/origin.py) in a staging directory, run the hooks of each
phase, and rename it into place only when everything succeeded.

    create_image(settings, "compute", release="bookworm", packages=["htop"], recipe=load_recipe(p))
    create_image(settings, "ctr", origin=Origin("oci", "oci-archive:/srv/ctr.tar"))
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.bootstrap import pick_bootstrapper
from builder.chroot import ChrootSpec
from builder.dracut_module import repo_modules_dir
from builder.hooks import hooks_for_phase, run_hook
from builder.kernel import image_kernel_version
from builder.origin import MIRROR, Origin
from builder.packages import BASE_PACKAGES, check_package_names, image_packages
from builder.progress import Stages, say
from builder.recipe import PHASES, Recipe
from builder.sources import Mirrors, default_mirrors
from builder.steps import BUILTIN_HOOKS
from builder.treeops import clean_stale_staging, remove_tree, staging_path
from ground import __version__
from ground.config import Settings
from ground.errors import ConflictError
from ground.run import require_tool
from ground.store import ImageStore, check_name


@dataclass
class BuildContext:
    """Everything a hook may need about the image being built."""

    settings: Settings
    name: str
    release: str
    mirrors: Mirrors
    packages: list[str]  # base + requested, in install order
    recipe: Recipe | None
    staging: Path  # the work directory; rootfs/ inside it
    bootstrapper: str
    dracut_modules: Path | None = None
    extra_packages: list[str] = field(default_factory=list)
    origin: Origin = MIRROR
    origin_info: dict[str, Any] = field(default_factory=dict)  # filled by the install phase

    @property
    def rootfs(self) -> Path:
        return self.staging / "rootfs"

    def chroot_spec(
        self, binds_ro: tuple[tuple[Path, str], ...] = (), env: dict[str, str] | None = None
    ) -> ChrootSpec:
        return ChrootSpec(
            root=self.rootfs,
            kernel_version=image_kernel_version(self.rootfs),
            label=self.name,
            binds_ro=binds_ro,
            env=env or {},
        )


def check_new_name(store: ImageStore, name: str) -> None:
    check_name(name)
    if store.image_dir(name).exists():
        raise ConflictError(
            f"an image named {name!r} exists already",
            hint=f"pick another name, or remove it first: swarmboot image rm {name}",
        )


def image_json(store: ImageStore, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads((store.image_dir(name) / "image.json").read_text()))
    except (OSError, ValueError):
        return {}


def origin_with_recipe(store: ImageStore, origin: Origin, recipe: Recipe | None) -> Origin:
    """The recipe's `base = "IMAGE"` makes the origin a copy of that image."""
    if recipe is None or not recipe.base:
        return origin
    if origin.kind != "mirror":
        raise ConflictError(
            f"the recipe starts from image {recipe.base!r} (base = …) but this image comes from "
            f"{origin.ref}",
            hint="drop `base` from the recipe, or use `image create` instead of `image import`",
        )
    store.require(recipe.base)
    return Origin("image", recipe.base)


def create_image(
    settings: Settings,
    name: str,
    *,
    release: str | None = None,
    mirror: str = "",
    packages: list[str] | tuple[str, ...] = (),
    recipe: Recipe | None = None,
    dracut_modules: Path | None = None,
    origin: Origin = MIRROR,
) -> Path:
    """Build image `name`; return its directory. On any failure nothing is left behind."""
    store = ImageStore(settings)
    check_new_name(store, name)
    extra = [*check_package_names(list(packages)), *(recipe.packages if recipe else ())]
    require_tool("unshare")
    require_tool("chroot")
    origin = origin_with_recipe(store, origin, recipe)
    if origin.kind == "image" and not release:
        release = str(image_json(store, origin.ref).get("release") or "")
    release = release or settings.release
    ctx = BuildContext(
        settings=settings,
        name=name,
        release=release,
        mirrors=default_mirrors(release, mirror or settings.mirror),
        packages=image_packages(extra),
        recipe=recipe,
        staging=staging_path(store.staging_dir, name, uuid.uuid4().hex[:8]),
        bootstrapper=pick_bootstrapper(),
        dracut_modules=dracut_modules if dracut_modules is not None else repo_modules_dir(),
        extra_packages=extra,
        origin=origin,
    )
    clean_stale_staging(store.staging_dir)
    ctx.staging.mkdir(parents=True)
    stages = Stages(f"create {name}")
    try:
        say(f"create {name}: {origin.describe(release, ctx.mirrors.archive, ctx.bootstrapper)}, "
            f"{len(ctx.packages)} packages requested")
        for phase in PHASES:
            with stages.stage(phase):
                for hook in hooks_for_phase(phase, settings.hooks_dir, recipe, BUILTIN_HOOKS):
                    say(f"  {hook.describe()}")
                    run_hook(hook, ctx)
        write_image_json(ctx)
        target = store.image_dir(name)
        if target.exists():
            raise ConflictError(f"an image named {name!r} appeared while this one was built")
        ctx.staging.rename(target)
    except BaseException:
        # the staging directory holds everything: an imported container image, a base's copy
        remove_tree(ctx.staging)
        raise
    say(stages.summary())
    return target


def write_image_json(ctx: BuildContext) -> None:
    info = {
        "name": ctx.name,
        "release": ctx.release,
        "mirror": ctx.mirrors.archive,
        "security_mirror": ctx.mirrors.security,
        "base_packages": list(BASE_PACKAGES),
        "packages": ctx.extra_packages,
        "recipe": str(ctx.recipe.path) if ctx.recipe and ctx.recipe.path else None,
        "recipe_text": ctx.recipe.text if ctx.recipe else None,
        "bootstrapper": ctx.bootstrapper if ctx.origin.kind == "mirror" else None,
        "origin": {"kind": ctx.origin.kind, **ctx.origin_info},
        "kernel_version": image_kernel_version(ctx.rootfs),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tool_version": __version__,
    }
    (ctx.staging / "image.json").write_text(json.dumps(info, indent=2) + "\n")
