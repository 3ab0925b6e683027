#!/usr/bin/env bash
# validate.sh - conformance checker for the Ayna Deployment Standard v2.0
#
# Usage: ./validate.sh [PROJECT_DIR]      (default: the directory of this script)
#
# Runs the standard's seven checks and prints one line per finding:
# "✓ ..." when it holds, "✗ ..." when it does not. Exits 1 if any check
# failed, 0 otherwise (2 if PROJECT_DIR does not exist).

set -u

ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
if ! cd "$ROOT" 2>/dev/null; then
    echo "validate.sh: no such directory: $ROOT" >&2
    exit 2
fi

# The standard's port registry: project -> first port of its range of ten.
REGISTRY="ayna-comply:8100 ayna-fly:8110 aynasite:8120 uavcrew:8130 skybookus:8140"

# Required Makefile targets and the Poe task (or command) each one runs.
TARGETS="run:dev deploy:deploy rollback:rollback migrate:migrate shell:shell logs:logs \
start:services:start stop:services:stop restart:services:restart status:services:status \
validate:./validate.sh"

# Variables every environment file must define.
REQUIRED_VARS="PROJECT_NAME DJANGO_SETTINGS_MODULE SECRET_KEY DATABASE_URL REDIS_URL WEB_PORT API_PORT"

FAILED=0
pass() { printf '✓ %s\n' "$*"; }
fail() { printf '✗ %s\n' "$*"; FAILED=$((FAILED + 1)); }
section() { printf '\n[%s/7] %s\n' "$1" "$2"; }

# Value of `NAME ?= value` / `NAME := value` / `NAME = value` in the Makefile.
make_var() {
    [ -f Makefile ] || return 0
    sed -n -E "s/^$1[[:space:]]*[?:]?=[[:space:]]*([^[:space:]#]+).*/\1/p" Makefile | head -n 1
}

# Value of NAME=value in an env file (quotes stripped).
env_var() {
    sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$2=[\"']?([^\"'#[:space:]]*).*/\2/p" "$1" | tail -n 1
}

PROJECT="$(make_var PROJECT_NAME)"
if [ -z "$PROJECT" ] && [ -f pyproject.toml ]; then
    PROJECT="$(sed -n -E 's/^name[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' pyproject.toml | head -n 1)"
fi
PROJECT="${PROJECT:-$(basename "$ROOT")}"

printf 'Ayna Deployment Standard v2.0 - validating %s (%s)\n' "$PROJECT" "$ROOT"

# --- 1. Required files -------------------------------------------------------
section 1 "Required files exist"
for f in Makefile pyproject.toml .template-version; do
    if [ -f "$f" ]; then pass "$f exists"; else fail "$f is missing"; fi
done
if [ -f .template-version ]; then
    version="$(tr -d '[:space:]' < .template-version)"
    case "$version" in
        2.*) pass ".template-version is $version" ;;
        *) fail ".template-version is '${version}', expected 2.x" ;;
    esac
fi

# --- 2. Required directories ------------------------------------------------
section 2 "Required directories exist"
for d in scripts systemd src; do
    if [ -d "$d" ]; then pass "$d/ exists"; else fail "$d/ is missing"; fi
done
if [ -f scripts/poe_commands.py ]; then
    pass "scripts/poe_commands.py exists"
else
    fail "scripts/poe_commands.py is missing"
fi

# --- 3. Makefile targets -----------------------------------------------------
section 3 "Makefile has all required targets"
if [ ! -f Makefile ]; then
    fail "no Makefile, so no targets"
else
    for pair in $TARGETS; do
        target="${pair%%:*}"
        runs="${pair#*:}"
        if ! grep -Eq "^${target}[[:space:]]*:" Makefile; then
            fail "make $target target missing"
            continue
        fi
        # The target's recipe: the tab-indented lines after "target:".
        recipe="$(awk -v t="$target" '
            $0 ~ "^" t "[[:space:]]*:" { inside = 1; next }
            inside && /^\t/ { print; next }
            inside && !/^[[:space:]]*$/ { inside = 0 }' Makefile)"
        if [ "$runs" = "./validate.sh" ]; then
            expect="./validate.sh"
        else
            expect="poe $runs"
        fi
        if printf '%s\n' "$recipe" | grep -Eq "(^|[[:space:]@])$(printf '%s' "$expect" | sed 's/[.]/[.]/g')([[:space:]]|\$)"; then
            pass "make $target target defined (runs $expect)"
        else
            fail "make $target does not run '$expect'"
        fi
    done
fi

# --- 4. Poe tasks ----------------------------------------------------------------
section 4 "Poe tasks are defined in pyproject.toml"
if [ ! -f pyproject.toml ]; then
    fail "no pyproject.toml, so no Poe tasks"
else
    # Task names, one per line: parsed with tomllib when Python 3.11+ is
    # available, otherwise read from the [tool.poe.tasks] table's keys.
    tasks="$(python3 - pyproject.toml 2>/dev/null <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    data = tomllib.load(fh)
tasks = data.get("tool", {}).get("poe", {}).get("tasks")
if tasks is None:
    sys.exit(3)
print("\n".join(tasks))
PY
)"
    status=$?
    if [ $status -ne 0 ] && [ $status -ne 3 ]; then
        status=0
        if grep -Eq '^\[tool\.poe\.tasks' pyproject.toml; then
            tasks="$(awk '
                /^\[tool\.poe\.tasks\]/ { inside = 1; next }
                /^\[tool\.poe\.tasks\./ { s = $0; sub(/^\[tool\.poe\.tasks\./, "", s); sub(/\].*$/, "", s); gsub(/"/, "", s); print s; inside = 0; next }
                /^\[/ { inside = 0 }
                inside && /^[A-Za-z0-9_"][^=]*=/ { s = $0; sub(/[[:space:]]*=.*$/, "", s); gsub(/"/, "", s); print s }' pyproject.toml)"
        else
            status=3
        fi
    fi
    if [ $status -eq 3 ]; then
        fail "pyproject.toml has no [tool.poe.tasks]"
    else
        pass "pyproject.toml has [tool.poe.tasks]"
        for pair in $TARGETS; do
            task="${pair#*:}"
            [ "$task" = "./validate.sh" ] && continue
            if printf '%s\n' "$tasks" | grep -Fxq "$task"; then
                pass "poe task $task defined"
            else
                fail "poe task $task missing from [tool.poe.tasks]"
            fi
        done
    fi
fi

# --- 5. systemd units ------------------------------------------------------------
section 5 "Systemd units exist"
units="web celery beat"
if [ -d src/api ]; then units="web api celery beat"; fi
# web, api and the Celery worker run in two slots (ayna-fab's blue-green handover): their
# units are PROJECT-SERVICE-blue.service and -green.service, each running its slot's release.
unit_of() { # service
    case "$1" in
        beat) echo "systemd/${PROJECT}-$1.service" ;;
        *) if [ -f "systemd/${PROJECT}-$1-blue.service" ]; then echo "systemd/${PROJECT}-$1-blue.service";
           else echo "systemd/${PROJECT}-$1.service"; fi ;;
    esac
}
for service in $units; do
    unit="$(unit_of "$service")"
    if [ ! -f "$unit" ]; then
        fail "$unit is missing"
        continue
    fi
    pass "$unit exists"
    problems=""
    grep -Eq '^ExecStart=/opt/ayna/'"$PROJECT"'/(venv|releases/(blue|green)/\.venv)/bin/' "$unit" \
        || problems="$problems; ExecStart does not run from /opt/ayna/$PROJECT/venv/bin (or a slot's venv)"
    grep -Eq '^WorkingDirectory=/opt/ayna/'"$PROJECT"'/releases/(current|blue|green)' "$unit" \
        || problems="$problems; WorkingDirectory is not under /opt/ayna/$PROJECT/releases/current (or a slot)"
    grep -Eq '^EnvironmentFile=-?/opt/ayna/'"$PROJECT"'/shared/\.env\.' "$unit" \
        || problems="$problems; EnvironmentFile is not /opt/ayna/$PROJECT/shared/.env.*"
    grep -Eq '^User=[^[:space:]]+' "$unit" || problems="$problems; no User="
    if [ -n "$problems" ]; then
        fail "$unit: ${problems#; }"
    fi
done

# --- 6. Ports ------------------------------------------------------------------
section 6 "Port assignments match registry"
base=""
for entry in $REGISTRY; do
    [ "${entry%%:*}" = "$PROJECT" ] && base="${entry#*:}"
done
if [ -z "$base" ]; then
    fail "$PROJECT is not in the port registry"
else
    web=$base
    api=$((base + 1))
    pass "$PROJECT has range $base-$((base + 9)) in the registry (web $web, api $api)"
    check_port() { # label value expected
        if [ -z "$2" ]; then
            fail "$1 is not set"
        elif [ "$2" = "$3" ]; then
            pass "Port $2 matches registry for $PROJECT ($1)"
        else
            fail "$1 is $2, registry says $3 for $PROJECT"
        fi
    }
    [ -f Makefile ] && check_port "Makefile WEB_PORT" "$(make_var WEB_PORT)" "$web"
    [ -f Makefile ] && [ -d src/api ] && check_port "Makefile API_PORT" "$(make_var API_PORT)" "$api"
    if [ -f .env.example ]; then
        check_port ".env.example WEB_PORT" "$(env_var .env.example WEB_PORT)" "$web"
        check_port ".env.example API_PORT" "$(env_var .env.example API_PORT)" "$api"
    fi
    unit="$(unit_of web)"
    if [ -f "$unit" ]; then
        bind="$(sed -n -E 's/.*--bind[= ]+([^[:space:]\\]+).*/\1/p' "$unit" | head -n 1)"
        if [ "$bind" = "127.0.0.1:$web" ]; then
            pass "Port $web matches registry for $PROJECT ($unit binds 127.0.0.1:$web)"
        else
            fail "$unit binds '${bind}', expected 127.0.0.1:$web"
        fi
    fi
    unit="$(unit_of api)"
    if [ -f "$unit" ]; then
        host="$(sed -n -E 's/.*--host[= ]+([^[:space:]\\]+).*/\1/p' "$unit" | head -n 1)"
        port="$(sed -n -E 's/.*--port[= ]+([^[:space:]\\]+).*/\1/p' "$unit" | head -n 1)"
        if [ "$host:$port" = "127.0.0.1:$api" ]; then
            pass "Port $api matches registry for $PROJECT ($unit binds 127.0.0.1:$api)"
        else
            fail "$unit binds '${host}:${port}', expected 127.0.0.1:$api"
        fi
    fi
    if [ -d systemd ] && grep -Eq '0\.0\.0\.0|\[::\]' systemd/*.service 2>/dev/null; then
        fail "a unit in systemd/ binds a public address; services bind 127.0.0.1 only"
    fi
fi

# --- 7. Environment files ------------------------------------------------------
section 7 "Environment files documented"
if [ ! -f .env.example ]; then
    fail ".env.example is missing (it documents shared/.env.{dev,staging,production})"
else
    pass ".env.example exists"
    for var in $REQUIRED_VARS; do
        if grep -Eq "^[[:space:]]*(export[[:space:]]+)?${var}=" .env.example; then
            pass ".env.example documents $var"
        else
            fail ".env.example does not document $var"
        fi
    done
    name="$(env_var .env.example PROJECT_NAME)"
    if [ -n "$name" ] && [ "$name" != "$PROJECT" ]; then
        fail ".env.example has PROJECT_NAME=$name, expected $PROJECT"
    fi
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tracked="$(git ls-files -- . | grep -E '(^|/)\.env(\.[^/]+)?$' | grep -Ev '(^|/)\.env\.example$' || true)"
    if [ -n "$tracked" ]; then
        fail "environment files are tracked by git (they belong in shared/): $(echo "$tracked" | tr '\n' ' ')"
    else
        pass "no .env files tracked by git"
    fi
fi

echo
if [ "$FAILED" -eq 0 ]; then
    echo "validate: all 7 checks passed for $PROJECT"
    exit 0
fi
echo "validate: $FAILED problem(s) found for $PROJECT"
exit 1
