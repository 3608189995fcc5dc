"""OCI images made by the tests with the real tools: umoci builds layouts and layers from trees,
skopeo writes archives (tests/integration/test_image_import.py, the e2e image)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from builder.treeops import copy_tree, remove_tree

TAG = "t"


def sh(*argv: str, timeout: float = 900) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


def new_layout(where: Path) -> tuple[Path, Path]:
    """An empty OCI layout and its unpacked bundle (umoci init, new, unpack)."""
    layout, bundle = where / "layout", where / "bundle"
    sh("umoci", "init", "--layout", str(layout))
    sh("umoci", "new", "--image", f"{layout}:{TAG}")
    sh("umoci", "unpack", "--image", f"{layout}:{TAG}", str(bundle))
    return layout, bundle


def layout_of_tree(tree: Path, where: Path) -> tuple[Path, Path]:
    """A layout whose one layer is `tree` (copied with cp -a), and its bundle, refreshed so that
    the next `umoci repack` of the bundle records only what changed (whiteouts included)."""
    layout, bundle = new_layout(where)
    (bundle / "rootfs").rmdir()
    copy_tree(tree, bundle / "rootfs")
    sh("umoci", "repack", "--refresh-bundle", "--image", f"{layout}:{TAG}", str(bundle))
    return layout, bundle


def layer_tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A layer by hand: (name, kind, content or link target); kinds file, dir, symlink, hardlink."""
    with tarfile.open(path, "w") as archive:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data
                archive.addfile(info)
            else:
                raw = data.encode()
                info.size, info.mode = len(raw), 0o644
                archive.addfile(info, io.BytesIO(raw))
    return path


def to_archive(layout: Path, archive: Path) -> Path:
    sh("skopeo", "copy", "--quiet", f"oci:{layout}:{TAG}", f"oci-archive:{archive}")
    return archive


def tree_archive(tree: Path, where: Path) -> Path:
    """`tree` as a one-layer OCI archive (where/image.oci.tar)."""
    layout, bundle = layout_of_tree(tree, where)
    remove_tree(bundle)
    archive = to_archive(layout, where / "image.oci.tar")
    remove_tree(layout)
    return archive
