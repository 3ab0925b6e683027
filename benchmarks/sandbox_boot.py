"""Print how long `sandbox.up` takes cold and warm, and the memory an idle host uses.

    .venv/bin/python benchmarks/sandbox_boot.py [--runs 5] [--count 2] [--cold]

Warm: root filesystem and wheelhouse cached. Cold (--cold): a fresh, empty cache directory,
so debootstrap and the wheel download run too. Uses its own sandbox directory, names and
ports, so it does not disturb a running sandbox.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ayna_fab.sandbox import manager
from ayna_fab.sandbox.settings import SandboxSettings


def cycle(settings: SandboxSettings, count: int) -> tuple[float, float, list[float]]:
    t = time.monotonic()
    manager.up(settings, count, lambda m: None)
    up = time.monotonic() - t
    time.sleep(5)  # let the hosts settle before reading memory
    mem = [r["memory_mib"] for r in manager.status(settings)]
    t = time.monotonic()
    manager.down(settings, lambda m: None)
    return up, time.monotonic() - t, mem


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--cold", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ayna-bench-") as tmp:
        base = SandboxSettings.from_env(state_dir=Path(tmp) / "state", prefix="aynabench", ssh_port_base=2400)
        if args.cold:
            cold = SandboxSettings.from_env(state_dir=Path(tmp) / "state", prefix="aynabench",
                                            ssh_port_base=2400, cache_dir=Path(tmp) / "cache")
            up, down, mem = cycle(cold, args.count)
            print(f"cold up ({args.count} hosts, rootfs + wheelhouse built): {up:.1f}s; down {down:.1f}s")
        ups, downs, mems = [], [], []
        for _ in range(args.runs):
            up, down, mem = cycle(base, args.count)
            ups.append(up)
            downs.append(down)
            mems += mem
        print(f"warm up ({args.count} hosts), {args.runs} runs: median {statistics.median(ups):.2f}s "
              f"(min {min(ups):.2f}, max {max(ups):.2f}); down median {statistics.median(downs):.2f}s")
        print(f"idle host memory (PSS of every process in it, 5 s after boot): "
              f"median {statistics.median(mems):.1f} MiB (min {min(mems):.1f}, max {max(mems):.1f})")


if __name__ == "__main__":
    main()
