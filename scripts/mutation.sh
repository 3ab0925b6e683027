#!/usr/bin/env bash
# Mutation testing of the safety-critical modules (the list is [tool.mutmut] in pyproject.toml):
# mutmut makes one-line bugs in them and runs the unit tests that reach each one; a mutant that
# no test kills is listed. docs/mutation-report.md records the survivors and why each is
# acceptable or which test now kills it.
#
#   bash scripts/mutation.sh                       # every module in the list, one after another
#   bash scripts/mutation.sh health finish         # those modules (a name, or a path from the list)
#   MUTATION_CHILDREN=1 nice -n 19 bash scripts/mutation.sh store   # gentler on a shared machine
#
# One module at a time, each in its own copy of the repository under $MUTATION_DIR (default
# /tmp/ayna-fab-mutation/<module>) whose pyproject names only that module: the host program is
# sent to a host as one `python3 -c` argument, and with several of its modules mutated at once
# (mutmut adds a trampoline per function) it outgrows Linux's 128 KiB limit for one argument.
# Each copy is kept: `cd` into it and run `.venv/bin/mutmut show <mutant>` (the path printed
# at its end) to read a survivor. Not part of CI: on a 2-core machine a module takes minutes to
# tens of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -x .venv/bin/python ] || bash scripts/install.sh
.venv/bin/python -m pip install -q 'mutmut==3.8.1'
# The host program runs in subprocesses (python3 -c, as on a host): they import mutmut's
# trampolines from the mutated copy, so they need mutmut on their path too.
PYTHONPATH="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
children=${MUTATION_CHILDREN:-$(nproc)}
base=${MUTATION_DIR:-/tmp/ayna-fab-mutation}

listed=$(.venv/bin/python - <<'EOF'
import tomllib
for path in tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["paths_to_mutate"]:
    print(path)
EOF
)
# Which listed modules to run: all, or those named by file stem or path.
modules=()
if [ $# -eq 0 ]; then
    mapfile -t modules <<<"$listed"
else
    for want in "$@"; do
        found=$(grep -E "(^|/)${want%.py}(\.py)?$" <<<"$listed" || true)
        [ -n "$found" ] || { echo "mutation.sh: $want is not in [tool.mutmut] paths_to_mutate" >&2; exit 2; }
        mapfile -t -O "${#modules[@]}" modules <<<"$found"
    done
fi

for module in "${modules[@]}"; do
    name=$(sed 's|^ayna_fab/||; s|\.py$||; s|/|.|g' <<<"$module")
    work=$base/$name
    echo "== $module (in $work)"
    rm -rf "$work"
    mkdir -p "$work"
    # The committed and working files, without the repository's own .venv, caches or mutants.
    git ls-files -z --cached --others --exclude-standard | (cd "$repo" && xargs -0 cp --parents -t "$work")
    ln -s "$repo/.venv" "$work/.venv"
    # Some tests read the checkout through git (its file list): the copy is a repository too.
    git -C "$work" init -q && git -C "$work" add -A \
        && git -C "$work" -c user.name=mutation -c user.email=mutation@ayna.invalid commit -qm copy
    MODULE=$module .venv/bin/python - "$work/pyproject.toml" <<'EOF'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
text, n = re.subn(r"paths_to_mutate = \[.*?\]", f'paths_to_mutate = ["{os.environ["MODULE"]}"]',
                  text, count=1, flags=re.S)
assert n == 1, "no paths_to_mutate in pyproject.toml"
open(path, "w").write(text)
EOF
    # The verdicts stay in the copy's results.txt.
    (cd "$work" && .venv/bin/mutmut run --max-children "$children" \
        && .venv/bin/mutmut results >results.txt && cat results.txt)
done
