# PYTHON_ARGCOMPLETE_OK
"""`swarmboot`: the administrator's console. One subcommand per object (image, node, group, …).

Each module in COMMAND_MODULES defines `register(subparsers)`, adding its parsers and setting
`handler=function(args, settings) -> int | None` on each leaf. Errors from library code arrive as
SwarmbootError and leave here as one clear message and an exit code.

`--server URL` sends the inventory verbs (those that set `remote=True`: network, switch, group,
node, inventory) to a server's API instead of this host's database (swarmboot/cli/backend.py);
the others (image, serve, dnsmasq, agent) run on the head node itself. Tab completion: argcomplete
(`make setup` installs it for bash and zsh).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from ground import __version__
from ground.config import load_settings
from ground.errors import SwarmbootError, UsageError
from ground.inputs import printable

# Subcommand modules, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "swarmboot.cli.image",
    "swarmboot.cli.network",
    "swarmboot.cli.switch",
    "swarmboot.cli.group",
    "swarmboot.cli.node",
    "swarmboot.cli.power",
    "swarmboot.cli.inventory",
    "swarmboot.cli.serve",
    "swarmboot.cli.dnsmasq",
    "swarmboot.cli.agent",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmboot",
        description="Build OS images once; boot a cluster from them by BitTorrent.",
    )
    parser.add_argument("--version", action="version", version=f"swarmboot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    parser.add_argument(
        "--server",
        metavar="URL",
        help="work on the inventory of the server at URL through its API (default: $SWARMBOOT_REMOTE; "
        "none: this host's database); the token: $SWARMBOOT_TOKEN or --token-file",
    )
    parser.add_argument(
        "--token-file", metavar="FILE", help="file with the server's admin token ($SWARMBOOT_TOKEN_FILE)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's tab completion (argcomplete) and exit; nothing when not completing."""
    import os

    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _complete(parser)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # An object without a verb (`swarmboot image`) prints that object's help.
        (getattr(args, "help_parser", None) or parser).print_help()
        return 2
    if argv is None:  # the program itself (not a test calling main): SIGTERM unwinds like Ctrl-C
        signal.signal(signal.SIGTERM, _terminated)
    try:
        _check_remote(args)
        settings = load_settings()
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper()),
            format="%(message)s",
        )
        return int(handler(args, settings) or 0)
    except SwarmbootError as error:
        print(f"swarmboot: error: {printable(str(error), multiline=True)}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"swarmboot: error: the disk is full{where}: {error.strerror}\n  hint: free some space "
              "(df -h shows where) and run the command again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("swarmboot: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("swarmboot: stopped (SIGTERM)", file=sys.stderr)
        return 143


class Terminated(BaseException):
    """SIGTERM: the commands being waited for are stopped, the work unwinds (staging removed)."""


def _terminated(signum: int, frame: object) -> None:
    from ground.run import stop_children

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
    stop_children()
    raise Terminated


def _check_remote(args: argparse.Namespace) -> None:
    import os

    from swarmboot.cli.backend import SERVER_ENV

    remote = args.server or (args.token_file and not os.environ.get(SERVER_ENV))
    if remote and not getattr(args, "remote", False):
        if not args.server:
            raise UsageError("--token-file goes with --server URL")
        verb = " ".join(x for x in (args.command, getattr(args, "verb", None)) if x)
        raise UsageError(
            f"`swarmboot {verb}` runs on the head node itself, not through --server",
            hint="--server works with the inventory verbs: network, switch, group, node, inventory",
        )


def add_object(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Add an object (`image`, `node`…) and return the subparsers for its verbs."""
    obj = subparsers.add_parser(name, help=help, description=help)
    obj.set_defaults(help_parser=obj)
    return obj.add_subparsers(dest="verb", metavar="VERB")


if __name__ == "__main__":
    sys.exit(main())
