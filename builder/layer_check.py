"""Container image layers checked before anything is unpacked (pure logic over tar headers).

umoci unpacks with every path clamped inside the bundle, so a hostile layer cannot write outside
it; but it does so silently: `../../etc/cron.d/x` lands in the image's own /etc/cron.d, and a
file written through a symlink to `/etc` lands in the image's /etc. An image an administrator
imports should not contain what its layers did not say plainly, so such a layer is refused, by
name, before umoci runs. Refused:

  - a member or hard-link target that is absolute or has a `..` component;
  - a member written through a symlink (set by this layer or a lower one) whose target is
    absolute or climbs above the root: what a naive extractor follows out of the tree.

Relative symlinks that stay inside the tree (Debian's `bin -> usr/bin`) are followed, as umoci
does with --keep-dirlinks. Whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) remove
what lower layers had, symlinks included.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from ground.errors import SwarmbootError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINK_HOPS = 40


class UnsafeLayer(SwarmbootError):
    """A layer that would write outside the image's root."""


@dataclass(frozen=True)
class Member:
    """One tar header: its name, its kind and, for links, their target."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "other" (devices, fifos)
    target: str = ""


def member_kind(info: tarfile.TarInfo) -> str:
    """A tar header's kind, as Member.kind names it."""
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.isdir():
        return "dir"
    if info.isreg():
        return "file"
    return "other"


def clean_name(name: str) -> list[str] | None:
    """The components of a member name (`./a/b/` → [a, b]); None when absolute or with `..`."""
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return parts


class LayerChecker:
    """Feed it the layers in order, bottom first; it raises UnsafeLayer on the first bad member."""

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, int]] = {}  # path → (symlink target, layer index)
        self.members = 0

    def check(self, layer: int, what: str, members: list[Member] | tuple[Member, ...]) -> None:
        """`what` names the layer in messages (its number and digest)."""
        for member in members:
            self.members += 1
            self._check_member(layer, what, member)

    def _refuse(self, what: str, member: Member, why: str) -> UnsafeLayer:
        return UnsafeLayer(
            f"{what} is refused: {member.name!r} {why}",
            hint="a layer must only write inside the image's root: rebuild the container image "
            "without it (nothing was imported)",
        )

    def _check_member(self, layer: int, what: str, member: Member) -> None:
        parts = clean_name(member.name)
        if parts is None:
            raise self._refuse(what, member, "is a path outside the image's root (absolute or with '..')")
        if not parts:
            return  # the layer's root directory itself
        parent, escape = self.resolve(parts[:-1])
        if escape:
            raise self._refuse(what, member, f"is written through the symlink {escape}, out of the image")
        leaf = parts[-1]
        if member.kind == "hardlink":
            target = clean_name(member.target)
            if target is None or not target:
                raise self._refuse(what, member, f"is a hard link to {member.target!r}, outside the image")
            _, escape = self.resolve(target[:-1])
            if escape:
                raise self._refuse(what, member, f"is a hard link through the symlink {escape}")
        path = "/".join([*parent, leaf])
        if leaf == OPAQUE:
            self._drop_under("/".join(parent), below=layer)
        elif leaf.startswith(WHITEOUT):
            self._drop("/".join([*parent, leaf[len(WHITEOUT) :]]))
        elif member.kind == "symlink":
            self._drop(path)
            self.links[path] = (member.target, layer)
        elif member.kind == "dir" and path in self.links:
            pass  # a directory over a symlink keeps the symlink (umoci --keep-dirlinks)
        else:
            self._drop(path)

    def _drop(self, path: str) -> None:
        self.links.pop(path, None)
        self._drop_under(path, below=None)

    def _drop_under(self, path: str, below: int | None) -> None:
        prefix = path + "/" if path else ""
        for key in [k for k, (_, lay) in self.links.items() if k.startswith(prefix) and k != path]:
            if below is None or self.links[key][1] < below:
                del self.links[key]

    def resolve(self, parts: list[str]) -> tuple[list[str], str]:
        """A directory path resolved through the symlinks so far: (its components, "" or the
        symlink that leads out of the tree, as `path -> target`)."""
        done: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    return done, "(a chain that climbs above the root)"
                done.pop()
                continue
            key = "/".join([*done, part])
            link = self.links.get(key)
            if link is None:
                done.append(part)
                continue
            target = link[0]
            hops += 1
            if hops > MAX_LINK_HOPS:
                return done, f"{key} -> {target} (more than {MAX_LINK_HOPS} symlinks)"
            if target.startswith("/"):
                return done, f"{key} -> {target}"
            climbed = self._climbs_out(done, target)
            if climbed:
                return done, f"{key} -> {target}"
            todo = target.split("/") + todo
        return done, ""

    @staticmethod
    def _climbs_out(base: list[str], target: str) -> bool:
        depth = len(base)
        for part in target.split("/"):
            if part == "..":
                depth -= 1
                if depth < 0:
                    return True
            elif part not in ("", "."):
                depth += 1
        return False
