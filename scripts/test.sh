#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests on sandbox hosts (needs root).
# With CI=true a missing prerequisite fails the end-to-end tests instead of skipping them.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit $?
.venv/bin/python -m pytest -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit "$rc"
