#!/usr/bin/env bash
# The demo, from a fresh Debian machine as root: install, boot a sandbox host, set it up,
# deploy the demo project, deploy a change, watch a broken release roll itself back,
# roll back by hand, and show the fleet's status. Leaves the host running to explore.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/install.sh
fab="$repo/.venv/bin/fab"
state=${AYNA_FAB_SANDBOX_DIR:-/var/lib/ayna-fab/sandbox}
demo=${AYNA_FAB_DEMO_DIR:-/var/tmp/ayna-fab-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
on_host() {
  ssh -i "$state/id_ed25519" -o UserKnownHostsFile="$state/known_hosts" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -p "$port" root@127.0.0.1 "$@"
}
serving() { on_host 'curl -s http://127.0.0.1:8130/health/'; echo; }
commit() { git -C "$demo/uavcrew" add -A && git -C "$demo/uavcrew" -c user.name=demo -c user.email=demo@localhost commit -qm "$1"; }

say "fab sandbox.up --count 1: a Debian host with systemd, sshd, PostgreSQL and Redis"
$fab sandbox.up --count 1
# Where sandbox1 answers SSH, as the sandbox's own settings (AYNA_FAB_SANDBOX_*) made it.
port=$($fab sandbox.status --json | "$repo/.venv/bin/python" -c \
  'import json, sys; print(next(h["ssh"] for h in json.load(sys.stdin) if h["name"] == "sandbox1").rsplit(":", 1)[1])')

say "a git copy of the demo project to deploy from: $demo/uavcrew"
rm -rf "$demo" && mkdir -p "$demo"
cp -r examples/uavcrew "$demo/uavcrew"
rm -rf "$demo/uavcrew/.venv"
git -C "$demo/uavcrew" init -q -b main && commit "uavcrew"
cat > "$demo/hosts.toml" <<TOML
[defaults]
identity_file = "$state/id_ed25519"
known_hosts = "$state/known_hosts"

[projects.uavcrew]
source = "$demo/uavcrew"
env = "production"
env_file = "$repo/examples/uavcrew.sandbox.env"
create_database = true

[hosts.sandbox1]
hostname = "127.0.0.1"
port = $port
projects = ["uavcrew"]
TOML
export AYNA_FAB_HOSTS="$demo/hosts.toml"

say "fab -H sandbox1 setup: deploy user, layout, uv, .env, database, units, sudoers"
$fab -H sandbox1 setup
say "fab -H sandbox1 validate: the standard's seven checks on the host"
$fab -H sandbox1 validate

say "fab -H sandbox1 deploy"
$fab -H sandbox1 deploy
serving

say "change the code, commit, deploy again (only the changed files travel)"
python3 "$demo/uavcrew/failure_modes.py" code-change --project-dir "$demo/uavcrew" >/dev/null && commit "new banner"
$fab -H sandbox1 deploy
serving

say "break the health check on a branch and deploy it: it fails after the flip and rolls itself back"
git -C "$demo/uavcrew" checkout -q -b broken
python3 "$demo/uavcrew/failure_modes.py" health-500 --project-dir "$demo/uavcrew" >/dev/null && commit "broken health"
git -C "$demo/uavcrew" checkout -q main
if $fab -H sandbox1 deploy --ref broken; then echo "unexpected: the broken release went live"; exit 1; fi
serving

say "fab -H sandbox1 rollback: back to the previous good release, by hand"
$fab -H sandbox1 rollback
serving

say "fab status and fab -H sandbox1 releases"
$fab status
$fab -H sandbox1 releases

say "done. The host keeps running; AYNA_FAB_HOSTS=$demo/hosts.toml, then: $fab sandbox.down"
