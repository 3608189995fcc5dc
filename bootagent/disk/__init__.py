"""The `disk` root mode: install the image to the node's local disk(s) and boot from them after.

    discovery.py   the node's disks (pyudev) and what is on them now (pyparted, blkid): Disk values
    planner.py     pure: layout + disks + kept records + firmware -> a DiskPlan, or a refusal
    writers.py     the side effects, in order: stop old arrays, partition table (pyparted),
                   mdadm RAID1, mkfs (only partitions the plan formats)
    image.py       the image into the root filesystem (unsquashfs / tar), fstab, the kernel and
                   initramfs into /boot
    bootloader.py  GRUB for BIOS (bios_grub) and UEFI (ESP, efibootmgr entry + removable path)
    install.py     the steps, read as their list: what the part and root stages call

Plan first, then commit: nothing is written before the whole plan has been computed against the
real disks, printed, and found to keep every kept partition exactly as it was.
"""
