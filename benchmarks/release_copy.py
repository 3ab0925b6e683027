"""What copying a release's unchanged files (instead of hard-linking them) costs a one-file redeploy.

    .venv/bin/python benchmarks/release_copy.py local [--files 50,5000] [--runs 5] [--code DIR]
    .venv/bin/python benchmarks/release_copy.py sandbox [--extra 5000] [--runs 3] [--code DIR]

`local` runs the host program's stage call (the step that builds releases/vN) on this machine:
a base release of N files of 4 KiB, then one-file redeploys; it prints the median time the host
reports for the step and the disk the new release takes of its own. `sandbox` deploys the demo
project plus --extra files of 4 KiB to a sandbox host of its own (prefix aynarcpy, ports 2871..)
and prints the upload step and the wall time of one-file redeploys, as `fab` reports them.

--code is the ayna-fab source tree to measure (default: this one), so two versions can be
compared on the same machine: e.g. a `git archive` of an older commit unpacked in /tmp.
"""

from __future__ import annotations

import argparse
import inspect
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SIZE = 4096


def load(code: Path):
    sys.path.insert(0, str(code))
    from ayna_fab.remote import hostcall  # noqa: E402
    from ayna_fab.commands import hostcalls as cmd  # noqa: E402
    from ayna_fab.config.model import Project  # noqa: E402
    from ayna_fab.config.layout import Layout  # noqa: E402
    from ayna_fab.remote.transport import Result  # noqa: E402
    assert Path(hostcall.__file__).is_relative_to(code), f"imported {hostcall.__file__}, not from {code}"
    return hostcall, cmd, Project, Layout, Result


def tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def local(args) -> None:
    hostcall, cmd, Project, Layout, Result = load(args.code)
    project = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")
    no_deletions = [] if "deleted" in inspect.signature(cmd.stage).parameters else None

    def call(command) -> tuple[dict, float]:
        p = subprocess.run(["bash", "-c", command.script], capture_output=True, text=True, check=True)
        step = re.search(r"^@@step upload ([0-9.]+)", p.stdout, re.M)
        answer = hostcall.parse(Result(p.returncode, p.stdout, p.stderr), host="local", step="bench")
        return answer, float(step.group(1)) if step else 0.0

    for n in args.files:
        with tempfile.TemporaryDirectory(prefix="ayna-bench-copy.") as tmp:
            lay = Layout(tmp, "demo", "production")
            os.makedirs(lay.releases)
            os.makedirs(f"{lay.shared}/media")
            open(lay.env_file, "w").close()
            call(cmd.plan(lay, project, {"token": "t", "by": "bench"}))

            def stage(number, base, files):
                archive = f"{lay.releases}/.upload-v{number}.tar.gz"
                with open(archive, "wb") as f:
                    f.write(tgz(files))
                return call(cmd.stage(lay, "t", number, base, archive, no_deletions, {"release": f"v{number}"}))

            stage(1, None, {f"pkg{i % 50}/f{i}.py": os.urandom(SIZE) for i in range(n)})
            took = []
            for r in range(args.runs):
                _, seconds = stage(r + 2, r + 1, {"pkg0/f0.py": os.urandom(SIZE)})
                took.append(seconds)
            newest = Path(lay.release(args.runs + 1))
            own = sum(p.lstat().st_blocks * 512 for p in newest.rglob("*")
                      if p.is_file() and not p.is_symlink() and p.lstat().st_nlink == 1)
            print(f"{n:>6} files: stage of a one-file redeploy median {statistics.median(took) * 1000:7.1f} ms "
                  f"(min {min(took) * 1000:.1f}, max {max(took) * 1000:.1f}; {args.runs} runs); "
                  f"the new release's own disk {own / 1024 / 1024:.1f} MiB")


def sandbox(args) -> None:
    sys.path.insert(0, str(HERE))
    from ayna_fab.sandbox import manager  # noqa: E402
    from ayna_fab.sandbox.settings import BASE_REQUIREMENTS, SandboxSettings  # noqa: E402
    fab = str(Path(sys.executable).with_name("fab"))
    tmp = Path(tempfile.mkdtemp(prefix="ayna-bench-copy-"))
    settings = SandboxSettings.from_env(state_dir=tmp / "state", prefix="aynarcpy", ssh_port_base=2870,
                                        requirements=(BASE_REQUIREMENTS,
                                                      HERE / "examples/uavcrew/wheelhouse-requirements.txt"))
    try:
        hs = manager.up(settings, 1, lambda m: None)[0]
        src = tmp / "uavcrew"
        shutil.copytree(HERE / "examples/uavcrew", src, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        for i in range(args.extra):
            path = src / "assets" / f"d{i % 100}" / f"f{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(SIZE // 2).hex().encode())
        git = ["git", "-C", str(src), "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run(git + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-qm", "x"], check=True)
        inv = tmp / "hosts.toml"
        inv.write_text(f'[defaults]\nidentity_file = "{settings.key_path}"\nknown_hosts = "{settings.known_hosts_path}"\n'
                       f'[projects.uavcrew]\nsource = "{src}"\nenv = "production"\n'
                       f'env_file = "{HERE / "examples/uavcrew.sandbox.env"}"\ncreate_database = true\n'
                       f'[hosts.sandbox1]\nhostname = "127.0.0.1"\nport = {hs.ssh_port}\nprojects = ["uavcrew"]\n')
        env = {**os.environ, "AYNA_FAB_HOSTS": str(inv), "PYTHONPATH": str(args.code)}

        def fab_run(*argv) -> tuple[str, float]:
            t = time.monotonic()
            p = subprocess.run([fab, *argv], cwd=args.code, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"fab {' '.join(argv)} failed:\n{p.stdout}\n{p.stderr}")
            return p.stdout, time.monotonic() - t

        fab_run("-H", "sandbox1", "setup")
        fab_run("-H", "sandbox1", "deploy")
        upload, wall = [], []
        for i in range(args.runs):
            banner = src / "src/web/crew/banner.py"
            banner.write_text(banner.read_text().rstrip("\n") + f"\n# edit {i}\n")
            subprocess.run(git + ["commit", "-qam", f"edit {i}"], check=True)
            out, seconds = fab_run("-H", "sandbox1", "deploy")
            upload.append(float(re.search(r"\] upload\s+([0-9.]+)s", out).group(1)))
            wall.append(seconds)
        files = sum(1 for _ in src.rglob("*") if _.is_file() and ".git" not in _.parts)
        print(f"{files} files in the project: one-file redeploy: upload step median {statistics.median(upload):.2f}s "
              f"(min {min(upload):.2f}, max {max(upload):.2f}); whole deploy median {statistics.median(wall):.2f}s "
              f"(min {min(wall):.2f}, max {max(wall):.2f}); {args.runs} runs; code {args.code}")
    finally:
        manager.down(settings, lambda m: None)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("where", choices=("local", "sandbox"))
    ap.add_argument("--files", type=lambda s: [int(x) for x in s.split(",")], default=[50, 5000])
    ap.add_argument("--extra", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--code", type=lambda s: Path(s).resolve(), default=HERE)
    args = ap.parse_args()
    (local if args.where == "local" else sandbox)(args)


if __name__ == "__main__":
    main()
