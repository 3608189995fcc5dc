#!/bin/sh
# swarmboot: run the boot agent once the network is up. It builds the root at /sysroot and
# returns 0 so dracut switches root; after a failure on its last attempt (the rescue shell has
# been offered, bounded by swarmboot.rescue_timeout) it returns non-zero and the node reboots, to
# try again from PXE. Sourced by dracut: never `exit`.

if [ "$(getarg root=)" = "swarmboot" ]; then
    if [ -n "$(getarg swarmboot.ip=)" ] && [ -z "$(getarg ip=)" ]; then
        # iPXE's address: the agent sets it; the link negotiates meanwhile (bootagent/network.py)
        _sb_mac=$(getarg swarmboot.mac=)
        for _sb_nic in /sys/class/net/*; do
            [ "$(cat "$_sb_nic/address" 2> /dev/null)" = "$_sb_mac" ] && ip link set dev "${_sb_nic##*/}" up
        done
        unset _sb_mac _sb_nic
    fi
    info "swarmboot: running the agent"  # on the kernel's clock: the agent's start-up time (lab/timeline.py)
    /usr/lib/swarmboot/agent/swarmboot-agent boot
    _swarmboot_rc=$?
    if [ "$_swarmboot_rc" -ne 0 ]; then
        echo "swarmboot: the boot agent gave up (exit code $_swarmboot_rc); rebooting in 10 s" > /dev/console
        sleep 10
        sync
        echo b > /proc/sysrq-trigger
    fi
    unset _swarmboot_rc
fi
