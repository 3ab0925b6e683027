"""Commands that take a project off a host (fab remove), as root. Built as data; nothing runs here.

Each is idempotent and prints `changed: ...` lines, like setup's: a second removal says nothing
changed, and setup afterwards puts everything back.
"""

from __future__ import annotations

from ayna_fab.remote.transport import Command

from . import q
from .setup import remove_unit_lines


def remove_units(names: list[str]) -> Command:
    """Stop and disable the units and sockets, remove their files, reload systemd once."""
    lines = ["set -eu", "reload=0"]
    for name in names:
        lines += remove_unit_lines(name, f"stopped and removed {name}")
    lines += ["if [ $reload = 1 ]; then systemctl daemon-reload; "
              f"systemctl reset-failed {' '.join(q(n) for n in names)} 2>/dev/null || true; fi"]
    return Command("\n".join(lines), "units")


def remove_files(paths: list[str], step: str) -> Command:
    """Remove files root installed (a sudoers drop-in, the programs it names); never a directory."""
    lines = ["set -eu"]
    for path in paths:
        lines += [f"if [ -e {q(path)} ] || [ -L {q(path)} ]; then rm -f {q(path)}; "
                  f"echo {q(f'changed: removed {path}')}; fi"]
    return Command("\n".join(lines), step)


def purge_tree(root: str, shared: str, keep: str) -> Command:
    """Everything under the project's root but `keep` (its backups, in shared/): releases, the venv
    link, logs, the env file, media, the lock. rm never follows a link it meets."""
    name = keep.rsplit("/", 1)[1]
    return Command("\n".join([
        "set -eu",
        f"[ -d {q(root)} ] || exit 0",
        f"for p in {q(root)}/* {q(root)}/.[!.]* {q(root)}/..?*; do",
        "  [ -e \"$p\" ] || [ -L \"$p\" ] || continue",
        f"  [ \"$p\" = {q(shared)} ] && continue",
        "  rm -rf -- \"$p\"; echo \"changed: removed $p\"",
        "done",
        f"if [ -d {q(shared)} ]; then",
        f"  for p in {q(shared)}/* {q(shared)}/.[!.]* {q(shared)}/..?*; do",
        "    [ -e \"$p\" ] || [ -L \"$p\" ] || continue",
        f"    [ \"$p\" = {q(shared + '/' + name)} ] && continue",
        "    rm -rf -- \"$p\"; echo \"changed: removed $p\"",
        "  done",
        "fi",
    ]), "files")
