"""What the benchmarks share: their own sandbox, a git copy of the demo, timed commands, traffic.

Each benchmark boots a sandbox of its own (a private state directory, a name prefix and SSH
ports) so it never meets a person's sandbox or the tests'; AYNA_FAB_SANDBOX_PREFIX and
AYNA_FAB_SANDBOX_PORT_BASE override the benchmark's defaults when two runs share a machine.
Traffic is what a host's SSH forwarder counted (ayna_fab/sandbox/forwarder.py): the bytes the
laptop sent and received, the connections it opened and the turns it took.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ayna_fab.sandbox import forwarder, manager  # noqa: E402
from ayna_fab.sandbox.settings import BASE_REQUIREMENTS, SandboxSettings  # noqa: E402

FAB = str(Path(sys.executable).with_name("fab"))
DEMO = REPO / "examples/uavcrew"
DEMO_ENV = REPO / "examples/uavcrew.sandbox.env"
ROOT = "/opt/ayna/uavcrew"
UNITS = ("uavcrew-web-blue", "uavcrew-web-green", "uavcrew-api-blue", "uavcrew-api-green", "uavcrew-celery-blue",
         "uavcrew-celery-green", "uavcrew-beat")


def sandbox_settings(tmp: Path, prefix: str, port_base: int) -> SandboxSettings:
    """The benchmark's sandbox: its defaults unless the environment names others."""
    env = os.environ
    return SandboxSettings.from_env(
        state_dir=tmp / "state",
        prefix=env.get("AYNA_FAB_SANDBOX_PREFIX", prefix),
        ssh_port_base=int(env.get("AYNA_FAB_SANDBOX_PORT_BASE", port_base)),
        requirements=(BASE_REQUIREMENTS, DEMO / "wheelhouse-requirements.txt"))


class DemoRepo:
    """A git repository holding a copy of the demo project, on branch main."""

    def __init__(self, path: Path) -> None:
        self.path = path
        shutil.copytree(DEMO, path, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        self.git("init", "-q", "-b", "main")
        self.commit("demo")
        self.first = self.git("rev-parse", "HEAD").strip()

    def git(self, *argv: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                               *argv], check=True, capture_output=True, text=True).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def mode(self, name: str, text: str | None = None) -> None:
        """Apply one of the demo's failure_modes.py modes to the working tree (not committed)."""
        subprocess.run([sys.executable, str(self.path / "failure_modes.py"), name, "--project-dir", str(self.path)]
                       + (["--text", text] if text else []), check=True, capture_output=True)

    def edit_one_file(self, tag: str) -> None:
        banner = self.path / "src/web/crew/banner.py"
        banner.write_text(banner.read_text().rstrip("\n") + f"\n# {tag}\n")
        self.commit(tag)


@dataclass
class Result:
    """One command's exit code, wall time, output, and the traffic its host's forwarder saw."""

    code: int
    seconds: float
    output: str
    traffic: dict = field(default_factory=dict)
    cpu: float = 0.0     # the command's own CPU time (user + system), this machine's share of the work


def run(argv: list[str], env: dict, cwd: Path = REPO, hosts: list[manager.HostState] = (),
        want: int | None = 0) -> Result:
    """Run a command (wall time includes its start-up), counting the traffic at the given hosts."""
    for hs in hosts:
        forwarder.request(hs.control, "reset")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    traffic: dict = {}
    for hs in hosts:
        stats = forwarder.request(hs.control, "stats")
        for key in ("bytes_up", "bytes_down", "connections", "turns"):
            traffic[key] = traffic.get(key, 0) + stats[key]
    if want is not None and p.returncode != want:
        raise SystemExit(f"{' '.join(argv)} exited {p.returncode}, not {want}:\n{p.stdout}\n{p.stderr}")
    return Result(p.returncode, seconds, p.stdout + p.stderr, traffic, cpu)


STEP_RE = re.compile(r"^\[(?P<host>[\w.-]+)\] (?P<step>[a-z][a-z +]*[a-z])\s+(?P<seconds>\d+\.\d+)s(?:\s|$)", re.M)


def steps(output: str) -> dict[str, dict[str, float]]:
    """The step lines of a `fab` deploy or rollback: {host: {step: seconds}}, as the host timed them."""
    found: dict[str, dict[str, float]] = {}
    for m in STEP_RE.finditer(output):
        host = found.setdefault(m["host"], {})
        host[m["step"]] = host.get(m["step"], 0.0) + float(m["seconds"])
    return found


HOST_CALLS_RE = re.compile(r"^\[(?P<host>[\w.-]+)\] .* \((?P<seconds>\d+\.\d+)s in host calls, \d+ round trips\)$", re.M)


def host_calls(output: str) -> dict[str, float]:
    """{host: seconds its calls took, as the laptop timed them}, from a deploy's closing lines. The
    host's own steps may overlap (prepare runs some at once), so their sum is not the host's time."""
    return {m["host"]: float(m["seconds"]) for m in HOST_CALLS_RE.finditer(output)}


def set_rtt(hosts: list[manager.HostState], ms: float) -> None:
    for hs in hosts:
        forwarder.request(hs.control, f"rtt {ms}")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes), as the figures' context."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """The machine the figures come from, in one line."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 2**20
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {os.uname().release}"
