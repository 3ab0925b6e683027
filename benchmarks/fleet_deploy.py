"""A fleet deploy to 1, 8, 16 and 32 sandbox hosts: what the tool costs, apart from the hosts' own work.

    .venv/bin/python benchmarks/fleet_deploy.py [--runs 3] [--sizes 1,8,16,32] [--rtt-ms 50]
                                                [--profiles light,demo] [--parallel 8,32] [--json FILE]

Each run deploys a one-file change to the first N hosts with `fab -H h1,...,hN deploy` (Python
start-up and connections included), sizes interleaved (ascending, then descending). On a 2-core
machine eight hosts running the demo's Django checks at once measure the CPU, not the tool, so
each deploy is split into:

- wall: the whole command;
- slowest host: the longest time one host's calls took, as the laptop timed them (its closing
  line, "N s in host calls"; a host's own steps overlap, so they are not summed);
- overhead: wall minus the slowest host's calls: start-up, connecting, the laptop's work
  between calls, and waiting at each phase's barrier for the slowest host of that phase;
- laptop CPU: the fab process's own CPU time (user + system), and per host; on a machine whose
  cores the hosts share, this is the laptop's cost that wall time cannot show;
- per added host: how much the overhead grows with each host beyond the first, (overhead(N) -
  overhead(1)) / (N - 1);
- turns per host: what the hosts' SSH forwarders counted (about one round trip each), the
  fleet's total over N; and the round trips ayna-fab itself reports for the last host listed.

`--parallel 8,32` runs each size at the first value (`fab deploy --parallel 8`), then the sizes
above it again at each further value, so the rows show whether more hosts at once pay on this
machine. The machine's load average is read before and after, and printed with the table.

Profiles: `light` is a project of the demo's API alone with one uvicorn worker (no Django, no
migrations), so hosts do little; `demo` is the whole demo (web, api, Celery worker and beat),
the hosts sharing one PostgreSQL, as a fleet does, so migrations run once. Only the profile being
measured runs on the hosts. Uses a sandbox of its own (prefix aynafleet, ports 2451..).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (DEMO_ENV, FAB, DemoRepo, host_calls, load, machine, median, run, sandbox_settings,  # noqa: E402
                      set_rtt, steps)

from ayna_fab.sandbox import manager  # noqa: E402
from tests.e2e.conftest import Sandbox  # noqa: E402

PROFILES = {"light": "uavlight", "demo": "uavcrew"}
ROUND_TRIPS_RE = re.compile(r"(\d+) round trips")


def inventory(path: Path, sandbox: Sandbox, src: Path, env_file: Path) -> None:
    """Both profiles on every host, each with its env file (the light one names its own ports)."""
    s = sandbox.settings
    light_env = env_file.with_name("light.env")
    light_env.write_text(env_file.read_text().replace("PROJECT_NAME=uavcrew", "PROJECT_NAME=uavlight")
                         .replace("WEB_PORT=8130", "WEB_PORT=8150").replace("API_PORT=8131", "API_PORT=8151"))
    text = [f'[defaults]\nidentity_file = "{s.key_path}"\nknown_hosts = "{s.known_hosts_path}"\n',
            f'[projects.uavcrew]\nsource = "{src}"\nenv = "production"\nenv_file = "{env_file}"\n'
            'create_database = true\n',
            # The demo's API alone: port range 8150 (outside the standard's table), no Django.
            f'[projects.uavlight]\nsource = "{src}"\nport_base = 8150\nservices = ["api"]\nenv = "production"\n'
            f'env_file = "{light_env}"\n']
    for hs in sandbox.hosts:
        text.append(f'[hosts.{hs.name}]\nhostname = "127.0.0.1"\nport = {hs.ssh_port}\n'
                    'projects = ["uavcrew", "uavlight"]\n')
    path.write_text("\n".join(text))


def only(sandbox: Sandbox, project: str) -> None:
    """Stop every other project's units on every host, so idle apps do not share the CPU."""
    for i in range(len(sandbox.hosts)):
        for other in PROFILES.values():
            if other != project:
                sandbox.check(i, f"systemctl stop '{other}-*' || true")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="1,8,16,32")
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--profiles", default="light,demo")
    ap.add_argument("--parallel", default="8", help="hosts worked on at once, one value or several")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    parallels = [int(x) for x in args.parallel.split(",")]
    profiles = args.profiles.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="ayna-fleet-"))
    settings = sandbox_settings(tmp, "aynafleet", 2450)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rtt_ms": args.rtt_ms, "runs": args.runs, "command": " ".join(sys.argv), "profiles": {},
              "load_before": load(), "parallel": parallels}
    try:
        sandbox = Sandbox(settings, manager.up(settings, max(sizes), lambda m: None, shared_db=True))
        repo = DemoRepo(tmp / "uavcrew")
        env_file = tmp / "fleet.env"
        env_file.write_text(DEMO_ENV.read_text().replace("@localhost:5432/uavcrew", "@/uavcrew?host=/srv/ayna-db"))
        inv = tmp / "hosts.toml"
        inventory(inv, sandbox, repo.path, env_file)
        env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
        names = [hs.name for hs in sandbox.hosts]
        with ThreadPoolExecutor(max_workers=4) as pool:   # one setup per host, a few at once
            list(pool.map(lambda name: run([FAB, "-H", name, "setup"], env), names))
        for i in range(len(names)):  # the light profile's one worker
            sandbox.check(i, "sed -i 's/--workers 2/--workers 1/' /etc/systemd/system/uavlight-api-blue.service "
                             "/etc/systemd/system/uavlight-api-green.service "
                             "&& systemctl daemon-reload")
        set_rtt(sandbox.hosts, args.rtt_ms)
        for profile in profiles:
            project = PROFILES[profile]
            only(sandbox, project)
            run([FAB, "-H", ",".join(names), "deploy", "--project", project], env)  # a live release, a warm cache
            cases = [(p, n) for p in parallels for n in sizes if p == parallels[0] or n > parallels[0]]
            rows: dict[tuple[int, int], list[dict]] = {case: [] for case in cases}
            for r in range(args.runs):
                for p, n in (cases if r % 2 == 0 else cases[::-1]):
                    repo.edit_one_file(f"{profile} {n} {p} {r}")
                    res = run([FAB, "-H", ",".join(names[:n]), "deploy", "--project", project,
                               "--parallel", str(p)], env, hosts=sandbox.hosts[:n])
                    per_host = steps(res.output)
                    slowest = max(host_calls(res.output).values(), default=0.0)
                    trips = ROUND_TRIPS_RE.findall(res.output)
                    rows[(p, n)].append({"wall": round(res.seconds, 3), "cpu": round(res.cpu, 3),
                                         "slowest_host": round(slowest, 3),
                                         "overhead": round(res.seconds - slowest, 3),
                                         "turns_per_host": res.traffic["turns"] / n,
                                         "connections": res.traffic["connections"],
                                         "bytes_up": res.traffic["bytes_up"],
                                         "round_trips": int(trips[-1]) if trips else None, "steps": per_host,
                                         "output": res.output})
                    print(f"{profile}: parallel {p}, {n} host(s): {res.seconds:.1f} s", file=sys.stderr, flush=True)
                    report["profiles"][profile] = {f"{p}/{n}": xs for (p, n), xs in rows.items()}
                    if args.json:   # kept as it grows: a run that stops later still leaves its figures
                        args.json.write_text(json.dumps(report, indent=1))
                print(f"{profile}: run {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
            report["profiles"][profile] = {f"{p}/{n}": xs for (p, n), xs in rows.items()}
        report["load_after"] = load()
        print(table(report, sizes))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
            print(f"written: {args.json}")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


def table(report: dict, sizes: list[int]) -> str:
    lines = [f"fleet deploy of a one-file change, rtt {report['rtt_ms']:g} ms, median of {report['runs']} run(s)",
             f"{'profile':<8} {'par':>3} {'hosts':>5} {'wall s':>7} {'x 1 host':>8} {'slowest host s':>14} {'overhead s':>10} "
             f"{'+ms/host':>8} {'CPU s':>6} {'CPU ms/host':>11} {'turns/host':>10} {'round trips':>11}"]
    first = report["parallel"][0]
    for profile, rows in report["profiles"].items():
        one = median([x["wall"] for x in rows[f"{first}/{sizes[0]}"]])
        first_overhead = median([x["overhead"] for x in rows[f"{first}/{sizes[0]}"]])
        for key, xs in rows.items():
            p, n = (int(x) for x in key.split("/"))
            wall = median([x["wall"] for x in xs])
            overhead = median([x["overhead"] for x in xs])
            cpu = median([x.get("cpu", 0.0) for x in xs])
            growth = f"{(overhead - first_overhead) / (n - sizes[0]) * 1000:.0f}" if n > sizes[0] else "-"
            trips = [x["round_trips"] for x in xs if x["round_trips"] is not None]
            lines.append(f"{profile:<8} {p:>3} {n:>5} {wall:>7.2f} {wall / one:>8.2f} "
                         f"{median([x['slowest_host'] for x in xs]):>14.2f} {overhead:>10.2f} "
                         f"{growth:>8} {cpu:>6.2f} {cpu / n * 1000:>11.0f} "
                         f"{median([x['turns_per_host'] for x in xs]):>10.0f} "
                         f"{(f'{median(trips):.0f}' if trips else '-'):>11}")
    lines.append(f"{report['machine']}; {report['date']}; load average before "
                 f"{report['load_before']}, after {report.get('load_after', '?')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
