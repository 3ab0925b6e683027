"""Long-lived helper processes (containers, forwarders) tracked by pid *and* start time.

A bare pid can be reused by an unrelated process after ours exits; recording the
kernel's start time for it means `down` never signals a stranger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcRecord:
    pid: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProcRecord":
        return cls(pid=int(d["pid"]), start_time=int(d["start_time"]))


def start_time_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses; split after its closing ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie has finished; only its exit status is left
    return int(fields[19])


def is_alive(rec: ProcRecord) -> bool:
    return start_time_of(rec.pid) == rec.start_time


def start_detached(argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                   before_exec=None) -> ProcRecord:
    """Start argv in its own session so it outlives the fab process that started it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, preexec_fn=before_exec)
    st = start_time_of(proc.pid)
    if st is None:
        proc.wait()
        raise RuntimeError(f"{argv[0]} exited at once (exit {proc.returncode}); see {log_path}")
    return ProcRecord(pid=proc.pid, start_time=st)


def stop(rec: ProcRecord, *, grace: float, sig: int = signal.SIGTERM) -> bool:
    """Signal the process, wait up to `grace` seconds, then SIGKILL. True if it had to be killed."""
    if not is_alive(rec):
        _reap(rec.pid)
        return False
    os.kill(rec.pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not is_alive(rec):
            return False
        time.sleep(0.1)
    if is_alive(rec):
        os.kill(rec.pid, signal.SIGKILL)
        for _ in range(100):
            _reap(rec.pid)
            if not is_alive(rec):
                break
            time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (within one fab run)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
