#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (the list is [tool.mutmut] in pyproject.toml):
# mutmut makes one-line bugs in them and runs the unit tests that reach each one; a mutant that
# no test kills is listed. docs/mutation-report.md records the survivors and why each is
# acceptable or which test now kills it.
#
#   bash scripts/mutation.sh                                # every module in the list
#   bash scripts/mutation.sh 'ayna_fab.hostprog.lock*'      # one module's mutants
#
# Not part of CI: on a 2-core machine one module takes minutes, the whole list about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
.venv/bin/python -m pip install -q 'mutmut==3.8.1'
# The host program runs in subprocesses (python3 -c, as on a host): they import mutmut's
# trampolines from the mutated copy, so they need mutmut on their path too.
PYTHONPATH="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
rm -rf mutants
.venv/bin/mutmut run --max-children "$(nproc)" "$@"
.venv/bin/mutmut results
