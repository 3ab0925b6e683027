#!/usr/bin/env python3
"""Implementations of uavcrew's Poe tasks (see [tool.poe.tasks] in pyproject.toml).

    python scripts/poe_commands.py COMMAND [ARGS...]

The Makefile calls `poe TASK`; every Poe task runs one command of this file.
Only the standard library is used, so the file also works on a server whose
release venv has no development tools.

Deploys and rollbacks are done by ayna-fab (`fab`), run from a developer
machine: it uploads the committed code to /opt/ayna/uavcrew/releases/vN on
every host, installs it, migrates, flips `current` and checks health.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = PROJECT_ROOT / "src" / "web"
SRC_DIR = PROJECT_ROOT / "src"
PROJECT_NAME = "uavcrew"
SERVICES = ("web", "api", "celery", "beat")
UNITS = tuple(f"{PROJECT_NAME}-{service}" for service in SERVICES)
DEFAULT_WEB_PORT = 8130
DEFAULT_API_PORT = 8131
VARIANTS_DIR = PROJECT_ROOT / "failure_modes"
DEPENDENCY_CHANGE_LOCK = VARIANTS_DIR / "dependency-change" / "uv.lock"
# Pre-locked pyproject.toml/uv.lock variants used by failure_modes.py: the
# project's own files plus one dependency, inserted after DEPENDENCY_ANCHOR.
DEPENDENCY_ANCHOR = '    "python-dotenv>=1.0",\n'
DEPENDENCY_VARIANTS = {
    "bad-dependency": (
        "cowsay>=6.1",
        "# failure mode bad-dependency: deliberately absent from the servers' wheelhouse,\n"
        "    # so the offline install of this lock fails.",
    ),
    "dependency-change": (
        "humanize>=4.17.0",
        "# dependency-change: a small pure-Python addition (its wheel is in the wheelhouse).",
    ),
}


def _load_env() -> None:
    """Load the project's .env the way the application does (environment wins)."""
    env_file = PROJECT_ROOT / ".env"
    if not env_file.is_file():
        return
    try:
        from dotenv import load_dotenv
    except ImportError:
        return
    load_dotenv(env_file, override=False)


def _run(argv: list[str], **kwargs) -> int:
    print("+ " + " ".join(argv), flush=True)
    try:
        return subprocess.call(argv, **kwargs)
    except FileNotFoundError:
        print(f"error: {argv[0]} not found on PATH", file=sys.stderr)
        return 127


def _manage(*args: str) -> int:
    _load_env()
    return _run([sys.executable, str(WEB_DIR / "manage.py"), *args], cwd=WEB_DIR)


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def _fab(task: str, target: str, extra: list[str]) -> int:
    fab = shutil.which(os.environ.get("AYNA_FAB", "fab"))
    if fab is None:
        print(
            "error: ayna-fab is not installed (it provides `fab`).\n"
            "  Install it on this machine, e.g. `uv tool install ayna-fab`,\n"
            "  and describe your hosts in hosts.toml.",
            file=sys.stderr,
        )
        return 2
    return _run([fab, "-H", target, task, "--project", PROJECT_NAME, *extra])


# --- commands ----------------------------------------------------------------


def cmd_dev(args: argparse.Namespace) -> int:
    """Django's runserver and uvicorn --reload side by side, until Ctrl-C."""
    _load_env()
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    web_port = env.get("WEB_PORT", str(DEFAULT_WEB_PORT))
    api_port = env.get("API_PORT", str(DEFAULT_API_PORT))
    commands = [
        [sys.executable, str(WEB_DIR / "manage.py"), "runserver", f"127.0.0.1:{web_port}"],
        [
            sys.executable, "-m", "uvicorn", "--reload",
            "--app-dir", str(SRC_DIR), "--reload-dir", str(SRC_DIR / "api"),
            "--host", "127.0.0.1", "--port", api_port, "api.main:app",
        ],
    ]
    procs = [subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env) for argv in commands]
    print(f"web: http://127.0.0.1:{web_port}/   api: http://127.0.0.1:{api_port}/", flush=True)
    try:
        while all(proc.poll() is None for proc in procs):
            try:
                procs[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return max((proc.returncode or 0) for proc in procs) if procs else 0


def cmd_deploy(args: argparse.Namespace) -> int:
    extra = ["--ref", args.ref] if args.ref else []
    return _fab("deploy", args.target, extra + args.extra)


def cmd_rollback(args: argparse.Namespace) -> int:
    extra = ["--to", args.to] if args.to else []
    return _fab("rollback", args.target, extra + args.extra)


def cmd_migrate(args: argparse.Namespace) -> int:
    return _manage("migrate", *args.extra)


def cmd_shell(args: argparse.Namespace) -> int:
    return _manage("shell", *args.extra)


def cmd_logs(args: argparse.Namespace) -> int:
    argv = ["journalctl", "--follow", "--lines", str(args.lines)]
    for unit in UNITS:
        argv += ["--unit", unit]
    return _run(argv)


def cmd_services(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _run(["systemctl", "status", "--no-pager", *UNITS])
    return _run([*_sudo(), "systemctl", args.action, *UNITS])


def cmd_test(args: argparse.Namespace) -> int:
    return _run([sys.executable, "-m", "pytest", *args.extra], cwd=PROJECT_ROOT)


def cmd_lint(args: argparse.Namespace) -> int:
    """Byte-compile every source file, then Django's system checks."""
    status = _run([sys.executable, "-m", "compileall", "-q", str(SRC_DIR), str(PROJECT_ROOT / "scripts")])
    if status:
        return status
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    return _manage("check")


def _export(lock_dir: Path) -> list[str]:
    """Runtime requirements of the lock in lock_dir, as `name==version` lines."""
    out = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
         "--no-header", "--no-annotate", "--project", str(lock_dir)],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        # Drop environment markers: pip evaluates them against the machine that
        # downloads, not against the servers' Python 3.11.2, and would skip e.g.
        # async-timeout (python_full_version < '3.11.3') that the servers need.
        lines.append(line.split(";", 1)[0].strip())
    return lines


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    """Regenerate wheelhouse-requirements.txt (the wheels servers install offline)."""
    import tempfile

    requirements = set(_export(PROJECT_ROOT))
    # The dependency-change variant's lock adds a package; its wheel must be
    # in the wheelhouse too. uv export needs a pyproject.toml next to the lock.
    with tempfile.TemporaryDirectory() as tmp:
        variant = DEPENDENCY_CHANGE_LOCK.parent
        shutil.copy(variant / "pyproject.toml", tmp)
        shutil.copy(variant / "uv.lock", tmp)
        requirements |= set(_export(Path(tmp)))
    header = (
        "# Wheels that uavcrew's servers install offline (uv sync --frozen --no-dev\n"
        "# --offline --no-index --find-links WHEELHOUSE). Generated by\n"
        "# `python scripts/poe_commands.py wheelhouse` from uv.lock plus\n"
        "# failure_modes/dependency-change/uv.lock, environment markers removed.\n"
        "# Download with:\n"
        "#   pip download --isolated -d WHEELHOUSE -r wheelhouse-requirements.txt \\\n"
        "#     --only-binary=:all: --python-version 3.11 --implementation cp \\\n"
        "#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \\\n"
        "#     --platform manylinux_2_28_x86_64\n"
    )
    target = PROJECT_ROOT / "wheelhouse-requirements.txt"
    target.write_text(header + "".join(f"{line}\n" for line in sorted(requirements, key=lambda r: r.split("==")[0])), encoding="utf-8")
    print(f"wrote {target} ({len(requirements)} packages)")
    return 0


def cmd_relock_variants(args: argparse.Namespace) -> int:
    """Re-create failure_modes/*/{pyproject.toml,uv.lock} from the project's files.

    Run after changing pyproject.toml or uv.lock, then `wheelhouse`. Starting
    from the project's lock keeps every other pin identical.
    """
    import tempfile

    base = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if base.count(DEPENDENCY_ANCHOR) != 1:
        print(f"error: pyproject.toml must contain exactly one {DEPENDENCY_ANCHOR.strip()}", file=sys.stderr)
        return 1
    for name, (requirement, comment) in DEPENDENCY_VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            text = base.replace(DEPENDENCY_ANCHOR, f'{DEPENDENCY_ANCHOR}    {comment}\n    "{requirement}",\n')
            (work / "pyproject.toml").write_text(text, encoding="utf-8")
            shutil.copy(PROJECT_ROOT / "uv.lock", work / "uv.lock")
            status = _run(["uv", "lock", "--project", str(work)])
            if status:
                return status
            target = VARIANTS_DIR / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "pyproject.toml", target / "pyproject.toml")
            shutil.copy(work / "uv.lock", target / "uv.lock")
        print(f"wrote {target}/pyproject.toml and uv.lock")
    return 0


ASSETS_SOURCE = WEB_DIR / "crew" / "static" / "crew" / "site.css"
ASSETS_BUILD = WEB_DIR / "crew" / "static" / "crew" / "build"   # git-ignored: ayna-fab's build step makes it


def minify_css(text: str) -> str:
    """Comments and runs of whitespace out: a stand-in for a real frontend build (npm, tailwind)."""
    import re

    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s*([{}:;,])\s*", r"\1", text).replace(";}", "}").strip() + "\n"


def cmd_assets(args: argparse.Namespace) -> int:
    """Build the stylesheet into crew/static/crew/build (deterministic: same input, same bytes)."""
    import hashlib
    import json

    css = minify_css(ASSETS_SOURCE.read_text())
    ASSETS_BUILD.mkdir(parents=True, exist_ok=True)
    (ASSETS_BUILD / "site.min.css").write_text(css)
    digest = hashlib.sha256(css.encode()).hexdigest()[:12]
    (ASSETS_BUILD / "assets.json").write_text(json.dumps({"site.min.css": digest}, indent=1) + "\n")
    print(f"site.min.css: {len(css)} bytes ({ASSETS_SOURCE.stat().st_size} before), {digest}")
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """GET the live web and api health endpoints (a post-deploy hook: runs on the server)."""
    import json
    import urllib.error
    import urllib.request

    failed = 0
    for name, port, path in (("web", os.environ.get("WEB_PORT", DEFAULT_WEB_PORT), "/health/"),
                             ("api", os.environ.get("API_PORT", DEFAULT_API_PORT), "/health")):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                body = json.loads(response.read() or b"{}")
                print(f"{name}: {response.status}, release {body.get('release')}")
        except (OSError, ValueError) as exc:
            print(f"{name}: {exc}")
            failed += 1
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poe_commands.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("dev", help="start the development servers").set_defaults(func=cmd_dev)

    p = sub.add_parser("deploy", help="deploy with ayna-fab")
    p.add_argument("target", nargs="?", default="production", help="host or group in hosts.toml")
    p.add_argument("--ref", help="git ref to deploy (default: ayna-fab's)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("rollback", help="roll back with ayna-fab")
    p.add_argument("target", nargs="?", default="production", help="host or group in hosts.toml")
    p.add_argument("--to", help="release to return to, e.g. v3")
    p.set_defaults(func=cmd_rollback)

    sub.add_parser("migrate", help="apply migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("shell", help="Django shell").set_defaults(func=cmd_shell)

    p = sub.add_parser("logs", help="follow the services' journal")
    p.add_argument("--lines", type=int, default=100)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("services", help="systemctl for all of uavcrew's units")
    p.add_argument("action", choices=("start", "stop", "restart", "status"))
    p.set_defaults(func=cmd_services)

    sub.add_parser("assets", help="build the stylesheet into crew/static/crew/build").set_defaults(func=cmd_assets)
    sub.add_parser("smoke", help="GET the live health endpoints").set_defaults(func=cmd_smoke)
    sub.add_parser("test", help="run pytest").set_defaults(func=cmd_test)
    sub.add_parser("lint", help="compile sources and run Django checks").set_defaults(func=cmd_lint)
    sub.add_parser("wheelhouse", help="regenerate wheelhouse-requirements.txt").set_defaults(
        func=cmd_wheelhouse
    )
    sub.add_parser(
        "relock-variants", help="re-lock the dependency variants under failure_modes/"
    ).set_defaults(func=cmd_relock_variants)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
