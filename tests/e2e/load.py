"""Load on sandbox hosts while a test (or a benchmark) deploys: start, stop, read (tests/e2e/loadgen.py)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

LOADGEN = Path(__file__).with_name("loadgen.py")
DIR = "/root/ayna-load"
URLS = ["http://127.0.0.1:8130/health/", "http://127.0.0.1:8131/health"]


class Load:
    """Steady load on one host of a Sandbox, from that host."""

    def __init__(self, sandbox, index: int, name: str = "load", urls=URLS, clients: int = 3,
                 seconds: int = 900, max_requests: int = 300_000, cafile: str | None = None) -> None:
        self.sandbox, self.index, self.name = sandbox, index, name
        self.out, self.stop_file = f"{DIR}/{name}.json", f"{DIR}/{name}.stop"
        self.cfg = {"urls": urls, "clients": clients, "seconds": seconds, "max": max_requests,
                    "stop": self.stop_file, "out": self.out, "pause": 0.02, "cafile": cafile}

    def start(self) -> "Load":
        code = base64.b64encode(LOADGEN.read_bytes()).decode()
        self.sandbox.check(self.index, f"mkdir -p {DIR} && rm -f {self.out} {self.stop_file} && "
                                       f"echo {code} | base64 -d > {DIR}/loadgen.py")
        arg = json.dumps(self.cfg).replace("'", "")
        self.sandbox.check(self.index, f"nohup python3 {DIR}/loadgen.py '{arg}' >{DIR}/{self.name}.log 2>&1 "
                                       "</dev/null & echo started")
        return self

    def stop(self, timeout: float = 90) -> dict:
        self.sandbox.check(self.index, f"touch {self.stop_file}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, out, _ = self.sandbox.run(self.index, f"cat {self.out}")
            if code == 0 and out.strip():
                return json.loads(out)
            time.sleep(0.5)
        raise AssertionError(f"the load on host {self.index} did not stop: "
                             + self.sandbox.run(self.index, f"cat {DIR}/{self.name}.log")[1])


def failed_by_path(stats: dict) -> dict[str, int]:
    """Failed requests for each URL: through Caddy and straight to the ports, told apart."""
    return {url: v["failed"] for url, v in stats.items() if url != "failures"}


def failed(stats: dict) -> int:
    return sum(v["failed"] for k, v in stats.items() if k != "failures")


def served(stats: dict) -> int:
    return sum(v["ok"] for k, v in stats.items() if k != "failures")


def releases_seen(stats: dict) -> set[str]:
    return {r for k, v in stats.items() if k != "failures" for r in v["releases"]}


# The releases every process of every unit depends on (working directory, command line, mapped
# files), read on the host: after each step, only the live release may appear.
MAPS = r'''
import json, os, subprocess, sys
root = sys.argv[1]
rel = root + "/releases/"
out = {}
for unit in sys.argv[2:]:
    cg = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit], capture_output=True, text=True).stdout.strip()
    if not cg:   # not running (the idle slot)
        continue
    try:
        pids = open("/sys/fs/cgroup/unified" + cg + "/cgroup.procs").read().split()
    except OSError:
        pids = open("/sys/fs/cgroup" + cg + "/cgroup.procs").read().split()
    for pid in pids:
        try:
            paths = [os.path.realpath(os.readlink("/proc/%s/cwd" % pid))]
            paths += open("/proc/%s/cmdline" % pid, "rb").read().decode(errors="replace").split("\0")
            paths += [l.split(None, 5)[5].strip() for l in open("/proc/%s/maps" % pid) if len(l.split(None, 5)) == 6]
        except OSError:
            continue
        # links (current, a slot's) name no release by themselves: the resolved files do
        used = sorted({p[len(rel):].split("/")[0] for p in paths if p.startswith(rel)} - {"current", "blue", "green"})
        out["%s %s" % (unit, pid)] = used
print(json.dumps(out))
'''


def releases_mapped(sandbox, index: int, root: str, units: list[str]) -> dict[str, list[str]]:
    code = base64.b64encode(MAPS.encode()).decode()
    return json.loads(sandbox.check(index, f"echo {code} | base64 -d > /tmp/ayna-maps.py && "
                                           f"python3 /tmp/ayna-maps.py {root} {' '.join(units)}"))
