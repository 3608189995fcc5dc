"""image grab's second pass with the real rsync: into an existing image, the image's own files at
the paths the transfer left on the node come back (hard links), never over the node's files, and
no directory the node deleted comes back empty."""

from __future__ import annotations

import os
from pathlib import Path

from builder.grab import GrabFrom, exclusions, filter_text, keep_image_files


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_images_own_files_at_excluded_paths_stay_and_the_nodes_win(tmp_path: Path) -> None:
    image = tree(tmp_path / "image", {
        "etc/motd": "the image's motd\n",  # a group file on the node: left there
        "etc/hosts": "image hosts\n",
        "srv/scratch/keep": "the image's scratch\n",  # the exclude file's path
        "boot/efi/EFI/x": "esp\n",  # a vfat mount on the node
        "etc/golden": "old golden\n",  # the node has a newer one
        "opt/gone/file": "deleted on the node\n",
    })
    node_tree = tree(tmp_path / "staging", {"etc/golden": "node golden\n", "etc/hosts": "node hosts\n"})
    (node_tree / "srv/scratch").mkdir(parents=True)
    own = tmp_path / "mine"
    own.write_text("/srv/scratch/*\n")
    node = GrabFrom("n1", "a", own_files=("/etc/motd",), exclude_file=own)
    rules = filter_text(node, [("/", "overlay"), ("/boot/efi", "vfat")])
    assert "/etc/hosts" in exclusions(node, [])
    keep_image_files(image, node_tree, rules)
    assert (node_tree / "etc/motd").read_text() == "the image's motd\n"
    assert (node_tree / "srv/scratch/keep").read_text() == "the image's scratch\n"
    assert (node_tree / "boot/efi/EFI/x").read_text() == "esp\n"
    assert (node_tree / "etc/golden").read_text() == "node golden\n"
    assert (node_tree / "etc/hosts").read_text() == "node hosts\n"  # what came from the node stays
    assert not (node_tree / "opt").exists()
    assert os.stat(node_tree / "etc/motd").st_ino == os.stat(image / "etc/motd").st_ino  # a link, not a copy
