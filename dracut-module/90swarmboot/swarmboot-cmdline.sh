#!/bin/sh
# swarmboot: claim root=swarmboot (dracut dies on a root= it does not know) and ask for the
# network (network-legacy: DHCP unless ip= says otherwise). Sourced by dracut: never `exit`.

if [ "$(getarg root=)" = "swarmboot" ]; then
    root=swarmboot
    rootok=1
    if ! getargbool 0 rd.neednet; then
        echo "rd.neednet=1" > /etc/cmdline.d/90-swarmboot-neednet.conf
    fi
    if [ -z "$(getarg ip=)" ]; then
        echo "ip=dhcp" > /etc/cmdline.d/90-swarmboot-ip.conf
    fi
fi
