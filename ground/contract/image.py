"""What a packed image gives the boot agent: where the frozen agent sits in the image (pack binds
it there, the dracut module copies it into the initramfs) and where its shared libraries are."""

from __future__ import annotations

# Relative to the image's root; the dracut module (90swarmboot/module-setup.sh) names it too.
AGENT_MOUNT_POINT = "usr/lib/swarmboot/agent"

# Where the agent looks for shared libraries in the initramfs (it has no ldconfig), and where
# pack looks in the image for the ones the bundle takes from it.
LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/lib",
)
