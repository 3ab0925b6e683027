"""Print the wall time of a fleet deploy to 1, 2, 4 and 8 sandbox hosts (median of --runs).

    .venv/bin/python benchmarks/fleet_deploy.py [--runs 3] [--sizes 1,2,4,8]

Each run deploys a one-file change to the first N hosts with `fab -H h1,...,hN deploy`
(Python start-up and connections included). The hosts share one PostgreSQL, as a fleet
does, so migrations run once. Uses a sandbox of its own (prefix aynafleet, ports 2451..).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ayna_fab.sandbox import manager  # noqa: E402
from ayna_fab.sandbox.settings import BASE_REQUIREMENTS, SandboxSettings  # noqa: E402

FAB = str(Path(sys.executable).with_name("fab"))


def run(argv, env):
    t = time.monotonic()
    p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{p.stdout}\n{p.stderr}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="1,2,4,8")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="ayna-fleet-"))
    settings = SandboxSettings.from_env(state_dir=tmp / "state", prefix="aynafleet", ssh_port_base=2450,
                                        requirements=(BASE_REQUIREMENTS, REPO / "examples/uavcrew/wheelhouse-requirements.txt"))
    try:
        hosts = manager.up(settings, max(sizes), lambda m: None, shared_db=True)
        src = tmp / "uavcrew"
        shutil.copytree(REPO / "examples/uavcrew", src, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        git = ["git", "-C", str(src), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-qm", "x"], check=True)
        env_file = tmp / "fleet.env"
        env_file.write_text((REPO / "examples/uavcrew.sandbox.env").read_text()
                            .replace("@localhost:5432/uavcrew", "@/uavcrew?host=/srv/ayna-db"))
        lines = [f'[defaults]\nidentity_file = "{settings.key_path}"\nknown_hosts = "{settings.known_hosts_path}"\n',
                 f'[projects.uavcrew]\nsource = "{src}"\nenv = "production"\nenv_file = "{env_file}"\n'
                 'create_database = true\n']
        for hs in hosts:
            lines.append(f'[hosts.{hs.name}]\nhostname = "127.0.0.1"\nport = {hs.ssh_port}\nprojects = ["uavcrew"]\n')
        inv = tmp / "hosts.toml"
        inv.write_text("\n".join(lines))
        env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
        names = [hs.name for hs in hosts]
        for name in names:
            run([FAB, "-H", name, "setup"], env)
        run([FAB, "-H", ",".join(names), "deploy"], env)  # every host has a live release and a warm cache
        results = {}
        for n in sizes:
            times = []
            for i in range(args.runs):
                banner = src / "src/web/crew/banner.py"
                banner.write_text(banner.read_text().rstrip("\n") + f"\n# fleet {n} {i}\n")
                subprocess.run(git + ["commit", "-qam", f"fleet {n} {i}"], check=True)
                times.append(run([FAB, "-H", ",".join(names[:n]), "deploy"], env))
            results[n] = times
        one = statistics.median(results[sizes[0]])
        for n, times in results.items():
            med = statistics.median(times)
            print(f"{n} host(s): median {med:5.2f}s (min {min(times):.2f}, max {max(times):.2f}; {args.runs} runs)"
                  f"  {med / one:4.2f}x the {sizes[0]}-host time")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
