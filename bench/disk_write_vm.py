"""The disk install's image write step against a plain `unsquashfs` of the same image onto the same
disk, in the same virtual machine, side by side (issue goal: <= 1.2x).

One QEMU (TCG) VM boots a packed version's own kernel and initramfs, with the node's settings from
the lab (1 CPU, 2 GiB, virtio disks, cache=unsafe), and stops in dracut before the root is mounted
(`rd.break=pre-mount`), where the agent's install runs. Two disks: /dev/vda, the blank target
(sparse), and /dev/vdb, an ext4 holding the version's image.squashfs. The image is copied into the
VM's RAM once (/run), as the agent holds a downloaded image, so both runs read the same bytes from
memory. Then, alternating (baseline, agent, baseline, agent, ...), each run makes a fresh ext4 on
/dev/vda, mounts it, syncs and drops the page cache, and times on the guest's clock
(/proc/uptime):
- baseline: `unsquashfs -d /mnt/root IMAGE` then `sync`;
- agent:    the command bootagent/disk/image.py `write_argv` gives the install (a kept /data left
            out), then `sync`: what the install's `write` timing covers.
The ratio is agent / baseline per pair and of the medians.

    python bench/disk_write_vm.py VERSION_DIR [--runs 3]

VERSION_DIR is a packed version: $SWARMBOOT_HOME/images/<name>/versions/<N> (vmlinuz,
initramfs.img, image.squashfs). Needs root (mke2fs -d needs nothing more, QEMU runs as root).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootagent.disk.image import write_argv
from ground.run import run
from lab.vm import NoNetwork, Vm, VmSpec

GiB = 1 << 30
IMAGE_IN_RAM = "/run/image.squashfs"
CMDLINE = "console=ttyS0 root=/dev/vdb rootfstype=ext4 rd.break=pre-mount rd.shell=1 quiet"
PROMPT = r"pre-mount:/# "


class Guest:
    """Commands typed into the VM's dracut shell, each ending with a numbered marker and its status."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        self.count = 0
        self.offset = 0

    def sh(self, command: str, timeout: float = 600) -> str:
        self.count += 1
        self.vm.type(f"{command}; echo @@{self.count}:$?@@\n")
        done = self.vm.wait_for(rf"@@{self.count}:(\d+)@@", timeout=timeout, start_at=self.offset)
        text = self.vm.console_text()[self.offset : done.start()]
        self.offset = done.end()
        if done.group(1) != "0":
            raise RuntimeError(f"in the VM, `{command}` exited {done.group(1)}:\n{text[-2000:]}")
        return text

    def timed(self, command: str) -> float:
        self.sh("umount /mnt 2>/dev/null; mkfs.ext4 -F -q /dev/vda && mkdir -p /mnt && "
                "mount -t ext4 /dev/vda /mnt")
        self.sh("sync; echo 3 > /proc/sys/vm/drop_caches")
        text = self.sh(
            f"read a _ < /proc/uptime; {command} && sync; read b _ < /proc/uptime; echo \"T=$a:$b=\"",
            timeout=3600,
        )
        start, end = re.findall(r"T=([\d.]+):([\d.]+)=", text)[-1]
        return float(end) - float(start)


def source_disk(image: Path, work: Path) -> Path:
    """An ext4 disk image holding the squashfs (mke2fs -d: no mount on the host)."""
    tree = work / "src"
    tree.mkdir()
    try:
        os.link(image, tree / "image.squashfs")
    except OSError:  # another file system
        shutil.copyfile(image, tree / "image.squashfs")
    disk = work / "source.img"
    size = image.stat().st_size + image.stat().st_size // 5 + (64 << 20)
    run(["mke2fs", "-q", "-t", "ext4", "-d", str(tree), str(disk), f"{size >> 10}k"], timeout=600)
    return disk


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "version_dir", type=Path, help="a packed version (vmlinuz, initramfs.img, image.squashfs)"
    )
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument(
        "--memory-mb", type=int, default=2048, help="the VM's memory (default 2048, as a lab node)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"), help="where the disk files live")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("disk_write_vm: needs root", file=sys.stderr)
        return 2
    version = args.version_dir
    image = version / "image.squashfs"
    for needed in (version / "vmlinuz", version / "initramfs.img", image):
        if not needed.is_file():
            print(f"disk_write_vm: {needed} is missing: give a packed squashfs version's directory",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-disk-vm-") as tmp:
        work = Path(tmp)
        source = source_disk(image, work)
        target = work / "target.img"
        with target.open("wb") as handle:
            handle.truncate(max(4 * GiB, image.stat().st_size * 6))
        spec = VmSpec(name="bench", mac="", tap="", workdir=work, memory_mb=args.memory_mb,
                      deadline_s=7200, disks=(target, source),
                      kernel=(version / "vmlinuz", version / "initramfs.img", CMDLINE))
        vm = Vm(spec, NoNetwork()).start()
        try:
            started = time.monotonic()
            vm.wait_for(PROMPT, timeout=600)
            print(f"VM at its dracut shell after {time.monotonic() - started:.0f} s", flush=True)
            guest = Guest(vm)
            guest.sh("mkdir -p /src && mount -o ro -t ext4 /dev/vdb /src && "
                     f"cp /src/image.squashfs {IMAGE_IN_RAM} && umount /src")
            agent = shlex.join(write_argv(Path(IMAGE_IN_RAM), "squashfs", Path("/mnt"), ["data"]))
            commands = {"unsquashfs": f"unsquashfs -d /mnt/root {IMAGE_IN_RAM} >/dev/null", "agent": agent}
            times: dict[str, list[float]] = {kind: [] for kind in commands}
            for i in range(args.runs):
                for kind, command in commands.items():
                    seconds = guest.timed(command)
                    times[kind].append(seconds)
                    print(f"run {i + 1}: {kind:<10} {seconds:6.2f} s", flush=True)
        finally:
            vm.stop()
        base, ours = statistics.median(times["unsquashfs"]), statistics.median(times["agent"])
        pairs = [a / b for a, b in zip(times["agent"], times["unsquashfs"], strict=True)]
        print(f"image {image} ({image.stat().st_size / 2**20:.0f} MiB) from the VM's RAM onto a fresh ext4 "
              f"on its virtio disk, QEMU TCG, 1 CPU, {args.memory_mb} MiB, sync included")
        print(f"the agent's command: {agent}")
        print(f"median: plain unsquashfs {base:.2f} s, the agent's write step {ours:.2f} s: "
              f"{ours / base:.2f}x (pairs: {', '.join(f'{p:.2f}' for p in pairs)}; goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
