"""What the agent writes into the system it boots: the node's own files, never the image's.

The agent writes them (bootagent/nodefiles.py, bootagent/disk/); `image grab` leaves them out of
an image it takes from a booted node (builder/grab.py), so that the image does not carry one
node's name, addresses, keys or disk. tests/unit/test_grab_excludes.py checks that everything
`write_node_files` writes is matched here.

Paths are relative to the root; a trailing "/" is a whole directory; "*" matches within one
component (rsync and fnmatch agree on that much).
"""

from __future__ import annotations

# The node's identity and its view of its network and disks.
NODE_FILES: tuple[str, ...] = (
    "etc/hostname",
    "etc/hosts",
    "etc/machine-id",
    "etc/resolv.conf",  # the node's DHCP answer (or the server's, copied by the agent)
    "var/lib/dbus/machine-id",
    "etc/fstab",  # the disk mode: by the UUIDs of this node's filesystems
    "etc/mdadm/mdadm.conf",  # the disk mode: this node's arrays
    "etc/ssh/ssh_host_*",  # the host keys the server made for this node (docs/security.md)
    "var/lib/systemd/random-seed",
    "var/lib/systemd/credential.secret",
)

# What the agent adds for the boot: network configuration, the booted report (it carries the
# boot's token), the disk mode's installed kernel and initramfs.
AGENT_FILES: tuple[str, ...] = (
    "etc/systemd/network/*-swarmboot-*.network",
    "etc/network/interfaces.d/swarmboot",
    "etc/NetworkManager/system-connections/swarmboot-*.nmconnection",
    "etc/NetworkManager/conf.d/90-swarmboot-network-root.conf",
    "etc/systemd/system/swarmboot-booted.service",
    "etc/systemd/system/*.wants/swarmboot-booted.service",
    # (the seeding service after boot is a runtime unit in /run/systemd/system: never in the root)
    # networkd enabled for the plan's interfaces (when the image's stack is networkd)
    "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
    "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
    "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
    "usr/local/lib/swarmboot/",
    "boot/swarmboot/",
    "boot/grub/",  # the disk mode's GRUB: grub-install's modules and our grub.cfg (this node's UUIDs)
)

# The group's SSH keys (plan.ssh_authorized_keys) go into root's authorized_keys between these
# lines; the rest of the file is the image's and stays as it is.
AUTHORIZED_KEYS = "root/.ssh/authorized_keys"
KEYS_BEGIN = "# >>> swarmboot: the group's SSH keys, written at boot (swarmboot group set --ssh-key-file)"
KEYS_END = "# <<< swarmboot"


def with_keys(text: str, keys: list[str] | tuple[str, ...]) -> str:
    """`text` (an authorized_keys file) with swarmboot's block replaced by `keys` (none: no block)."""
    kept = without_keys(text)
    if not keys:
        return kept
    block = "\n".join([KEYS_BEGIN, *keys, KEYS_END]) + "\n"
    return (kept.rstrip("\n") + "\n" + block) if kept.strip() else block


def without_keys(text: str) -> str:
    """`text` without swarmboot's block (what an image keeps of a node's authorized_keys)."""
    lines, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == KEYS_BEGIN:
            inside = True
        elif inside and line.rstrip("\n") == KEYS_END:
            inside = False
        elif not inside:
            lines.append(line)
    return "".join(lines)
