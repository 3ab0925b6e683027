"""Print wall times of a first deploy, a one-file redeploy and a rollback on one sandbox host.

    .venv/bin/python benchmarks/deploy_cycle.py [--runs 5] [--rtt-ms 0]

Each figure is the wall time of the `fab` command a person would type (Python start-up and
SSH connection included), median of --runs. Uses a sandbox of its own (prefix aynabench,
ports 2401..). "First deploy" starts from a host with no release and an empty database, with
uv's cache already warm (as on any server after its very first deploy). --rtt-ms adds
round-trip latency on the SSH link, to see how the step count matters on a far server.
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

from ayna_fab.remote import ssh  # noqa: E402
from ayna_fab.sandbox import forwarder, manager  # noqa: E402
from ayna_fab.sandbox.settings import BASE_REQUIREMENTS, SandboxSettings  # noqa: E402

FAB = str(Path(sys.executable).with_name("fab"))
ROOT = "/opt/ayna/uavcrew"
UNITS = ("uavcrew-web-blue", "uavcrew-web-green", "uavcrew-api-blue", "uavcrew-api-green", "uavcrew-celery-blue",
         "uavcrew-celery-green", "uavcrew-beat")


def timed(argv: list[str], env: dict) -> float:
    t = time.monotonic()
    p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{p.stdout}\n{p.stderr}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rtt-ms", type=float, default=0.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ayna-bench-"))
    settings = SandboxSettings.from_env(state_dir=tmp / "state", prefix="aynabench", ssh_port_base=2400,
                                        requirements=(BASE_REQUIREMENTS, REPO / "examples/uavcrew/wheelhouse-requirements.txt"))
    try:
        hs = manager.up(settings, 1, lambda m: None)[0]
        src = tmp / "uavcrew"
        shutil.copytree(REPO / "examples/uavcrew", src, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        git = ["git", "-C", str(src), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-qm", "x"], check=True)
        inv = tmp / "hosts.toml"
        inv.write_text(f"""[defaults]
identity_file = "{settings.key_path}"
known_hosts = "{settings.known_hosts_path}"
[projects.uavcrew]
source = "{src}"
env = "production"
env_file = "{REPO / 'examples/uavcrew.sandbox.env'}"
create_database = true
[hosts.sandbox1]
hostname = "127.0.0.1"
port = {hs.ssh_port}
projects = ["uavcrew"]
""")
        env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
        timed([FAB, "-H", "sandbox1", "setup"], env)
        conn = ssh.connect(manager.endpoint(hs, settings))
        reset = (f"systemctl stop {' '.join(UNITS)}; rm -rf {ROOT}/releases/v* "
                 f"{ROOT}/releases/current {ROOT}/releases/blue {ROOT}/releases/green {ROOT}/venv; cd / && runuser -u postgres -- dropdb --if-exists uavcrew "
                 "&& runuser -u postgres -- createdb -O uavcrew uavcrew")
        timed([FAB, "-H", "sandbox1", "deploy"], env)  # warms uv's cache once
        forwarder.request(hs.control, f"rtt {args.rtt_ms}")
        first, redeploy, rollback = [], [], []
        for i in range(args.runs):
            ssh.run(conn, reset)
            first.append(timed([FAB, "-H", "sandbox1", "deploy"], env))
        for i in range(args.runs):
            banner = src / "src/web/crew/banner.py"
            banner.write_text(banner.read_text().rstrip("\n") + f"\n# edit {i}\n")
            subprocess.run(git + ["commit", "-qam", f"edit {i}"], check=True)
            redeploy.append(timed([FAB, "-H", "sandbox1", "deploy"], env))
        for i in range(args.runs):
            rollback.append(timed([FAB, "-H", "sandbox1", "rollback"], env))
            # roll forward again with a deploy so the next rollback has the same shape
            subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", f"again {i}"], check=True)
            timed([FAB, "-H", "sandbox1", "deploy"], env)
        conn.close()
        for name, xs in (("first deploy", first), ("one-file redeploy", redeploy), ("rollback", rollback)):
            print(f"{name:<18} median {statistics.median(xs):5.2f}s  (min {min(xs):.2f}, max {max(xs):.2f}; "
                  f"{args.runs} runs, rtt {args.rtt_ms:.0f} ms)")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
