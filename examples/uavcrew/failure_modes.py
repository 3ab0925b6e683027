#!/usr/bin/env python3
"""Switch uavcrew into a known failure (or change) mode by editing its tree.

    python failure_modes.py MODE [--project-dir DIR] [--text TEXT]
    python failure_modes.py --list

Deploy tests copy this project into a git repository, run one mode and
commit the result, then deploy that commit and watch what the deploy tool
does. Every mode edits files in place and prints the paths it touched; no
network access is needed (dependency variants ship pre-locked under
failure_modes/). Applying a mode that is already applied changes nothing
(exit 0, "unchanged"), except code-change, which writes a new text each time.

Exit status: 0 done, 1 the tree does not look like uavcrew (an anchor is
missing), 2 usage error.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = HERE / "failure_modes"

WEB_BANNER = Path("src/web/crew/banner.py")
API_BANNER = Path("src/api/banner.py")
MODELS = Path("src/web/crew/models.py")
MIGRATIONS = Path("src/web/crew/migrations")
WEB_HEALTH = Path("src/web/crew/views.py")
API_HEALTH = Path("src/api/main.py")

# import-error: a module that exists nowhere, imported by the Django app's models.
MISSING_MODULE = "uavcrew_failure_mode_missing_module"
IMPORT_ERROR_LINE = f"import {MISSING_MODULE}  # failure mode import-error\n"

# health-500: raise inside both health handlers, before any response is built.
HEALTH_ANCHORS = {
    WEB_HEALTH: '    report, healthy = build_report("web")\n',
    API_HEALTH: '    report, healthy = build_report("api")\n',
}
HEALTH_RAISE = '    raise RuntimeError("failure mode health-500")\n'

FAILING_MIGRATION_SUFFIX = "failure_mode_raise"

BANNER_RE = re.compile(r'^BANNER = "(?P<text>[^"\n]*)"$', re.MULTILINE)


class ModeError(Exception):
    """The tree does not contain what a mode needs to edit."""


def _read(root: Path, rel: Path) -> str:
    path = root / rel
    if not path.is_file():
        raise ModeError(f"{rel} not found under {root}")
    return path.read_text(encoding="utf-8")


def _write(root: Path, rel: Path, text: str) -> Path:
    (root / rel).write_text(text, encoding="utf-8")
    return rel


def import_error(root: Path, args: argparse.Namespace) -> list[Path]:
    """Make the Django app fail to import: `manage.py check` and every worker die."""
    text = _read(root, MODELS)
    if IMPORT_ERROR_LINE in text:
        return []
    anchor = "from django.db import models\n"
    if anchor not in text:
        raise ModeError(f"{MODELS} has no line {anchor.strip()!r}")
    return [_write(root, MODELS, text.replace(anchor, anchor + IMPORT_ERROR_LINE, 1))]


def health_500(root: Path, args: argparse.Namespace) -> list[Path]:
    """Both health endpoints answer 500; everything else starts and works."""
    changed = []
    for rel, anchor in HEALTH_ANCHORS.items():
        text = _read(root, rel)
        if HEALTH_RAISE + anchor in text:
            continue
        if text.count(anchor) != 1:
            raise ModeError(f"{rel} does not contain exactly one {anchor.strip()!r}")
        changed.append(_write(root, rel, text.replace(anchor, HEALTH_RAISE + anchor)))
    return changed


def _latest_migration(root: Path) -> str:
    names = sorted(
        path.stem
        for path in (root / MIGRATIONS).glob("[0-9][0-9][0-9][0-9]_*.py")
    )
    if not names:
        raise ModeError(f"no migrations in {MIGRATIONS}")
    return names[-1]


def migration_fails(root: Path, args: argparse.Namespace) -> list[Path]:
    """Add a migration whose operation raises: `manage.py migrate` fails."""
    existing = list((root / MIGRATIONS).glob(f"[0-9][0-9][0-9][0-9]_{FAILING_MIGRATION_SUFFIX}.py"))
    if existing:
        return []
    latest = _latest_migration(root)
    number = int(latest[:4]) + 1
    rel = MIGRATIONS / f"{number:04d}_{FAILING_MIGRATION_SUFFIX}.py"
    source = f'''"""Failure mode migration-fails: this migration always raises."""

from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("failure mode migration-fails: this migration always fails")


class Migration(migrations.Migration):

    dependencies = [
        ("crew", "{latest}"),
    ]

    operations = [
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
'''
    return [_write(root, rel, source)]


def _use_variant(root: Path, name: str) -> list[Path]:
    changed = []
    for file_name in ("pyproject.toml", "uv.lock"):
        source = VARIANTS / name / file_name
        if not source.is_file():
            raise ModeError(f"missing prepared variant {source}")
        target = root / file_name
        if target.is_file() and target.read_bytes() == source.read_bytes():
            continue
        shutil.copyfile(source, target)
        changed.append(Path(file_name))
    return changed


def bad_dependency(root: Path, args: argparse.Namespace) -> list[Path]:
    """Lock a real package that the servers' wheelhouse lacks: offline install fails."""
    return _use_variant(root, "bad-dependency")


def dependency_change(root: Path, args: argparse.Namespace) -> list[Path]:
    """Add a small pure-Python dependency (in the wheelhouse): a restart is needed."""
    return _use_variant(root, "dependency-change")


def code_change(root: Path, args: argparse.Namespace) -> list[Path]:
    """Change the visible banner of the web front page and of the API's GET /."""
    texts = {}
    for rel in (WEB_BANNER, API_BANNER):
        match = BANNER_RE.search(_read(root, rel))
        if match is None:
            raise ModeError(f"{rel} has no line BANNER = \"...\"")
        texts[rel] = match.group("text")
    if args.text is not None:
        new = args.text
        if '"' in new or "\\" in new or "\n" in new:
            raise ModeError("--text may not contain quotes, backslashes or newlines")
    else:
        # "UAV crew roster" -> "UAV crew roster (change 1)" -> "... (change 2)"
        current = texts[WEB_BANNER]
        found = re.fullmatch(r"(?P<base>.*) \(change (?P<n>\d+)\)", current)
        base, count = (found["base"], int(found["n"])) if found else (current, 0)
        new = f"{base} (change {count + 1})"
    changed = []
    for rel in (WEB_BANNER, API_BANNER):
        text = _read(root, rel)
        updated = BANNER_RE.sub(lambda _m: f'BANNER = "{new}"', text, count=1)
        if updated != text:
            changed.append(_write(root, rel, updated))
    return changed


MODES = {
    "import-error": import_error,
    "health-500": health_500,
    "migration-fails": migration_fails,
    "bad-dependency": bad_dependency,
    "code-change": code_change,
    "dependency-change": dependency_change,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="failure_modes.py",
        description="Edit the uavcrew tree into a failure or change mode (then commit it).",
    )
    parser.add_argument("mode", nargs="?", choices=sorted(MODES), help="what to switch on")
    parser.add_argument(
        "--project-dir", type=Path, default=HERE,
        help="the uavcrew tree to edit (default: the directory of this script)",
    )
    parser.add_argument("--text", help="code-change: the new banner text")
    parser.add_argument("--list", action="store_true", help="list the modes and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, func in MODES.items():
            print(f"{name:18} {func.__doc__.strip().splitlines()[0]}")
        return 0
    if args.mode is None:
        parser.error("a MODE is required (or --list)")

    root = args.project_dir.resolve()
    try:
        changed = MODES[args.mode](root, args)
    except ModeError as exc:
        print(f"failure_modes.py: {args.mode}: {exc}", file=sys.stderr)
        return 1
    if not changed:
        print(f"{args.mode}: unchanged (already applied)")
    for rel in changed:
        print(f"{args.mode}: changed {rel.as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
