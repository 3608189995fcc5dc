"""Import a container image's filesystem: skopeo fetches it into a local OCI layout, every layer
is checked (builder/layer_check.py), then umoci unpacks the layers (whiteouts and opaque
directories applied; owners, modes, xattrs kept).

    tree = import_layers("oci-archive:/srv/compute.tar", work_dir)   # → work_dir/bundle/rootfs

SOURCE is what skopeo calls a transport and a reference; four are taken:

    oci-archive:FILE     an OCI image layout in a tar file (`podman save --format oci-archive`)
    docker-archive:FILE  `docker save` output
    oci:DIR[:TAG]        an OCI image layout directory (`umoci`, `buildah push … oci:DIR`)
    docker://REF         a registry (REF as `docker pull` takes it: registry/name:tag or @digest)
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from builder.layer_check import LayerChecker, Member, member_kind
from ground.errors import CommandError, SwarmbootError, UsageError
from ground.run import require_tool, run

TRANSPORTS = ("oci-archive:", "docker-archive:", "oci:", "docker://")
LOCAL_TAG = "import"
FETCH_TIMEOUT = 3600.0
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class OciImportError(SwarmbootError):
    """The container image could not be read or fetched."""


@dataclass(frozen=True)
class Imported:
    source: str
    digest: str  # the source's manifest digest, as skopeo reports it
    layers: list[str] = field(default_factory=list)  # layer digests, bottom first
    rootfs: Path = Path()


def check_source(source: str) -> str:
    """The SOURCE as given, when its transport is one we take; a local file or directory must exist."""
    if not source.startswith(TRANSPORTS):
        raise UsageError(
            f"cannot import {source!r}: unknown source",
            hint="give oci-archive:FILE, docker-archive:FILE, oci:DIR[:TAG] or docker://REGISTRY/NAME:TAG",
        )
    if source.startswith("docker://"):
        if len(source) == len("docker://"):
            raise UsageError("docker:// needs a reference", hint="e.g. docker://registry.lan/debian:bookworm")
        return source
    transport, _, rest = source.partition(":")
    where, sep, tag = rest.partition(":") if transport == "oci" else (rest, "", "")
    path = Path(where)
    if not path.exists():
        raise UsageError(f"cannot import {source!r}: {path} does not exist",
                         hint="check the path (an absolute one is safest)")
    return f"{transport}:{path.resolve()}{sep}{tag}"


def _skopeo(args: list[str], source: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """skopeo ARGS; a failure says what to check."""
    try:
        return run([require_tool("skopeo"), *args], timeout=timeout)
    except CommandError as exc:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        if detail and "HTTP response to HTTPS client" in detail[-1]:
            raise OciImportError(
                f"the registry of {source} speaks plain HTTP: {detail[-1]}",
                hint="if it is yours and on a trusted network, import with --insecure",
            ) from exc
        raise OciImportError(
            f"cannot read the container image {source}: {detail[-1] if detail else exc}",
            hint="check the archive (is it complete? `skopeo inspect SOURCE`), or the registry's "
            "name, your credentials (`skopeo login`) and that the head node reaches it",
        ) from exc


def _no_tls(option: str, source: str, tls_verify: bool) -> list[str]:
    """A registry over plain HTTP, or with a certificate this host does not trust (--insecure)."""
    return [f"{option}=false"] if not tls_verify and source.startswith("docker://") else []


def source_digest(source: str, tls_verify: bool = True) -> str:
    args = ["inspect", *_no_tls("--tls-verify", source, tls_verify), "--format", "{{.Digest}}", source]
    return _skopeo(args, source, 600).stdout.strip()


def fetch(source: str, layout: Path, tls_verify: bool = True) -> None:
    """Copy the image into the OCI layout directory `layout` (tag LOCAL_TAG); skopeo checks the
    digest of every blob it copies."""
    args = ["copy", "--quiet", *_no_tls("--src-tls-verify", source, tls_verify), source,
            f"oci:{layout}:{LOCAL_TAG}"]
    _skopeo(args, source, FETCH_TIMEOUT)


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, value = digest.partition(":")
    return layout / "blobs" / algorithm / value


def _json_blob(layout: Path, digest: str) -> dict[str, Any]:
    return dict(json.loads(_blob(layout, digest).read_text()))


def layer_digests(layout: Path) -> list[str]:
    """The digests of the layers of the layout's LOCAL_TAG image, bottom first."""
    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == LOCAL_TAG:
            manifest = _json_blob(layout, entry["digest"])
            return [str(layer["digest"]) for layer in manifest.get("layers", [])]
    raise OciImportError(f"the OCI layout {layout} has no image tagged {LOCAL_TAG!r} after the copy")


def _members(stream: IO[bytes]) -> list[Member]:
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        return [Member(info.name, member_kind(info), info.linkname) for info in archive]


def read_members(blob: Path) -> list[Member]:
    """The tar headers of one layer blob (plain, gzip or zstd)."""
    with open(blob, "rb") as raw:
        magic = raw.read(4)
    if magic.startswith(ZSTD_MAGIC):
        with subprocess.Popen(["zstd", "-dc", "--", str(blob)], stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            members = _members(proc.stdout)
        return members
    if magic.startswith(GZIP_MAGIC):
        import gzip

        with gzip.open(blob, "rb") as stream:
            return _members(stream)  # type: ignore[arg-type]
    with open(blob, "rb") as stream:
        return _members(stream)


def check_layers(layout: Path, digests: list[str]) -> int:
    """Refuse the image when a layer writes outside the root (UnsafeLayer); the member count."""
    checker = LayerChecker()
    for number, digest in enumerate(digests, 1):
        what = f"layer {number} of {len(digests)} ({digest[:19]}…)"
        try:
            members = read_members(_blob(layout, digest))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise OciImportError(
                f"{what} is not a readable tar archive: {exc}",
                hint="the container image is damaged: build or save it again (nothing was imported)",
            ) from exc
        checker.check(number, what, members)
    return checker.members


def unpack(layout: Path, bundle: Path) -> Path:
    """umoci unpacks the layers into bundle/rootfs (as root: owners kept); return that."""
    try:
        run([require_tool("umoci"), "--log", "error", "unpack", "--keep-dirlinks",
             "--image", f"{layout}:{LOCAL_TAG}", str(bundle)], timeout=FETCH_TIMEOUT)
    except CommandError as exc:
        raise OciImportError(
            f"umoci could not unpack the image: {(exc.stderr or str(exc)).strip()[-400:]}",
            hint="the container image is damaged or uses a layer format umoci does not know",
        ) from exc
    return bundle / "rootfs"


def import_layers(source: str, work: Path, tls_verify: bool = True) -> Imported:
    """Fetch, check and unpack `source` under `work` (layout/, bundle/)."""
    digest = source_digest(source, tls_verify)
    layout = work / "layout"
    fetch(source, layout, tls_verify)
    digests = layer_digests(layout)
    check_layers(layout, digests)
    rootfs = unpack(layout, work / "bundle")
    return Imported(source=source, digest=digest, layers=digests, rootfs=rootfs)
