"""The packages every image gets: the one list (the boot-agent work may add to it).

Keep this the only place that names them: `create` installs them, the test fixture's cache key
hashes them, docs/builder.md points here.
"""

from __future__ import annotations

# The kernel and the initramfs builder. dracut is diverted to a no-op while the image is created
# (the initramfs is built once, at pack time: see builder/steps.py).
KERNEL_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "dracut",
    "dracut-network",  # the network-legacy dracut module (DHCP in the initramfs)
)

# What a node needs at boot: the init system, and the tools the dracut module and the boot agent
# call inside the initramfs (FACTS: procps, iproute2, isc-dhcp-client and arping for
# network-legacy; dropbear for service mode; zstd and curl for downloads; e2fsprogs and
# util-linux for disk roots).
BOOT_PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "udev",
    "kmod",
    "iproute2",
    "isc-dhcp-client",
    "procps",
    "iputils-arping",  # dracut-network needs it (the plain "arping" package conflicts)
    "dropbear-bin",
    "zstd",
    "curl",
    "ca-certificates",
    "e2fsprogs",
    "util-linux",
    "util-linux-extra",  # fincore: what a node's boot read into its page cache (the nfs mode's tuning)
)

# The disk root mode (docs/agent.md, "The disk mode"): what the agent runs in the initramfs to
# partition, mirror, format and fill a disk (the dracut module takes the binaries from the image),
# and GRUB for BIOS and UEFI, which the agent installs from inside the installed root. grub2-common
# has grub-install; grub-pc / grub-efi-amd64 are left out on purpose (their maintainer scripts
# would install to the build host's view of a disk).
DISK_PACKAGES: tuple[str, ...] = (
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub2-common",
    "efibootmgr",
    "mdadm",
    "libparted2",  # pyparted in the frozen agent links against it
    "fdisk",  # sfdisk, for the rescue shell
    "dosfstools",
    "xfsprogs",
    "squashfs-tools",  # unsquashfs writes a squashfs image onto the disk
)

BASE_PACKAGES: tuple[str, ...] = KERNEL_PACKAGES + BOOT_PACKAGES + DISK_PACKAGES


def image_packages(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """BASE_PACKAGES followed by `extra`, without duplicates, in a stable order."""
    seen: dict[str, None] = {}
    for name in (*BASE_PACKAGES, *extra):
        seen.setdefault(name, None)
    return list(seen)


def check_package_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Reject names apt would take for options or that are not Debian package names."""
    import re

    from ground.errors import UsageError

    pattern = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:[=/][A-Za-z0-9+.:~_-]+)?")  # fullmatch, not `$`
    bad = [name for name in names if not pattern.fullmatch(name)]
    if bad:
        raise UsageError(
            f"invalid package name(s): {', '.join(map(repr, bad))}",
            hint="Debian package names: lower-case letters, digits, '+', '-', '.'; "
            "optionally NAME=VERSION or NAME/RELEASE",
        )
    return list(names)
