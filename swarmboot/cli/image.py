"""`swarmboot image …`: create, import, grab, shell, pack, diff, list, show, rm, clone, rollback
(builder/)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ground.config import Settings
from swarmboot.cli import add_object


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "image", "build, enter, pack and manage OS images")

    create = verbs.add_parser("create", help="bootstrap a new Debian image")
    create.add_argument("name")
    create.add_argument("--release", help="Debian release (default: setting 'release', bookworm)")
    create.add_argument("--mirror", default="", help="Debian mirror URL (default: the host's apt sources)")
    create.add_argument("--packages", default="", help="extra packages, comma-separated")
    create.add_argument("--recipe", type=Path, help="recipe file (TOML): packages, files, hooks")
    create.set_defaults(handler=cmd_create)

    imp = verbs.add_parser(
        "import", help="make an image from a container image (OCI/Docker archive, OCI layout, registry)")
    imp.add_argument("name")
    imp.add_argument("source", help="oci-archive:FILE, docker-archive:FILE, oci:DIR[:TAG] or docker://REF")
    imp.add_argument("--mirror", default="", help="Debian mirror for the packages swarmboot adds "
                     "(default: the host's apt sources)")
    imp.add_argument("--packages", default="", help="extra packages, comma-separated")
    imp.add_argument("--recipe", type=Path, help="recipe file (TOML): packages, files, hooks (no base)")
    imp.add_argument("--insecure", action="store_true", help="docker://: the registry speaks plain HTTP "
                     "or has a certificate this host does not trust (skopeo --tls-verify=false)")
    imp.set_defaults(handler=cmd_import)

    grab = verbs.add_parser("grab", help="take a booted node's root as an image's tree (rsync over SSH)")
    grab.add_argument("node", help="a node of the inventory, booted, running sshd and with rsync")
    grab.add_argument("name", help="the image: its tree is replaced (for its next pack), or --new")
    grab.add_argument("--new", action="store_true", help="make a new image (image create's phases after it)")
    grab.add_argument("--exclude-file", type=Path, metavar="F",
                      help="more rsync patterns to leave out, one per line (`+ PATTERN` takes one back)")
    grab.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
    grab.add_argument("--identity", type=Path, metavar="KEY",
                      help="the SSH private key (default: root's; the node authorizes its group's keys)")
    grab.add_argument("--address", help="where to reach the node (default: its inventory address)")
    grab.add_argument("--files", type=int, default=50, metavar="N",
                      help="--dry-run: list at most N paths of each kind (default 50; all with --json)")
    grab.add_argument("--json", action="store_true", help="--dry-run: the changes as JSON")
    grab.set_defaults(handler=cmd_grab)

    diff = verbs.add_parser("diff", help="packages and files that differ between two versions, "
                            "or between the tree and a version")
    diff.add_argument("name")
    diff.add_argument("old", nargs="?", type=int, help="a version (default: the current one)")
    diff.add_argument("new", nargs="?", type=int, help="a later version (default: the tree)")
    diff.add_argument("--json", action="store_true")
    diff.add_argument("--files", type=int, default=50, metavar="N",
                      help="list at most N files of each kind (default 50; all with --json)")
    diff.set_defaults(handler=cmd_diff)

    shell = verbs.add_parser("shell", help="a shell or a command inside an image (same as lchroot)")
    shell.add_argument("name")
    shell.add_argument("command", nargs=argparse.REMAINDER)
    shell.set_defaults(handler=cmd_shell)

    pack = verbs.add_parser("pack", help="pack a new version: kernel, initramfs, image file, torrent")
    pack.add_argument("name")
    pack.add_argument("--format", choices=("squashfs", "tar.zst"), help="default: setting 'image_format'")
    pack.add_argument("--compression", help="zstd|xz|lz4|gzip[:LEVEL] (default: setting 'compression')")
    pack.add_argument("--agent-bundle", type=Path,
                      help="frozen agent directory for the initramfs (default: the one `swarmboot agent "
                      "build` makes, built when missing or out of date)")
    pack.add_argument("--no-agent", dest="agent", action="store_false",
                      help="leave the boot agent out of the initramfs (it then cannot boot root=swarmboot)")
    pack.set_defaults(handler=cmd_pack)

    listing = verbs.add_parser("list", help="list images")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    show = verbs.add_parser("show", help="show an image; --json prints the current version's manifest")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.add_argument("--version", type=int, help="another version than the current one (--json)")
    show.set_defaults(handler=cmd_show)

    remove = verbs.add_parser("rm", help="delete an image and all its versions")
    remove.add_argument("name")
    remove.add_argument("--force", action="store_true",
                        help="also when groups use it (never while a node is still booting from it)")
    remove.set_defaults(handler=cmd_rm)

    clone = verbs.add_parser("clone", help="copy an image's tree under a new name")
    clone.add_argument("name")
    clone.add_argument("new_name")
    clone.set_defaults(handler=cmd_clone)

    rollback = verbs.add_parser("rollback", help="make an older version current")
    rollback.add_argument("name")
    rollback.add_argument("--to", type=int, help="version (default: the one before the current)")
    rollback.set_defaults(handler=cmd_rollback)


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from builder.create import create_image
    from builder.recipe import load_recipe

    recipe = load_recipe(args.recipe) if args.recipe else None
    packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    path = create_image(settings, args.name, release=args.release, mirror=args.mirror,
                        packages=packages, recipe=recipe)
    print(f"image {args.name} created in {path}; next: swarmboot image pack {args.name}")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from builder.create import create_image
    from builder.oci import check_source
    from builder.origin import Origin
    from builder.recipe import load_recipe

    recipe = load_recipe(args.recipe) if args.recipe else None
    packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    origin = Origin("oci", check_source(args.source), tls_verify=not args.insecure)
    path = create_image(settings, args.name, mirror=args.mirror, packages=packages, recipe=recipe,
                        origin=origin)
    print(f"image {args.name} imported from {origin.ref} in {path}; next: swarmboot image pack {args.name}")
    return 0


def cmd_grab(args: argparse.Namespace, settings: Settings) -> int:
    from builder import grab
    from swarmboot.cli.grab_node import grab_source

    node = grab_source(args, settings)
    if args.dry_run:
        changes = grab.preview(settings, None if args.new else args.name, node)
        if args.json:
            print(json.dumps(changes.to_dict(), indent=2))
        else:
            target = f"a new image {args.name}" if args.new else f"image {args.name}'s tree"
            print(f"grab {node.name} ({node.remote}) into {target} would change (nothing was written):")
            print(grab.render_changes(changes, args.files))
        return 0
    if args.new:
        path = grab.grab_new(settings, args.name, node)
        print(f"image {args.name} grabbed from {node.name} in {path}; next: swarmboot image pack {args.name}")
        return 0
    result = grab.grab_into(settings, args.name, node)
    print(f"image {args.name}: its tree is now {node.name}'s root ({result.files} files, "
          f"{result.received_bytes / 2**20:.1f} MiB transferred in {result.seconds:.0f} s); "
          f"next: swarmboot image pack {args.name}")
    return 0


def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    from builder.image_diff import diff_image, render

    result = diff_image(settings, args.name, args.old, args.new)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result, limit=args.files))
    return 0


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import shell

    shell(settings, args.name, list(args.command))  # execs: does not return


def cmd_pack(args: argparse.Namespace, settings: Settings) -> int:
    from builder.pack import pack

    result = pack(settings, args.name, fmt=args.format, compression=args.compression,
                  agent_bundle=args.agent_bundle, agent=args.agent)
    if result.created:
        print(f"image {args.name}: version {result.version} packed and current")
    else:
        print(f"image {args.name}: unchanged, no new version (version {result.version} has the same inputs)")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import list_images

    images = list_images(settings)
    if args.json:
        print(json.dumps([vars(i) for i in images], indent=2))
        return 0
    if not images:
        print("no images yet; create one with: swarmboot image create NAME --release bookworm")
        return 0
    print(f"{'NAME':<20} {'RELEASE':<10} {'KERNEL':<20} {'CURRENT':<8} VERSIONS")
    for image in images:
        current = str(image.current) if image.current is not None else "-"
        versions = ",".join(map(str, image.versions)) or "-"
        print(f"{image.name:<20} {image.release:<10} {image.kernel_version:<20} {current:<8} {versions}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import show_json, show_text

    if args.json:
        print(json.dumps(show_json(settings, args.name, args.version), indent=2))
    else:
        print(show_text(settings, args.name))
    return 0


def cmd_rm(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import remove_image
    from ground.errors import ConflictError
    from ground.store import ImageStore
    from server import cliutil
    from server.inventory.usage import image_users

    ImageStore(settings).require(args.name)
    groups, booting = image_users(cliutil.database(settings), args.name)
    if booting:
        listed = ", ".join(f"{node} (version {version}, {state})" for node, version, state in booting[:10])
        raise ConflictError(
            f"image {args.name} is in use by node(s) still booting from it: {listed}"
            + (f" and {len(booting) - 10} more" if len(booting) > 10 else ""),
            hint="wait until they have booted (swarmboot node status), or point their group at another "
            "image and reboot them; --force does not override this",
        )
    if groups and not args.force:
        raise ConflictError(
            f"image {args.name} is used by group(s) {', '.join(groups)}: their nodes could not boot",
            hint=f"point them at another image (swarmboot group set GROUP --image …), or remove it "
            f"anyway with: swarmboot image rm {args.name} --force",
        )
    remove_image(settings, args.name)
    print(f"image {args.name} removed" + (f" (groups {', '.join(groups)} still name it)" if groups else ""))
    return 0


def cmd_clone(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import clone_image

    path = clone_image(settings, args.name, args.new_name)
    print(f"image {args.new_name} cloned from {args.name} in {path}")
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from builder.manage import rollback

    version = rollback(settings, args.name, args.to)
    print(f"image {args.name}: version {version} is current")
    return 0
