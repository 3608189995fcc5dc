#!/bin/sh
# swarmboot: just before switch_root, stop the seeder (it writes its last counters to
# /run/swarmboot/seeder.json), the rescue SSH server and the boot-files server (the agent stops
# it itself; this is for a boot that went another way), and free an unpacked tar.zst.
# /run/swarmboot moves into the booted system with /run. Sourced by dracut: never `exit`.

if [ -d /run/swarmboot ]; then
    info "swarmboot: stopping the seeder"  # on the kernel's clock (lab/timeline.py)
    for _sb in seeder dropbear boot-files; do
        [ -s "/run/swarmboot/$_sb.pid" ] || continue
        read -r _sb_pid < "/run/swarmboot/$_sb.pid"
        kill -TERM "$_sb_pid" 2> /dev/null
        _sb_i=0
        while [ "$_sb" != dropbear ] && [ $_sb_i -lt 50 ] && kill -0 "$_sb_pid" 2> /dev/null; do
            grep -q '"stopped": true' "/run/swarmboot/$_sb.json" 2> /dev/null && break  # a zombie by now
            sleep 0.1
            _sb_i=$((_sb_i + 1))
        done
        kill -KILL "$_sb_pid" 2> /dev/null
        rm -f "/run/swarmboot/$_sb.pid"
    done
    if [ -s /run/swarmboot/cleanup-files ]; then
        while read -r _sb_f; do
            rm -f -- "$_sb_f"
        done < /run/swarmboot/cleanup-files
    fi
    unset _sb _sb_pid _sb_i _sb_f
fi
