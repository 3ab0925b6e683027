"""Where a one-file redeploy's time goes, step by step; two checkouts of the tool side by side.

    AYNA_FAB_HOSTS=FILE .venv/bin/python benchmarks/one_file_redeploy.py --source DIR \
        [--host sandbox1] [--runs 7] [--tool-dir A --tool-dir B]

On a host already set up and deployed to (a sandbox host: see docs/sandbox.md), each run edits
one file of the git checkout --source (the demo's src/web/crew/banner.py), commits it, and runs
`fab -H HOST deploy --json` from each --tool-dir in turn, alternating which goes first, so load
from other work on the machine falls on both. Prints, per tool, the median of --runs of every
step as the host timed it (the upload as the laptop timed it: its archive, transfer and the
host's staging), the time in host calls and round trips as the laptop counted them, and the
command's wall time (start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CALLS_RE = re.compile(r"\((?P<seconds>\d+\.\d+)s in host calls, (?P<trips>\d+) round trips\)")


def edit(source: Path, tag: str) -> None:
    banner = source / "src/web/crew/banner.py"
    banner.write_text(banner.read_text().rstrip("\n") + f"\n# {tag}\n")
    git = ["git", "-C", str(source), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(git + ["commit", "-qam", tag], check=True)


def deploy(tool: Path, host: str) -> dict[str, float]:
    """One `fab deploy` from the checkout `tool` (its own ayna_fab first on the path)."""
    fab = str(Path(sys.executable).with_name("fab"))
    env = {**os.environ, "PYTHONPATH": str(tool)}
    t = time.monotonic()
    p = subprocess.run([fab, "-H", host, "deploy", "--json"], cwd=tool, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"deploy from {tool} failed:\n{p.stdout}\n{p.stderr}")
    doc = json.loads(p.stdout)
    figures = {s["name"]: s["seconds"] for s in doc["hosts"][host]["steps"]}
    m = CALLS_RE.search(p.stderr)
    if m:
        figures["host calls"] = float(m["seconds"])
        figures["round trips"] = float(m["trips"])
    figures["wall"] = wall
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--host", default="sandbox1")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tool-dir", type=Path, action="append", default=[])
    args = ap.parse_args()
    tools = [t.resolve() for t in args.tool_dir] or [REPO]
    seen: dict[Path, list[dict[str, float]]] = {t: [] for t in tools}
    for i in range(args.runs):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            edit(args.source, f"one-file {i} {tool.name} {time.time():.0f}")
            seen[tool].append(deploy(tool, args.host))
    names = list(dict.fromkeys(k for runs in seen.values() for r in runs for k in r))
    print(f"median of {args.runs} one-file redeploys to {args.host}, seconds (round trips: a count)")
    print(f"{'step':<16}" + "".join(f"{t.name[:14]:>16}" for t in tools))
    for name in names:
        cells = [statistics.median(r[name] for r in seen[t] if name in r) if any(name in r for r in seen[t])
                 else float("nan") for t in tools]
        print(f"{name:<16}" + "".join(f"{c:16.3f}" for c in cells))


if __name__ == "__main__":
    main()
