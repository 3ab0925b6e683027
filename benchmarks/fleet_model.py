"""The fleet model of docs/fleet-scale.md: a deploy's wall time and laptop CPU for N hosts,
predicted from the per-host costs fleet_deploy.py and fleet_connect.py measured.

    .venv/bin/python benchmarks/fleet_model.py DEPLOY_JSON CONNECT_JSON [--hosts 100,500]
                                               [--parallel 8,32] [--batches all,10%]

An extrapolation, not a measurement: it assumes each host has its own CPU, so a wave of P hosts
takes one host's time (the sandbox hosts share the laptop's cores, so there it takes P times as
long). Within a phase hosts run P at a time; phases follow one another; activation runs batch by
batch, each batch P at a time:

    wall = S + ceil(N/P) * (T_prepare + T_connect) + ceil(N/B) * ceil(B/P) * T_activate
    laptop CPU = CPU_1 + (N - 1) * c

S, T_prepare and T_activate come from the 1-host deploys (its overhead and its steps' medians),
c from the CPU the deploys at P hosts cost beyond one host, T_connect from one connection.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

PREPARE = ("lock + plan", "upload", "install", "check", "preflight")
ACTIVATE = ("restart", "health", "verify")


def step_median(rows: list[dict], names: tuple[str, ...]) -> float:
    """The sum over `names` of each step's median over the runs (one host's steps)."""
    total = 0.0
    for name in names:
        values = [steps[name] for x in rows for steps in x["steps"].values() if name in steps]
        total += statistics.median(values) if values else 0.0
    return total


def costs(deploy: dict, connect: dict) -> dict:
    light = deploy["profiles"]["light"]
    first = deploy["parallel"][0]
    one = light[f"{first}/1"]
    cpu_1 = statistics.median(x["cpu"] for x in one)
    per_host = {}
    for key, rows in light.items():
        p, n = (int(v) for v in key.split("/"))
        if n > 1:
            per_host.setdefault(p, []).append((statistics.median(x["cpu"] for x in rows) - cpu_1) / (n - 1))
    return {"S": statistics.median(x["overhead"] for x in one),
            "T_prepare": step_median(one, PREPARE), "T_activate": step_median(one, ACTIVATE),
            "T_connect": connect["connect"]["wall"], "CPU_1": cpu_1,
            "c": {p: max(v) for p, v in per_host.items()}}


def batch_size(spec: str, n: int) -> int:
    if spec == "all":
        return n
    if spec.endswith("%"):
        return max(1, math.ceil(n * int(spec[:-1]) / 100))
    return int(spec)


def predict(k: dict, n: int, p: int, spec: str) -> tuple[float, float]:
    b = batch_size(spec, n)
    wall = (k["S"] + math.ceil(n / p) * (k["T_prepare"] + k["T_connect"])
            + math.ceil(n / b) * math.ceil(b / p) * k["T_activate"])
    c = k["c"].get(p, max(k["c"].values()))
    return wall, k["CPU_1"] + (n - 1) * c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("deploy", type=Path)
    ap.add_argument("connect", type=Path)
    ap.add_argument("--hosts", default="100,500")
    ap.add_argument("--parallel", default="8,32")
    ap.add_argument("--batches", default="all,10%")
    args = ap.parse_args()
    k = costs(json.loads(args.deploy.read_text()), json.loads(args.connect.read_text()))
    print(f"S {k['S']:.2f} s, T_prepare {k['T_prepare']:.2f} s, T_activate {k['T_activate']:.2f} s, "
          f"T_connect {k['T_connect']:.2f} s, CPU_1 {k['CPU_1']:.2f} s, c "
          + ", ".join(f"{c * 1000:.0f} ms at parallel {p}" for p, c in sorted(k["c"].items())))
    print("| hosts | parallel | batch | waves | wall (predicted) | laptop CPU (predicted) |")
    print("|---|---|---|---|---|---|")
    for n in (int(x) for x in args.hosts.split(",")):
        for p in (int(x) for x in args.parallel.split(",")):
            for spec in args.batches.split(","):
                wall, cpu = predict(k, n, p, spec)
                print(f"| {n} | {p} | {spec} | {math.ceil(n / p)} | {wall:.0f} s | {cpu:.0f} s |")


if __name__ == "__main__":
    main()
