#!/usr/bin/env bash
# The demo, from a fresh Debian machine as root: install, boot a sandbox host, show it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
fab=.venv/bin/fab
state=${AYNA_FAB_SANDBOX_DIR:-/var/lib/ayna-fab/sandbox}

echo "== fab sandbox.up --count 1"
$fab sandbox.up --count 1
echo
echo "== the host over strict SSH (its key is in $state/known_hosts)"
ssh -i "$state/id_ed25519" -o UserKnownHostsFile="$state/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -p 2201 root@127.0.0.1 \
    'echo "host: $(hostname)  systemd: $(systemctl is-system-running)  PID 1: $(ps -o comm= -p 1)";
     echo "postgresql: $(systemctl is-active postgresql@15-main)  redis: $(redis-cli ping)";
     echo "wheelhouse: $(ls /srv/wheelhouse | wc -l) wheels, read-only at /srv/wheelhouse"'
echo
echo "The host keeps running. Explore it, then: $fab sandbox.down"
