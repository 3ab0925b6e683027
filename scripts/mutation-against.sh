#!/usr/bin/env bash
# Every mutant of one module, each run against the given test files alone: the verdicts where
# mutmut's own run (scripts/mutation.sh) is too slow to finish on a 2-core machine, or to check the
# tests written for its survivors. Needs the module's copy that scripts/mutation.sh made (its
# mutants/ holds the mutated code); the test files are copied in from this checkout first.
#
#   bash scripts/mutation-against.sh store tests/unit/test_mutants_store.py
#   TIMEOUT=60 bash scripts/mutation-against.sh holder tests/unit/test_mutants_holder.py tests/unit/test_carried.py
#   ONLY="x_flip__mutmut_3 x_flip__mutmut_7" bash scripts/mutation-against.sh store tests/unit/test_mutants_store.py
#
# Prints one line a mutant (KILLED: the tests failed with it; LIVES: they passed; HUNG: they ran
# past $TIMEOUT seconds, to be run again alone before it counts as caught), then the counts. The
# tests must pass with no mutant active, or nothing they say about a mutant means anything.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ $# -ge 2 ] || { echo "usage: $0 MODULE TEST_FILE..." >&2; exit 2; }
want=$1; shift
module=$(grep -oE "\"ayna_fab/([a-z_]+/)*${want%.py}\.py\"" pyproject.toml | tr -d '"' | head -1)
[ -n "$module" ] || { echo "mutation-against.sh: $want is not in [tool.mutmut] paths_to_mutate" >&2; exit 2; }
dotted=$(sed 's|\.py$||; s|/|.|g' <<<"$module")
copy=${MUTATION_DIR:-/tmp/ayna-fab-mutation}/${dotted#ayna_fab.}
[ -f "$copy/mutants/$module" ] || {
    echo "mutation-against.sh: no mutants in $copy: run bash scripts/mutation.sh $want first" >&2; exit 2; }
for t in "$@"; do
    mkdir -p "$copy/mutants/$(dirname "$t")"
    cp "$repo/$t" "$copy/mutants/$t"
done
cp "$repo"/tests/*.py "$copy/mutants/tests/"   # the helpers the test files import
# The copy's own venv (the one scripts/mutation.sh ran with, mutmut installed); the host program's
# subprocesses import mutmut's trampolines too, so it goes on their path.
python=$copy/.venv/bin/python
PYTHONPATH="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export PYTHONPATH
cd "$copy/mutants"
run() {   # run MUTANT TEST_FILE...: the tests with that mutant active ("" for none)
    local mutant=$1
    shift
    MUTANT_UNDER_TEST=$mutant timeout "${TIMEOUT:-120}" nice -n 10 "$python" -m pytest -q -x \
        -p no:cacheprovider "$@" >/dev/null 2>&1
}
run "" "$@" || { echo "the tests fail with no mutant active: fix them first" >&2; exit 1; }
killed=0 lives=0 hung=0
names=${ONLY:-$(grep -oE "def x[^ (]*__mutmut_[0-9]+\(" "$module" | sed 's/^def //; s/($//')}
for name in $names; do
    set +e
    run "$dotted.$name" "$@"
    code=$?
    set -e
    if [ $code -eq 124 ]; then verdict=HUNG; hung=$((hung + 1))
    elif [ $code -eq 0 ]; then verdict=LIVES; lives=$((lives + 1))
    else verdict=KILLED; killed=$((killed + 1)); fi
    echo "$name $verdict"
done
echo "$module: $((killed + lives + hung)) mutants; $killed killed, $lives live, $hung hung"
