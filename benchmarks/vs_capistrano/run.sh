#!/usr/bin/env bash
# One command from a clean checkout, as root: ayna-fab's own install, then the comparison
# (which installs Debian's capistrano package itself). Arguments go to run.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install.sh
exec .venv/bin/python benchmarks/vs_capistrano/run.py "$@"
