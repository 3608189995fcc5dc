#!/bin/sh
# Usage: divert-dracut.sh ROOTFS
# Make /usr/bin/dracut in the image a no-op while the image is created (also mmdebstrap's
# --essential-hook, so it runs before the kernel and dracut are unpacked). Debian's
# /etc/kernel/postinst.d/dracut and dracut's "update-initramfs" trigger both call
# /usr/bin/dracut: without this, installing linux-image-amd64 and dracut builds the initramfs
# twice (~170 s). The real dracut waits at /usr/bin/dracut.swarmboot-real until
# builder/steps.py (configure/80-undivert-dracut) puts it back; pack builds the initramfs once.
set -eu
root=$1
if chroot "$root" dpkg-divert --list /usr/bin/dracut | grep -q swarmboot-real; then
    exit 0
fi
chroot "$root" dpkg-divert --local --rename --divert /usr/bin/dracut.swarmboot-real --add /usr/bin/dracut
mkdir -p "$root/usr/bin"
cat > "$root/usr/bin/dracut" <<'NOOP'
#!/bin/sh
echo "dracut: skipped while swarmboot creates the image (the initramfs is built by 'swarmboot image pack')" >&2
exit 0
NOOP
chmod 0755 "$root/usr/bin/dracut"
