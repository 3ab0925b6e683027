"""Where `fab`'s start-up goes: the interpreter, Fabric itself, and ayna-fab's tasks.

    .venv/bin/python benchmarks/startup.py [--runs 15] [--tool-dir DIR]

Medians over --runs of the wall time of `python -c pass`, of importing Fabric's command line
(what any fabfile pays), and of `fab --list` (Fabric plus loading fabfile.py, which imports
ayna-fab's tasks); the last minus the second is ayna-fab's own share. Then the ten slowest
imports under the fabfile, from `python -X importtime` (cumulative microseconds; importtime
itself inflates them). --tool-dir measures another checkout's fabfile, for a before and after.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall(argv: list[str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.monotonic() - t)
    return statistics.median(times)


def slowest_imports(cwd: Path, top: int = 10) -> list[tuple[int, str]]:
    """Cumulative import times of modules imported by the fabfile (not by Fabric itself)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "import fabric.main, sys; sys.path.insert(0, '.'); import fabfile"],
                       cwd=cwd, capture_output=True, text=True, check=True)
    rows = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    seen_fabric = {name.strip() for _, name in rows[: next(i for i, (_, n) in enumerate(rows)
                                                           if n.strip() == "fabric.main") + 1]}
    mine = [(us, name) for us, name in rows if name.strip() not in seen_fabric]
    return sorted(mine, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--tool-dir", type=Path, default=REPO)
    args = ap.parse_args()
    fab = str(Path(sys.executable).with_name("fab"))
    bare = wall([sys.executable, "-c", "pass"], args.tool_dir, args.runs)
    fabric = wall([sys.executable, "-c", "import fabric.main"], args.tool_dir, args.runs)
    listed = wall([fab, "--list"], args.tool_dir, args.runs)
    print(f"median of {args.runs}, tool: {args.tool_dir}")
    print(f"python -c pass             {bare:6.3f}s")
    print(f"import fabric.main         {fabric:6.3f}s  (Fabric, invoke, paramiko: {fabric - bare:.3f}s)")
    print(f"fab --list                 {listed:6.3f}s  (ayna-fab's tasks: {listed - fabric:.3f}s)")
    print("slowest imports under the fabfile (cumulative, with -X importtime):")
    for us, name in slowest_imports(args.tool_dir):
        print(f"  {us / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
