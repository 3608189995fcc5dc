#!/bin/sh
# Install the Debian packages swarmboot needs, skipping what is already installed.
# Usage: scripts/setup-host.sh   (as root on Debian 12)
set -eu
here=$(dirname "$0")
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: run this as root (it installs Debian packages with apt-get)" >&2
    exit 1
fi
missing=""
for pkg in $(sed -e 's/#.*//' "$here/host-packages.txt"); do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "setup-host: all Debian packages present"
    exit 0
fi
echo "setup-host: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
