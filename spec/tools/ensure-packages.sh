#!/bin/sh
# Installs the Debian packages given as arguments that are not installed yet (as root), or
# prints the exact apt-get line to run and fails (as another user).
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || apt-get update
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || apt-get install -y --no-install-recommends $missing
else
    echo "missing Debian packages; run:"
    echo "  sudo apt-get install -y$missing"
    exit 1
fi
