"""Inside a fresh private mount namespace: mount what a chroot needs, chroot, exec the command.

Run only through builder.chroot (as `unshare --mount --propagation private -- python -m
builder.nsroot …`). Every mount made here lives in that namespace, so the kernel drops them all
when its last process exits — normal exit, error or SIGKILL — and the host never sees them.

What the command sees inside the image:
  /proc (a new procfs), /sys and /dev (recursive binds, with /dev/pts), /run (a private tmpfs:
  binding the host's /run would let package scripts talk to the host's systemd),
  /etc/resolv.conf (the host's, bound over the image's), /usr/sbin/policy-rc.d (exits 101, so
  package scripts start no daemon), `uname -r` reporting the image's kernel (a wrapper bound
  over uname), and any extra binds asked for (e.g. the frozen agent, dracut's output directory).
Nothing is written to the image: helper files live in the tmpfs at /run/lchroot.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePosixPath

from ground.errors import SwarmbootError
from ground.run import run

HELPER_DIR = "/run/lchroot"  # inside the image, on the private tmpfs
POLICY_RC_D = "usr/sbin/policy-rc.d"
POLICY_SCRIPT = """#!/bin/sh
# lchroot: package scripts start no daemon inside an image (see invoke-rc.d(8))
echo "lchroot: not starting $1 ($2) inside the image" >&2
exit 101
"""
UNAME_WRAPPER = """#!/bin/sh
# lchroot: report the image's kernel ({kver}), not the host's, in every uname output
out=$({real} "$@") || exit $?
host=$({real} -r)
case $out in
    *"$host"*) out="${{out%%"$host"*}}{kver}${{out#*"$host"}}" ;;
esac
printf '%s\\n' "$out"
"""


def resolve_in_root(root: Path, path: str, max_links: int = 40) -> Path:
    """`path` (absolute, inside the image) with symlinks resolved as the image sees them."""
    parts = list(PurePosixPath(path).parts[1:])
    current = PurePosixPath("/")
    links = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        host = root / str(candidate).lstrip("/")
        if host.is_symlink():
            links += 1
            if links > max_links:
                raise SwarmbootError(f"too many symlinks resolving {path} in {root}")
            target = PurePosixPath(os.readlink(host))
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            if target.is_absolute():
                current = PurePosixPath("/")
            continue
        current = candidate
    return root / str(current).lstrip("/")


def _mount(*args: str) -> None:
    run(["mount", *args], timeout=60)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


def setup_mounts(root: Path, kernel: str | None, binds: list[tuple[str, str, bool]]) -> None:
    """Mount the API file systems and helpers under `root` (in this private namespace)."""
    _mount("--make-rprivate", "/")
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))
    _mount("--rbind", "/sys", str(root / "sys"))
    _mount("--rbind", "/dev", str(root / "dev"))
    _mount("-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", str(root / "run"))
    (root / "run/lock").mkdir(mode=0o1777)
    helpers = root / HELPER_DIR.lstrip("/")
    helpers.mkdir(mode=0o755)
    _policy_rc_d(root, helpers)
    _resolv_conf(root, helpers)
    if kernel:
        _uname(root, helpers, kernel)
    for source, target, read_only in binds:
        _bind(root, source, target, read_only)


def _policy_rc_d(root: Path, helpers: Path) -> None:
    _write(helpers / "policy-rc.d", POLICY_SCRIPT, 0o755)
    place = root / POLICY_RC_D
    if place.is_symlink() and os.readlink(place) == f"{HELPER_DIR}/policy-rc.d":
        return  # the image's link to our tmpfs (made by create): nothing to mount
    if place.is_file():
        _mount("--bind", str(helpers / "policy-rc.d"), str(place))
        return
    print(
        f"lchroot: warning: {place} is missing, package scripts may start daemons "
        "(images made by 'swarmboot image create' have it)",
        file=sys.stderr,
    )


def _resolv_conf(root: Path, helpers: Path) -> None:
    host = Path("/etc/resolv.conf")
    text = host.read_text() if host.is_file() else ""
    target = resolve_in_root(root, "/etc/resolv.conf")
    if str(target).startswith(str(root / "run") + "/"):
        target.parent.mkdir(parents=True, exist_ok=True)  # on our tmpfs
        _write(target, text)
        return
    if target.is_file():
        _write(helpers / "resolv.conf", text)
        _mount("--bind", str(helpers / "resolv.conf"), str(target))


def _uname(root: Path, helpers: Path, kernel: str) -> None:
    target = resolve_in_root(root, "/bin/uname")
    if not target.is_file():
        return
    real = helpers / "uname.real"
    real.touch()
    _mount("--bind", str(target), str(real))
    _write(helpers / "uname", UNAME_WRAPPER.format(kver=kernel, real=f"{HELPER_DIR}/uname.real"), 0o755)
    _mount("--bind", str(helpers / "uname"), str(target))


def _bind(root: Path, source: str, inside: str, read_only: bool) -> None:
    target = resolve_in_root(root, inside)
    if not target.exists():
        if not str(target).startswith(str(root / "run") + "/"):
            raise SwarmbootError(f"bind target {inside} does not exist in the image")
        if Path(source).is_dir():
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    _mount("--bind", source, str(target))
    if read_only:
        _mount("-o", "remount,bind,ro", str(target))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m builder.nsroot")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--kernel", default="")
    parser.add_argument("--bind", action="append", default=[], help="HOST:INSIDE")
    parser.add_argument("--bind-ro", action="append", default=[], help="HOST:INSIDE, read-only")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = args.root.resolve()
    binds = [(*spec.split(":", 1), False) for spec in args.bind]
    binds += [(*spec.split(":", 1), True) for spec in args.bind_ro]
    try:
        setup_mounts(root, args.kernel or None, binds)  # type: ignore[arg-type]
    except SwarmbootError as error:
        print(f"lchroot: error: {error}", file=sys.stderr)
        return 125
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE"):  # set for this program, not the image's
        os.environ.pop(name, None)
    os.chroot(root)
    os.chdir("/")
    try:
        os.execvp(args.command[0], args.command)
    except FileNotFoundError:
        print(f"lchroot: {args.command[0]}: command not found in the image", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"lchroot: {args.command[0]}: permission denied", file=sys.stderr)
        return 126
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
