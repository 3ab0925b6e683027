#!/usr/bin/env bash
# Everything ayna-fab and its tests need on a fresh Debian machine, as root. Idempotent.
#   - Debian packages for the sandbox hosts (systemd-nspawn, debootstrap, ...)
#   - the tool's own virtualenv in .venv, pinned by uv.lock
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(systemd-container debootstrap iproute2 openssh-client git rsync curl ca-certificates
              python3 python3-venv)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.9'
fi
# The lock pins fabric, invoke, paramiko, rich, python-dotenv and the test tools.
# Bytecode is compiled here, as pip does on install: `fab` starts in about half the time
# where Python may not write it at run time (PYTHONDONTWRITEBYTECODE, a read-only checkout),
# which would otherwise compile some 240 modules from source at every start.
# ayna-fab itself is reinstalled every time (editable: about 3 s), so its entry points, such as the
# `ayna-fab` command, follow pyproject.toml even in a .venv made before they were added.
.venv/bin/uv sync --quiet --frozen --extra dev --compile-bytecode --python .venv/bin/python --reinstall-package ayna-fab
.venv/bin/python -m compileall -q -j 0 ayna_fab fabfile.py >/dev/null
echo "install.sh: ready"
