"""`lchroot IMAGE [COMMAND …]`: a shell or a command inside an image (= `swarmboot image shell`).

Mounts live in a private mount namespace (nothing stays mounted on the host, whatever happens),
package scripts start no daemon, `uname -r` reports the image's kernel, and the image is locked
while the command runs so a pack cannot race it. The exit code is the command's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ground.errors import SwarmbootError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lchroot", description="Run a shell or a command inside a swarmboot image."
    )
    parser.add_argument("image", help="image name")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command (default: a login shell)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from builder.manage import shell
    from ground.config import load_settings

    try:
        shell(load_settings(), args.image, list(args.command))
    except SwarmbootError as error:
        print(f"lchroot: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0  # not reached: shell() execs the command


if __name__ == "__main__":
    sys.exit(main())
