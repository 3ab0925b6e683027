"""What connecting to a fleet costs the laptop: one SSH connection, one round trip, and opening
1, 8, 16 and 32 at once, at several parallelism settings.

    .venv/bin/python benchmarks/fleet_connect.py [--runs 5] [--sizes 1,8,16,32] [--rtt-ms 50]
                                                 [--parallel 8,16,32] [--json FILE]

The fleet model in docs/fleet-scale.md needs the costs a deploy's figures mix together:

- connect: one `Remote.open` (TCP, SSH handshake, key exchange, public-key login, as ayna-fab
  opens them, with host keys checked), its wall time and the laptop's CPU time, hosts one after
  the other (the median over every host and run);
- round trip: one `true` run over an open connection (a session opened, run, closed): what each
  of a deploy's round trips costs at least, before the host does any work;
- open_all: `transport.open_all` over the first N hosts at each --parallel value, wall and CPU.

The hosts need only sshd: nothing is set up or deployed. Uses a sandbox of its own (prefix
aynafleet, ports 2451..; AYNA_FAB_SANDBOX_PREFIX and AYNA_FAB_SANDBOX_PORT_BASE override them),
so run it apart from benchmarks/fleet_deploy.py, which uses the same ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import load, machine, median, sandbox_settings, set_rtt  # noqa: E402

from ayna_fab.remote.transport import Command, Remote, open_all  # noqa: E402
from ayna_fab.sandbox import manager  # noqa: E402


def timed(fn):
    """fn's result, its wall seconds and this process's CPU seconds (paramiko's threads included)."""
    wall, cpu = time.monotonic(), time.process_time()
    out = fn()
    return out, time.monotonic() - wall, time.process_time() - cpu



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="1,8,16,32")
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--parallel", default="8,16,32")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    parallels = [int(x) for x in args.parallel.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="ayna-fleet-connect-"))
    settings = sandbox_settings(tmp, "aynafleet", 2450)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rtt_ms": args.rtt_ms, "runs": args.runs, "command": " ".join(sys.argv), "load_before": load()}
    try:
        hosts = manager.up(settings, max(sizes), lambda m: None)
        set_rtt(hosts, args.rtt_ms)
        eps = [manager.endpoint(hs, settings) for hs in hosts]
        connects, trips = [], []
        for _ in range(args.runs):
            for ep in eps:
                remote, wall, cpu = timed(lambda: Remote.open(ep))
                connects.append((wall, cpu))
                _, wall, cpu = timed(lambda: remote.run(Command("true", "probe", changes=False)))
                trips.append((wall, cpu))
                remote.close()
        report["connect"] = {"wall": median([w for w, _ in connects]), "cpu": median([c for _, c in connects])}
        report["round_trip"] = {"wall": median([w for w, _ in trips]), "cpu": median([c for _, c in trips])}
        rows: dict[str, list] = {}
        for r in range(args.runs):
            for p in parallels:
                for n in (sizes if r % 2 == 0 else sizes[::-1]):
                    remotes, wall, cpu = timed(lambda: open_all(eps[:n], max_parallel=p))
                    for remote in remotes.values():
                        remote.close()
                    rows.setdefault(f"{p}/{n}", []).append((wall, cpu))
        report["open_all"] = {k: {"wall": median([w for w, _ in xs]), "cpu": median([c for _, c in xs])}
                              for k, xs in rows.items()}
        report["load_after"] = load()
        print(table(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
            print(f"written: {args.json}")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


def table(report: dict) -> str:
    c, t = report["connect"], report["round_trip"]
    lines = [f"connecting at rtt {report['rtt_ms']:g} ms, median of {report['runs']} run(s)",
             f"one connection: {c['wall'] * 1000:.0f} ms wall, {c['cpu'] * 1000:.0f} ms laptop CPU",
             f"one round trip (`true`): {t['wall'] * 1000:.0f} ms wall, {t['cpu'] * 1000:.0f} ms laptop CPU",
             f"{'parallel':>8} {'hosts':>5} {'open_all s':>10} {'CPU s':>6} {'CPU ms/host':>11}"]
    for key, v in report["open_all"].items():
        p, n = (int(x) for x in key.split("/"))
        lines.append(f"{p:>8} {n:>5} {v['wall']:>10.2f} {v['cpu']:>6.2f} {v['cpu'] / n * 1000:>11.0f}")
    lines.append(f"{report['machine']}; {report['date']}; load average before {report['load_before']}, "
                 f"after {report['load_after']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
