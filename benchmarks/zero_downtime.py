"""Failed requests during each routine operation, and how fast a failing release is refused.

    .venv/bin/python benchmarks/zero_downtime.py [--runs 3] [--tool-dir DIR] [--json out.json] [--without-caddy]

One sandbox host (prefix aynazd, ports 2451..) runs the demo; steady load (3 clients per endpoint,
a new connection per request, from the host itself) runs during each operation only. Rows: a
code-only deploy, a dependency-changing deploy (once: the demo has one variant), a deploy whose web health returns 500 (with the
seconds from `fab deploy` to its refusal), and a manual rollback. --tool-dir runs another checkout
of ayna-fab (its fabfile and package) against the same host, to compare before and after.
The load also goes through Caddy (HTTPS, tls = "internal", checked against its root certificate),
where users meet the site, with failures counted per path; --without-caddy leaves Caddy out (for
a --tool-dir from before it).
"""

from __future__ import annotations

import argparse
import json
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
from tests.e2e.conftest import Sandbox  # noqa: E402
from ayna_fab.provision import caddyfile  # noqa: E402
from tests.e2e.load import URLS, Load  # noqa: E402

DOMAIN = "uavcrew.test"
THROUGH_CADDY = [f"https://{DOMAIN}/health/", f"https://{DOMAIN}/api/health"]

FAB = str(Path(sys.executable).with_name("fab"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tool-dir", type=Path, default=REPO)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--without-caddy", action="store_true")
    args = ap.parse_args()
    caddy = not args.without_caddy
    tmp = Path(tempfile.mkdtemp(prefix="ayna-zd-"))
    settings = SandboxSettings.from_env(state_dir=tmp / "state", prefix="aynazd", ssh_port_base=2450,
                                        requirements=(BASE_REQUIREMENTS,
                                                      REPO / "examples/uavcrew/wheelhouse-requirements.txt"))
    try:
        sandbox = Sandbox(settings, manager.up(settings, 1, lambda m: None))
        src = tmp / "uavcrew"
        shutil.copytree(REPO / "examples/uavcrew", src, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        git = ["git", "-C", str(src), "-c", "user.name=b", "-c", "user.email=b@b"]
        for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"]):
            subprocess.run(git + argv, check=True)

        def mode(name: str, branch: str | None = None, text: str | None = None) -> None:
            if branch:
                subprocess.run(git + ["checkout", "-q", "-B", branch, "main"], check=True)
            subprocess.run([sys.executable, str(src / "failure_modes.py"), name, "--project-dir", str(src)]
                           + (["--text", text] if text else []), check=True, capture_output=True)
            subprocess.run(git + ["add", "-A"], check=True)
            subprocess.run(git + ["commit", "-qm", name], check=True)
            if branch:
                subprocess.run(git + ["checkout", "-q", "main"], check=True)

        env_file = REPO / "examples/uavcrew.sandbox.env"
        site = ""
        if caddy:
            env_file = tmp / "uavcrew.env"
            env_file.write_text((REPO / "examples/uavcrew.sandbox.env").read_text().replace(
                "ALLOWED_HOSTS=localhost,127.0.0.1", f"ALLOWED_HOSTS=localhost,127.0.0.1,{DOMAIN}"))
            site = f'domains = ["{DOMAIN}"]\napi_prefix = "/api"\ntls = "internal"\n'
        inv = tmp / "hosts.toml"
        inv.write_text(f"""[defaults]
identity_file = "{settings.key_path}"
known_hosts = "{settings.known_hosts_path}"
keep_releases = 3
[projects.uavcrew]
source = "{src}"
env = "production"
env_file = "{env_file}"
create_database = true
{site}[hosts.sandbox1]
hostname = "127.0.0.1"
port = {sandbox.hosts[0].ssh_port}
projects = ["uavcrew"]
""")
        env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}

        def fab(*argv: str) -> tuple[int, float]:
            t = time.monotonic()
            p = subprocess.run([FAB, "-H", "sandbox1", *argv], cwd=args.tool_dir, env=env, capture_output=True,
                               text=True)
            return p.returncode, time.monotonic() - t

        for step in (("setup",), ("deploy",)):
            code, _ = fab(*step)
            assert code == 0, step
        urls = URLS + (THROUGH_CADDY if caddy else [])
        if caddy:
            sandbox.check(0, f"echo '127.0.0.1 {DOMAIN}' >> /etc/hosts")
        paths = dict(zip(("web", "api", "web via caddy", "api via caddy"), urls))
        rows: dict[str, dict] = {}

        def under_load(name: str, argv: tuple[str, ...], want: int) -> None:
            load = Load(sandbox, 0, "bench", urls=urls, clients=3, cafile=caddyfile.ROOT_CERT).start()
            time.sleep(2)
            code, seconds = fab(*argv)
            time.sleep(2)
            stats = load.stop()
            assert code == want, (name, code)
            row = rows.setdefault(name, {**{path: [] for path in paths}, "served": [], "seconds": []})
            for path, url in paths.items():
                row[path].append(stats[url]["failed"])
            row["served"].append(sum(stats[u]["ok"] + stats[u]["failed"] for u in urls))
            row["seconds"].append(round(seconds, 2))

        for i in range(args.runs):
            mode("code-change", text=f"Edition {i}")
            under_load("code-only deploy", ("deploy",), 0)
            if i == 0:  # the demo has one dependency variant: measured once
                mode("dependency-change")
                under_load("dependency-changing deploy", ("deploy",), 0)
            mode("health-500", branch="broken")
            under_load("deploy failing its health check", ("deploy", "--ref", "broken"), 1)
            under_load("manual rollback", ("rollback",), 0)
        print(f"{'operation':<34} " + " ".join(f"{'failed ' + p:>20}" for p in paths)
              + f" {'requests':>9} {'wall s':>7}   (median of {args.runs}; tool: {args.tool_dir})")
        for name, r in rows.items():
            print(f"{name:<34} " + " ".join(f"{statistics.median(r[p]):>20.0f}" for p in paths)
                  + f" {statistics.median(r['served']):>9.0f} {statistics.median(r['seconds']):>7.2f}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
