"""systemd units on the host: control through sudo, state, and the processes they run.

Control goes through `sudo -n /usr/bin/systemctl VERB UNIT`, one unit per call:
the deploy user's sudoers entry allows exactly those command lines.
"""

import os
import subprocess
import time

SYSTEMCTL = "/usr/bin/systemctl"
CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")


def state(unit):
    """`systemctl is-active`: active, inactive, failed, activating, ..."""
    p = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()


def restarts(unit):
    """How often systemd restarted the unit by itself (Restart=) since it was last started by hand."""
    out = subprocess.run(["systemctl", "show", "-p", "NRestarts", "--value", unit], capture_output=True,
                         text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def _show(props, unit_names):
    """`systemctl show -p PROPS UNITS`: one dict of properties per unit, in the order given."""
    out = subprocess.run(["systemctl", "show", "-p", ",".join(props), "--", *unit_names],
                         capture_output=True, text=True).stdout
    return [dict(line.partition("=")[::2] for line in block.splitlines() if line)
            for block in out.strip().split("\n\n")]


def states(unit_names):
    """{unit: {"state", "restarts", "cgroup", "up"}} for several units from one `systemctl show`
    ("up": seconds since it became active, None if unknown): an activation asks these of every
    unit before its restart and in each round of its verify."""
    unit_names = list(unit_names)
    blocks = _show(["ActiveState", "NRestarts", "ControlGroup", "ActiveEnterTimestampMonotonic"], unit_names)
    now = time.clock_gettime(time.CLOCK_MONOTONIC)
    if len(blocks) != len(unit_names):   # not one block per unit, in order: ask one at a time
        return {u: {"state": state(u), "restarts": restarts(u), "cgroup": cgroup(u), "up": None} for u in unit_names}

    def up(b):   # seconds since the unit last became active (systemd's clock is CLOCK_MONOTONIC)
        since = b.get("ActiveEnterTimestampMonotonic", "")
        return now - int(since) / 1e6 if since.isdigit() and int(since) > 0 else None

    return {u: {"state": b.get("ActiveState") or "unknown",
                "restarts": int(b["NRestarts"]) if b.get("NRestarts", "").isdigit() else 0,
                "cgroup": b.get("ControlGroup", ""), "up": up(b)} for u, b in zip(unit_names, blocks)}


def control(verb, unit):
    """verb the unit (start, stop, restart, reload-or-restart); None or the error text."""
    p = subprocess.run(["sudo", "-n", SYSTEMCTL, verb, unit], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return None if p.returncode == 0 else f"{verb} {unit}: {p.stdout.strip()}"


def control_async(verb, unit):
    """Start verb on the unit without waiting (a slow warm shutdown must not hold up the rest)."""
    return subprocess.Popen(["sudo", "-n", SYSTEMCTL, verb, unit], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cgroup(unit):
    return subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit],
                          capture_output=True, text=True).stdout.strip()


def pids_of_cgroup(path):
    """The processes of a cgroup (None if it cannot be read), on cgroup v1 or v2."""
    if not path:
        return None
    for base in CGROUP_ROOTS:
        try:
            with open(base + path + "/cgroup.procs") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            continue
    return None


def pids(unit):
    return pids_of_cgroup(cgroup(unit)) or []


def pss_kib(pids_):
    kb = 0
    for pid in pids_:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for row in f:
                    if row.startswith("Pss:"):
                        kb += int(row.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return kb


PROPS = ("Id", "ActiveState", "SubState", "MainPID", "MemoryCurrent", "ActiveEnterTimestamp",
         "ActiveEnterTimestampMonotonic", "ControlGroup")


def show(units):
    """Each unit's facts from `systemctl show`, plus the clock its timestamps use and the
    proportional memory of its processes (systemd's MemoryCurrent is not always accounted)."""
    now = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    facts = []
    for fields in _show(PROPS, units):
        if not fields.get("Id"):
            continue
        procs = pids_of_cgroup(fields.get("ControlGroup"))
        fields["Pss"] = pss_kib(procs) * 1024 if procs is not None else None
        facts.append(fields)
    return {"units": facts, "now": now}


def releases_used(pid, releases_dir):
    """The release numbers a process depends on: its working directory, its command line (a
    relocatable venv's entry point runs the interpreter by its release's real path) and every
    file it has mapped (the interpreter's and packages' shared objects). None if it is gone, or
    is between two programs: in the middle of exec the new program is not mapped yet, and its
    files cannot be judged until it is."""
    prefix = releases_dir.rstrip("/") + "/"
    try:
        paths = [os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            paths += f.read().decode(errors="replace").split("\0")
        with open(f"/proc/{pid}/maps") as f:
            mapped = [parts[5].strip() for parts in (line.split(None, 5) for line in f) if len(parts) == 6]
    except OSError:
        return None
    if not mapped:
        return None
    paths += mapped
    used = set()
    for path in paths:
        if path.startswith(prefix):
            name = path[len(prefix):].split("/", 1)[0]
            if name.startswith("v") and name[1:].isdigit():
                used.add(int(name[1:]))
    return used


def releases_in_use(unit_names, releases_dir):
    """{release number: [pids]} over every process of the units."""
    found = {}
    for unit in unit_names:
        for pid in pids(unit):
            for number in releases_used(pid, releases_dir) or ():
                found.setdefault(number, []).append(pid)
    return found
