"""`swarmboot image …` (filled in by the image-builder work)."""

from __future__ import annotations

import argparse

from swarmboot.cli import add_object


def register(subparsers: argparse._SubParsersAction) -> None:
    add_object(subparsers, "image", "build, enter, pack and manage OS images")
