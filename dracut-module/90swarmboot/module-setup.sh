#!/bin/bash
# swarmboot: the frozen boot agent in the initramfs (docs/agent.md, "dracut module").
#
# Included only when asked for (`dracut --add swarmboot`) and only when the frozen agent is at
# /usr/lib/swarmboot/agent in the image (`swarmboot image pack` binds the bundle there).
# Meant for dracut's classic shell init: build with --omit "systemd systemd-initrd dracut-systemd …"
# (see docs/agent.md), so hooks run on the console and the rescue shell owns it.

SWARMBOOT_AGENT=/usr/lib/swarmboot/agent

check() {
    if [[ ! -x $dracutsysrootdir$SWARMBOOT_AGENT/swarmboot-agent ]]; then
        derror "swarmboot: no frozen agent at $SWARMBOOT_AGENT (swarmboot image pack binds it there)"
        return 1
    fi
    return 255
}

depends() {
    # `network` provides net-lib.sh and picks the handler: network-legacy (dhclient), which must
    # be included first (dracut --add network-legacy) or it picks systemd-networkd.
    echo network-legacy network
    return 0
}

installkernel() {
    # nfs, nfsv4 (and sunrpc through them): the nfs root mode's kernel client, in every initramfs
    hostonly='' instmods loop squashfs overlay raid1 md_mod efivarfs nfs nfsv4
}

install() {
    local f lib
    # The frozen agent, as it is (onedir: the executable and _internal/).
    mkdir -p "$initdir/usr/lib/swarmboot"
    cp -a "$dracutsysrootdir$SWARMBOOT_AGENT" "$initdir/usr/lib/swarmboot/"
    # dracut does not follow the shared libraries of .so files that are not executable (Python
    # extension modules): install what ldd lists for every binary of the bundle, from the image.
    while IFS= read -r -d '' f; do
        for lib in $(ldd "$f" 2> /dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do
            case $lib in
                "$dracutsysrootdir$SWARMBOOT_AGENT"/*) ;;
                *) inst_library "$lib" ;;
            esac
        done
    done < <(find "$dracutsysrootdir$SWARMBOOT_AGENT" -type f \( -name '*.so*' -o -name swarmboot-agent \) -print0)
    # pyudev loads libudev with ctypes: no ELF dependency names it.
    inst_libdir_file "libudev.so.1"
    # The tools the agent runs, and the rescue shell's SSH server (dropbear-bin in the image).
    inst_multiple losetup mount umount mkdir sh setsid ip tar zstd sync sleep
    inst_multiple -o dropbear dropbearkey findmnt lsblk less
    # The disk mode (bootagent/disk/): partition, mirror, format, fill, and the boot entry. GRUB
    # itself runs inside the installed root (the image carries it), through chroot.
    inst_multiple -o blkid blockdev wipefs partx sfdisk udevadm chroot mkfs.ext4 mke2fs mkfs.xfs mkfs.vfat \
        mkswap mdadm unsquashfs efibootmgr
    # Name NICs in the initramfs as the booted system will (ens3, not eth0): without the .link
    # files udev keeps the kernel's names, and the booted system's udev cannot rename a NIC that
    # is up (then systemd-networkd never configures it).
    inst_multiple -o /usr/lib/systemd/network/99-default.link /usr/lib/systemd/network/73-usb-net-by-mac.link
    inst_multiple -o /etc/ssl/certs/ca-certificates.crt  # the agent's https:// servers are checked against it
    # The image's root keys: SSH into the rescue shell works even before the plan arrives.
    if [[ -s $dracutsysrootdir/root/.ssh/authorized_keys ]]; then
        inst_simple "$dracutsysrootdir/root/.ssh/authorized_keys" /root/.ssh/authorized_keys.image
    fi
    inst_hook cmdline 90 "$moddir/swarmboot-cmdline.sh"
    inst_hook pre-mount 50 "$moddir/swarmboot-pre-mount.sh"
    inst_hook cleanup 05 "$moddir/swarmboot-cleanup.sh"
}
