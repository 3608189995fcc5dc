#!/bin/sh
# swarmboot: claim root=swarmboot (dracut dies on a root= it does not know) and say how the boot
# NIC gets its address. With swarmboot.ip (the address iPXE got by DHCP, expanded in the server's
# script) the agent sets it itself: no second DHCP, no dracut network. Without it (iPXE had none,
# or the server's initramfs_dhcp setting), or with an ip= of the node's own, dracut's network-legacy
# brings the NIC up (DHCP unless ip= says otherwise). Sourced by dracut: never `exit`.

if [ "$(getarg root=)" = "swarmboot" ]; then
    root=swarmboot
    rootok=1
    _sb_ip=$(getarg swarmboot.ip=)
    case "$(getarg ip=):${_sb_ip%%:*}" in
        :*[!0-9.]* | :) _sb_ip="" ;;  # no ip= of its own, and no usable address from iPXE: DHCP
        :*) ;;                         # iPXE's address: the agent sets it (bootagent/network.py)
        *) _sb_ip="" ;;                # an ip= of the node's own: dracut's
    esac
    if [ -z "$_sb_ip" ]; then
        if ! getargbool 0 rd.neednet; then
            echo "rd.neednet=1" > /etc/cmdline.d/90-swarmboot-neednet.conf
        fi
        if [ -z "$(getarg ip=)" ]; then
            echo "ip=dhcp" > /etc/cmdline.d/90-swarmboot-ip.conf
        fi
    fi
    unset _sb_ip
fi
