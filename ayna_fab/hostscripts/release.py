"""Release operations on a host, one subcommand per round trip. Runs on the host; stdlib only.

    python3 - SUBCOMMAND ARGS_JSON [< input]

Each subcommand prints one JSON object on stdout (its last line). Decisions are
made by the controller; this program only does what it is told and reports
exactly what it saw, with timings. Steps print `@@step NAME SECONDS OK` lines.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

META = ".ayna-release.json"
MANIFEST = ".ayna-manifest"
LOCK = ".deploy-lock"
STEP_RE = re.compile(r"@@step (\S+) ([0-9.]+) (ok|failed)")


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def step_line(name, seconds, ok):
    print(f"@@step {name} {seconds:.3f} {'ok' if ok else 'failed'}", flush=True)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def release_dir(root, number):
    return os.path.join(root, "releases", f"v{number}")


def current_number(root):
    try:
        target = os.readlink(os.path.join(root, "releases", "current"))
    except OSError:
        return None
    name = os.path.basename(target.rstrip("/"))
    return int(name[1:]) if name.startswith("v") and name[1:].isdigit() else None


def list_releases(root):
    rels = []
    base = os.path.join(root, "releases")
    try:
        names = os.listdir(base)
    except OSError:
        return rels
    for name in names:
        if not (name.startswith("v") and name[1:].isdigit()):
            continue
        path = os.path.join(base, name)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        meta = read_json(os.path.join(path, META), {}) or {}
        complete = bool(meta) and os.path.exists(os.path.join(path, ".venv", "bin", "python"))
        rels.append({"number": int(name[1:]), "meta": meta, "complete": complete})
    return sorted(rels, key=lambda r: r["number"])


def env_from_file(path):
    """KEY=VALUE lines, as systemd's EnvironmentFile reads them (quotes stripped)."""
    env = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return env
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("export "):
            key = key[7:].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def lock_holder(root):
    return read_json(os.path.join(root, LOCK, "owner.json"), {}) if os.path.isdir(os.path.join(root, LOCK)) else None


# --- subcommands -----------------------------------------------------------------------

def plan(a):
    """Take the lock (unless a dry run), then describe the releases and what comes next."""
    root = a["root"]
    if not os.path.isdir(os.path.join(root, "releases")):
        out({"error": "no-layout", "detail": f"{root}/releases does not exist"})
        return
    if a.get("lock"):
        lock_dir = os.path.join(root, LOCK)
        try:
            os.mkdir(lock_dir, 0o700)
        except FileExistsError:
            out({"error": "locked", "holder": lock_holder(root) or {}})
            return
        write_json(os.path.join(lock_dir, "owner.json"), a["lock"])
    rels = list_releases(root)
    counter_path = os.path.join(root, "releases", ".counter")
    try:
        counter = int(open(counter_path).read().strip() or 0)
    except (OSError, ValueError):
        counter = 0
    nxt = max([counter] + [r["number"] for r in rels]) + 1
    env_path = a["env_file"]
    st = os.statvfs(root)
    out({"releases": rels, "current": current_number(root), "next": nxt,
         "env_file": os.path.exists(env_path), "uv": shutil.which("uv") is not None,
         "disk_free": st.f_bavail * st.f_frsize,
         "units": {u: _systemctl("is-active", u) for u in a.get("units", [])}})


def _systemctl(verb, unit):
    p = subprocess.run(["systemctl", verb, unit], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()


def _safe_member(m):
    name = m.name
    if name.startswith("/") or ".." in name.split("/"):
        return False
    if m.issym():
        target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        return not (m.linkname.startswith("/") or target.startswith(".."))
    return m.isfile() or m.isdir()


def stage(a):
    """Make releases/vN: hard links to unchanged files of the base release, then the uploaded ones."""
    root, number = a["root"], a["number"]
    new = release_dir(root, number)
    started = time.monotonic()
    counter_path = os.path.join(root, "releases", ".counter")
    try:
        counter = int(open(counter_path).read().strip() or 0)
    except (OSError, ValueError):
        counter = 0
    if number <= counter:  # numbers are never reused, even after a release is deleted
        raise SystemExit(f"release number v{number} was used before (counter {counter})")
    with open(counter_path + ".tmp", "w") as f:
        f.write(f"{number}\n")
    os.replace(counter_path + ".tmp", counter_path)
    os.mkdir(new, 0o755)
    meta = dict(a["meta"], state="building")
    write_json(os.path.join(new, META), meta)
    archive = a.get("archive")
    names = []
    if archive:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            bad = [m.name for m in members if not _safe_member(m)]
            if bad:
                raise SystemExit(f"refusing unsafe paths in the upload: {bad[:5]}")
            tar.extractall(new, members=members)
            names = [m.name for m in members if not m.isdir()]
        os.unlink(archive)
    skip = set(names) | set(a.get("deleted", []))
    linked = 0
    base = a.get("base")
    manifest = list(names)
    if base is not None:
        base_dir = release_dir(root, base)
        with open(os.path.join(base_dir, MANIFEST)) as f:
            base_names = [line.rstrip("\n") for line in f if line.strip()]
        for name in base_names:
            if name in skip:
                continue
            src, dst = os.path.join(base_dir, name), os.path.join(new, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                os.link(src, dst)
            manifest.append(name)
            linked += 1
    with open(os.path.join(new, MANIFEST), "w") as f:
        f.write("".join(n + "\n" for n in sorted(manifest)))
    for link, target in a.get("links", {}).items():
        path = os.path.join(new, link)
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        os.symlink(target, path)
    step_line("upload", time.monotonic() - started, True)
    out({"linked": linked, "unpacked": len(names), "files": len(manifest)})


def _relocatable(venv):
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as f:
            return any(line.replace(" ", "").strip() == "relocatable=true" for line in f)
    except OSError:
        return False


def prepare(a):
    """Install the venv with uv, then the app's checks, migrate and collectstatic: one process each."""
    root, number = a["root"], a["number"]
    rel = release_dir(root, number)
    env = dict(os.environ)
    env.update(env_from_file(a["env_file"]))
    env.update({"UV_CACHE_DIR": a["uv_cache"], "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1", "VIRTUAL_ENV": os.path.join(rel, ".venv")})
    env.pop("PYTHONPATH", None)
    result = {"steps": {}, "failed": None}

    def run(name, argv, cwd, stdin=None):
        t = time.monotonic()
        p = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
        seconds = time.monotonic() - t
        result["steps"][name] = round(seconds, 3)
        step_line(name, seconds, p.returncode == 0)
        if p.returncode != 0:
            result["failed"] = name
            result["output"] = "\n".join((p.stdout + "\n" + p.stderr).strip().splitlines()[-40:])
        return p.returncode == 0

    venv = os.path.join(rel, ".venv")
    if "install" in a["steps"]:
        req = os.path.join(rel, ".ayna-requirements.txt")
        base = a.get("base_venv")
        if base and _relocatable(base):
            # A hard-linked copy of the live venv (relocatable, so nothing in it names its path):
            # compiled bytecode comes along, and uv pip sync then changes only what differs.
            create = f"cp -al {base} {venv}\n"
        else:
            create = f"uv venv --quiet --relocatable --python /usr/bin/python3 {venv}\n"
        script = (f"set -e; uv export --quiet --frozen --no-dev --no-emit-project --no-header -o {req}\n"
                  + create + f"uv pip sync --quiet --python {venv}/bin/python --require-hashes {req}\n")
        if not run("install", ["sh", "-c", script], rel):
            out(result)
            return
    django_steps = [s for s in ("check", "migrate", "collectstatic") if s in a["steps"]]
    if django_steps:
        program = DJANGO_STEPS
        argv = [os.path.join(venv, "bin", "python"), "-c", program, json.dumps({
            "steps": django_steps, "asgi_dir": os.path.join(rel, a["asgi_dir"]) if a.get("asgi_app") else None,
            "asgi_app": a.get("asgi_app")})]
        t = time.monotonic()
        p = subprocess.run(argv, cwd=os.path.join(rel, a["django_dir"]), env=env, capture_output=True, text=True)
        for name, seconds, status in STEP_RE.findall(p.stdout):  # output may precede a marker
            result["steps"][name] = float(seconds)
            step_line(name, float(seconds), status == "ok")
            if status != "ok":
                result["failed"] = name
        if p.returncode != 0:
            result["failed"] = result["failed"] or "check"
            result["output"] = "\n".join((p.stdout + "\n" + p.stderr).strip().splitlines()[-40:])
        result["django_seconds"] = round(time.monotonic() - t, 3)
    out(result)


# Runs inside the release's venv, in the Django project's directory: one interpreter start
# for every Django step instead of one per manage.py command.
DJANGO_STEPS = r'''
import importlib, io, json, os, sys, time, traceback
args = json.loads(sys.argv[1])
sys.path.insert(0, os.getcwd())
def step(name, fn):
    t = time.monotonic()
    try:
        fn()
    except BaseException:
        traceback.print_exc()
        print(f"\n@@step {name} {time.monotonic() - t:.3f} failed", flush=True)
        sys.exit(1)
    print(f"\n@@step {name} {time.monotonic() - t:.3f} ok", flush=True)
def check():
    import django
    django.setup()
    from django.core.management import call_command
    call_command("check", deploy=True, fail_level="WARNING")
    if args["asgi_app"]:
        sys.path.insert(0, args["asgi_dir"])
        module, _, attr = args["asgi_app"].partition(":")
        getattr(importlib.import_module(module), attr)
def migrate():
    from django.core.management import call_command
    call_command("migrate", interactive=False, verbosity=1)
def collectstatic():
    from django.core.management import call_command
    call_command("collectstatic", interactive=False, verbosity=0)
steps = {"check": check, "migrate": migrate, "collectstatic": collectstatic}
if "check" not in args["steps"]:
    import django
    django.setup()
for name in args["steps"]:
    step(name, steps[name])
'''


def flip(root, number):
    """current -> vN atomically: a new symlink under a temporary name, renamed over current."""
    releases = os.path.join(root, "releases")
    tmp = os.path.join(releases, f".current.tmp{os.getpid()}")
    os.symlink(f"v{number}", tmp)
    os.replace(tmp, os.path.join(releases, "current"))
    venv = os.path.join(root, "venv")
    want = os.path.join(releases, "current", ".venv")
    if not (os.path.islink(venv) and os.readlink(venv) == want):
        tmp = venv + f".tmp{os.getpid()}"
        os.symlink(want, tmp)
        os.replace(tmp, venv)


def unit_pids(unit):
    cg = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit],
                        capture_output=True, text=True).stdout.strip()
    if not cg:
        return []
    for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"):
        try:
            with open(base + cg + "/cgroup.procs") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            continue
    return []


def verify(units, rel, deadline):
    """Every process of every unit must run from the new release (its cwd inside it)."""
    want = os.path.realpath(rel) + os.sep
    report = {}
    while True:
        report = {}
        for unit in units:
            pids = unit_pids(unit)
            stale = []
            for pid in pids:
                try:
                    cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) + os.sep
                except OSError:
                    continue  # gone meanwhile
                if not cwd.startswith(want):
                    stale.append([pid, cwd.rstrip(os.sep)])
            report[unit] = {"pids": len(pids), "stale": stale,
                            "active": _systemctl("is-active", unit)}
        if all(r["pids"] and not r["stale"] and r["active"] == "active" for r in report.values()):
            return True, report
        if time.monotonic() > deadline:
            return False, report
        time.sleep(0.2)


def health(checks, expect, deadline):
    """Poll each endpoint until it answers 2xx and, if it reports a release, the expected one."""
    report = {}
    pending = list(checks)
    while pending:
        still = []
        for c in pending:
            status, body = None, ""
            try:
                with urllib.request.urlopen(c["url"], timeout=5) as resp:
                    status, body = resp.status, resp.read(4096).decode(errors="replace")
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read(4096).decode(errors="replace")
            except (OSError, ValueError) as e:
                body = str(e)
            served = None
            try:
                served = json.loads(body).get("release")
            except (ValueError, AttributeError):
                pass
            ok = (status is not None and 200 <= status < 300
                  and (expect is None or served is None or served == expect))
            report[c["name"]] = {"status": status, "release": served, "ok": ok, "body": body[:300]}
            if not ok:
                still.append(c)
        pending = still
        if pending and time.monotonic() > deadline:
            return False, report
        if pending:
            time.sleep(0.25)
    return True, report


def activate(a):
    """Flip current to vN, reload or restart the units, verify their processes, check health."""
    root, number = a["root"], a["number"]
    rel = release_dir(root, number)
    res = {"number": number, "steps": {}}

    t = time.monotonic()
    flip(root, number)
    res["steps"]["flip"] = round(time.monotonic() - t, 3)
    step_line("flip", time.monotonic() - t, True)

    t = time.monotonic()
    errors = []
    procs = []
    for unit, action in a["units"]:  # all at once: a slow warm shutdown must not hold up the rest
        if _systemctl("is-active", unit) != "active":
            action = "restart"  # not running (first deploy, or it died): start it
        procs.append((unit, action, subprocess.Popen(["sudo", "-n", "/usr/bin/systemctl", action, unit],
                                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))

    def settle(which):
        for unit, action, p in which:
            output = p.communicate()[0]
            if p.returncode != 0:
                errors.append(f"{action} {unit}: {output.strip()}")

    # Health needs only the HTTP units: poll it while workers finish their warm shutdowns.
    http = set(a.get("http_units", []))
    settle([p for p in procs if p[0] in http])
    t_health = time.monotonic()
    healthy, hreport = health(a["health"], f"v{number}", time.monotonic() + a["health_timeout"])
    health_seconds = time.monotonic() - t_health
    settle([p for p in procs if p[0] not in http])
    res["steps"]["restart"] = round(time.monotonic() - t - health_seconds, 3)
    step_line("restart", res["steps"]["restart"], not errors)
    res["unit_errors"] = errors
    res["steps"]["health"] = round(health_seconds, 3)
    step_line("health", health_seconds, healthy)
    res["health"] = hreport
    res["healthy"] = healthy

    t = time.monotonic()
    ok, report = verify([u for u, _ in a["units"]], rel, time.monotonic() + a["verify_timeout"])
    res["steps"]["verify"] = round(time.monotonic() - t, 3)
    step_line("verify", time.monotonic() - t, ok)
    res["verify"] = report
    res["verified"] = ok and not errors
    res["ok"] = res["verified"] and healthy
    out(res)


def deactivate(a):
    """No good release to go back to (a failed first deploy): stop the units, remove current."""
    errors = []
    for unit in a["units"]:
        p = subprocess.run(["sudo", "-n", "/usr/bin/systemctl", "stop", unit], capture_output=True, text=True)
        if p.returncode != 0:
            errors.append(f"stop {unit}: {(p.stderr or p.stdout).strip()}")
    for link in (os.path.join(a["root"], "releases", "current"), os.path.join(a["root"], "venv")):
        if os.path.islink(link):
            os.unlink(link)
    out({"ok": not errors, "errors": errors})


def finish(a):
    """Record states and the deploy log line, set old releases aside, release the lock."""
    root = a["root"]
    for number, state in a.get("states", {}).items():
        path = os.path.join(release_dir(root, int(number)), META)
        meta = read_json(path)
        if meta is not None:
            meta.update(a.get("meta", {}).get(number, {}))
            meta["state"] = state
            write_json(path, meta)
    if a.get("log"):
        os.makedirs(os.path.join(root, "logs"), exist_ok=True)
        with open(os.path.join(root, "logs", "deploys.jsonl"), "a") as f:
            f.write(json.dumps(a["log"], sort_keys=True) + "\n")
    trash = []
    for number in a.get("remove", []):
        src = release_dir(root, number)
        if os.path.isdir(src) and number != current_number(root):
            dst = os.path.join(root, "releases", f".trash-v{number}-{os.getpid()}")
            os.rename(src, dst)  # instant; the slow delete happens after we are gone
            trash.append(dst)
    if trash:
        subprocess.Popen(["rm", "-rf", *trash], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    released = unlock_dir(root, a.get("token"), False) if a.get("unlock") else None
    out({"removed": a.get("remove", []), "unlocked": released})


def unlock_dir(root, token, force):
    holder = lock_holder(root)
    if holder is None:
        return "not-locked"
    if not force and holder.get("token") != token:
        return "held-by-other"
    shutil.rmtree(os.path.join(root, LOCK), ignore_errors=True)
    return "released"


def unlock(a):
    holder = lock_holder(a["root"])
    result = unlock_dir(a["root"], a.get("token"), a.get("force", False))
    out({"holder": holder, "result": result})


def status(a):
    root = a["root"]
    cur = current_number(root)
    rels = list_releases(root)
    meta = next((r["meta"] for r in rels if r["number"] == cur), {})
    units = {u: _systemctl("is-active", u) for u in a["units"]}
    _, hreport = health(a["health"], None, 0) if cur is not None else (False, {})
    try:
        st = os.statvfs(root)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    out({"current": cur, "meta": meta, "units": units, "health": hreport, "lock": lock_holder(root),
         "releases": rels, "disk_free": free, "exists": os.path.isdir(root)})


def migrations(a):
    """Migration files of each named release, so a rollback can say what it leaves applied."""
    result = {}
    for number in a["numbers"]:
        base = os.path.join(release_dir(a["root"], number), a["django_dir"])
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in (".venv", "node_modules", "staticfiles")]
            if os.path.basename(dirpath) == "migrations":
                app = os.path.basename(os.path.dirname(dirpath))
                found += [f"{app}.{f[:-3]}" for f in filenames if f.endswith(".py") and f[0].isdigit()]
        result[str(number)] = sorted(found)
    out(result)


COMMANDS = {"plan": plan, "stage": stage, "prepare": prepare, "activate": activate, "deactivate": deactivate,
            "finish": finish, "unlock": unlock, "status": status, "migrations": migrations}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
