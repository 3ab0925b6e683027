"""ayna-fab and Capistrano 3 side by side: the same demo project, the same steps, interleaved runs.

    bash benchmarks/vs_capistrano/run.sh [--runs 5] [--rtt-ms 0,50] [--json FILE]

Two sandbox hosts, set up alike by `fab setup`: ayna-fab deploys to the first, Capistrano (Debian's
`capistrano` package, installed here if missing; Capfile and config/ beside this file) to the
second, with the same steps. Each run does every row once with both tools, in alternating order,
so load from other work on the machine falls on both. Figures are medians over --runs of the wall
time of the command a person types (`fab ...`, `cap sandbox ...`, start-up included) and of the
traffic the host's SSH forwarder counted: bytes sent from the laptop and turns (about one round
trip each; see ayna_fab/sandbox/forwarder.py). Rows:

- first deploy: no release and an empty database on the host, uv's cache already warm;
- no-change redeploy, one-file redeploy, dependency-changing redeploy (a package added, or
  removed again, alternately);
- rollback (to the previous release; a deploy, not timed, rolls forward again after it);
- failing-health deploy: web's health answers 500. ayna-fab refuses it before the flip;
  Capistrano flips, restarts, sees the 500 and puts the live release back (its deploy:failed
  hook in config/deploy.rb). Seconds until the command exits non-zero, and whether the live
  site was left untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (DEMO_ENV, FAB, ROOT, UNITS, DemoRepo, Result, host_calls, machine, median,  # noqa: E402
                      run, sandbox_settings, set_rtt, steps)

from ayna_fab.sandbox import manager  # noqa: E402
from tests.e2e.conftest import Sandbox  # noqa: E402

HERE = Path(__file__).resolve().parent
ROWS = ("first deploy", "no-change redeploy", "one-file redeploy", "dependency-changing redeploy", "rollback",
        "failing-health deploy")
TOOLS = ("ayna-fab", "capistrano")


def ensure_capistrano() -> str:
    """Debian's capistrano package, installed if `cap` is missing."""
    cap = shutil.which("cap")
    if cap:
        return cap
    print("installing Debian's capistrano package", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "capistrano"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("cap") or "/usr/bin/cap"


def cap_version(cap: str) -> str:
    return subprocess.run([cap, "--version"], capture_output=True, text=True, cwd=HERE).stdout.split("\n")[0].strip()


class Bench:
    """The two hosts, the demo repository, and one command per tool for each operation."""

    def __init__(self, tmp: Path, sandbox: Sandbox, cap: str) -> None:
        self.sandbox = sandbox
        self.cap = cap
        self.repo = DemoRepo(tmp / "uavcrew")
        s = sandbox.settings
        inv = tmp / "hosts.toml"
        hosts = "\n".join(f'[hosts.{hs.name}]\nhostname = "127.0.0.1"\nport = {hs.ssh_port}\nprojects = ["uavcrew"]\n'
                          for hs in sandbox.hosts)
        inv.write_text(f'[defaults]\nidentity_file = "{s.key_path}"\nknown_hosts = "{s.known_hosts_path}"\n'
                       f'[projects.uavcrew]\nsource = "{self.repo.path}"\nenv = "production"\n'
                       f'env_file = "{DEMO_ENV}"\ncreate_database = true\n{hosts}')
        self.fab_env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
        self.cap_env = {**os.environ, "CAP_PORT": str(sandbox.hosts[1].ssh_port), "CAP_KEY": str(s.key_path),
                        "CAP_KNOWN_HOSTS": str(s.known_hosts_path), "CAP_SOURCE": str(self.repo.path)}

    def setup(self) -> None:
        for hs in self.sandbox.hosts:
            run([FAB, "-H", hs.name, "setup"], self.fab_env)
        # Capistrano's host: the units' venv path goes through `current`, as ayna-fab's first deploy makes it.
        # Its blue slot's link names `current` itself: the standard's one unit per service, through current.
        self.sandbox.check(1, f"ln -sfn {ROOT}/releases/current/.venv {ROOT}/venv && chown -h adonis: {ROOT}/venv && "
                              f"ln -sfn current {ROOT}/releases/blue && chown -h adonis: {ROOT}/releases/blue")

    def fab(self, *argv: str, want: int | None = 0) -> Result:
        return run([FAB, "-H", "sandbox1", *argv], self.fab_env, hosts=[self.sandbox.hosts[0]], want=want)

    def capistrano(self, *argv: str, want: int | None = 0, branch: str = "main") -> Result:
        env = {**self.cap_env, "BRANCH": branch}
        return run([self.cap, "sandbox", *argv], env, cwd=HERE, hosts=[self.sandbox.hosts[1]], want=want)

    def deploy(self, tool: str, want: int | None = 0, branch: str = "main") -> Result:
        if tool == "ayna-fab":
            return self.fab("deploy", *(["--ref", branch] if branch != "main" else []), want=want)
        return self.capistrano("deploy", want=want, branch=branch)

    def rollback(self, tool: str) -> Result:
        return self.fab("rollback") if tool == "ayna-fab" else self.capistrano("deploy:rollback")

    def reset(self) -> None:
        """Both hosts back to no release and an empty database (uv's cache stays warm)."""
        for i in (0, 1):
            # KILL first: a warm shutdown on a loaded machine is not what is measured, and may take minutes.
            self.sandbox.check(i, f"systemctl kill -s KILL {' '.join(UNITS)}; systemctl stop {' '.join(UNITS)}; "
                                  f"rm -rf {ROOT}/releases/v* {ROOT}/releases/current "
                                  f"{ROOT}/cap-releases; "
                                  + (f"rm -f {ROOT}/venv {ROOT}/releases/blue {ROOT}/releases/green; " if i == 0 else "")
                                  + "cd / && runuser -u postgres -- dropdb --if-exists uavcrew "
                                    "&& runuser -u postgres -- createdb -O uavcrew uavcrew", timeout=600)

    def live(self, i: int) -> str:
        """The release `current` points at, and whether web's health answers 2xx."""
        out = self.sandbox.check(i, f"readlink -f {ROOT}/releases/current; "
                                    "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:8130/health/")
        return out.strip()


def one_run(b: Bench, n: int, figures: dict) -> None:
    order = TOOLS if n % 2 == 0 else TOOLS[::-1]

    def row(name: str, act) -> None:
        for tool in order:
            r = act(tool)
            host_steps = steps(r.output).get("sandbox1", {}) if tool == "ayna-fab" else {}
            calls = host_calls(r.output).get("sandbox1") if tool == "ayna-fab" else None
            figures[name][tool].append({"seconds": round(r.seconds, 3), "code": r.code, **r.traffic,
                                        "steps": host_steps, "host_calls": calls, **getattr(r, "extra", {})})

    b.reset()
    row("first deploy", b.deploy)
    row("no-change redeploy", b.deploy)
    b.repo.edit_one_file(f"run {n}")
    row("one-file redeploy", b.deploy)
    if n % 2 == 0:
        b.repo.mode("dependency-change")
    else:  # back to the demo's own dependencies: a removal is a dependency change too
        b.repo.git("checkout", b.repo.first, "--", "pyproject.toml", "uv.lock")
    b.repo.commit(f"dependencies {n}")
    row("dependency-changing redeploy", b.deploy)
    row("rollback", b.rollback)
    b.repo.git("commit", "-q", "--allow-empty", "-m", f"forward {n}")
    for tool in order:
        b.deploy(tool)
    b.repo.git("checkout", "-q", "-B", "broken", "main")
    b.repo.mode("health-500")
    b.repo.commit("health-500")
    b.repo.git("checkout", "-q", "main")

    def failing(tool: str) -> Result:
        i = TOOLS.index(tool)
        before = b.live(i)
        r = b.deploy(tool, want=None, branch="broken")
        if r.code == 0:
            raise SystemExit(f"{tool} deployed a release whose health answers 500:\n{r.output}")
        after = b.live(i)
        r.extra = {"live_before": before, "live_after": after,
                   "untouched": tool == "ayna-fab" and before == after,
                   "restored": before == after}
        return r

    row("failing-health deploy", failing)


def summarize(figures: dict) -> dict:
    out = {}
    for name, per_tool in figures.items():
        cell = {}
        for tool, xs in per_tool.items():
            cell[tool] = {k: median([x[k] for x in xs]) for k in ("seconds", "bytes_up", "bytes_down", "turns",
                                                                   "connections")}
            if name == "failing-health deploy":
                cell[tool]["untouched"] = all(x["untouched"] for x in xs)
                cell[tool]["restored"] = all(x["restored"] for x in xs)
        cell["ratio"] = cell["ayna-fab"]["seconds"] / cell["capistrano"]["seconds"]
        xs = per_tool["ayna-fab"]
        names = list(dict.fromkeys(step for x in xs for step in x["steps"]))
        cell["ayna-fab"]["steps"] = {step: median([x["steps"].get(step, 0.0) for x in xs]) for step in names}
        # the laptop's part: wall minus the host calls as the laptop timed them (steps overlap on the
        # host, so their sum is no measure); a failing deploy prints no closing line: its steps then
        outside = [x["seconds"] - (x["host_calls"] if x.get("host_calls") is not None else sum(x["steps"].values()))
                   for x in xs]
        cell["ayna-fab"]["outside host calls"] = median(outside)
        out[name] = cell
    return out


def table(rtt: float, summary: dict, runs: int) -> str:
    lines = [f"rtt {rtt:g} ms, median of {runs} interleaved run(s)",
             f"{'':<30} {'ayna-fab':>9} {'Capistrano':>10} {'ratio':>6} {'turns':>13} {'kB sent':>15}",
             f"{'':<30} {'s':>9} {'s':>10} {'':>6} {'ayna / cap':>13} {'ayna / cap':>15}"]
    for name, c in summary.items():
        a, k = c["ayna-fab"], c["capistrano"]
        lines.append(f"{name:<30} {a['seconds']:>9.2f} {k['seconds']:>10.2f} {c['ratio']:>6.2f} "
                     f"{a['turns']:>6.0f} / {k['turns']:<4.0f} {a['bytes_up'] / 1000:>6.1f} / {k['bytes_up'] / 1000:<6.1f}")
    if "failing-health deploy" in summary:
        c = summary["failing-health deploy"]
        lines.append("failing-health deploy: live site untouched: ayna-fab "
                     f"{'yes' if c['ayna-fab']['untouched'] else 'NO'}, Capistrano "
                     f"{'yes' if c['capistrano']['untouched'] else 'no (flipped, then put back)'}; "
                     f"live release restored: ayna-fab {c['ayna-fab']['restored']}, Capistrano {c['capistrano']['restored']}")
    return "\n".join(lines)


def profile(summary: dict) -> str:
    """ayna-fab's steps as the host timed each one (some run at once), and the laptop's part: the
    wall time outside the host calls as the laptop timed them (start-up, connecting, latency)."""
    names = list(dict.fromkeys(step for c in summary.values() for step in c["ayna-fab"]["steps"]))
    short = {"first deploy": "first", "no-change redeploy": "no-change", "one-file redeploy": "one-file",
             "dependency-changing redeploy": "deps", "rollback": "rollback", "failing-health deploy": "failing"}
    lines = ["ayna-fab by step (median s)".ljust(22) + "".join(f"{short.get(r, r):>10}" for r in summary)]
    for step in names + ["outside host calls"]:
        cells = [c["ayna-fab"]["steps"].get(step) if step != "outside host calls" else c["ayna-fab"]["outside host calls"]
                 for c in summary.values()]
        lines.append(f"{step:<22}" + "".join(f"{x:>10.2f}" if x is not None else f"{'-':>10}" for x in cells))
    lines.append(f"{'wall':<22}" + "".join(f"{c['ayna-fab']['seconds']:>10.2f}" for c in summary.values()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rtt-ms", default="0,50", help="comma-separated round-trip times to measure at")
    ap.add_argument("--json", type=Path, default=Path("vs_capistrano.json"))
    args = ap.parse_args()
    rtts = [float(x) for x in args.rtt_ms.split(",")]
    cap = ensure_capistrano()
    tmp = Path(tempfile.mkdtemp(prefix="ayna-vs-cap-"))
    settings = sandbox_settings(tmp, "aynacap", 2550)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "capistrano": cap_version(cap), "runs": args.runs, "command": " ".join(sys.argv), "results": {}}
    try:
        sandbox = Sandbox(settings, manager.up(settings, 2, lambda m: None))
        b = Bench(tmp, sandbox, cap)
        b.setup()
        for tool in TOOLS:  # warm uv's cache on both hosts
            b.deploy(tool)
        for rtt in rtts:
            set_rtt(sandbox.hosts, rtt)
            figures = {name: {tool: [] for tool in TOOLS} for name in ROWS}
            for n in range(args.runs):
                one_run(b, n, figures)
                print(f"rtt {rtt:g} ms: run {n + 1}/{args.runs} done", file=sys.stderr, flush=True)
                # what is done so far stays on disk if a later run fails
                report["results"][f"{rtt:g}"] = {"summary": summarize(figures), "runs": figures, "done": n + 1}
                args.json.write_text(json.dumps(report, indent=1))
            summary = summarize(figures)
            print(table(rtt, summary, args.runs), flush=True)
            print(profile(summary), flush=True)
            print(flush=True)
        print(f"{report['machine']}; {report['capistrano']}; {report['date']}")
        args.json.write_text(json.dumps(report, indent=1))
        print(f"written: {args.json}")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
