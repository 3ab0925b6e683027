"""A project's own Caddy directives: the `caddy/*.caddy` files of its committed HEAD.

The standard lets a project carry a `caddy/` directory. Its files (in name order) join the
project's site block; setup validates the result with `caddy validate` before anything
changes on the host. Only committed files count, as for deploys.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ayna_fab.errors import UsageError
from ayna_fab.ops.gitsource import Source

DIR = "caddy"


def read(source: Path) -> str | None:
    """The snippet's text, or None when the project has none (or its source is not a git checkout)."""
    if not source.is_dir():
        return None
    try:
        src = Source.open(source)
        revision = src.resolve("HEAD")
    except UsageError:
        return None
    names = sorted(n for n in src.files(revision) if n.startswith(DIR + "/") and n.endswith(".caddy")
                   and n.count("/") == 1)
    parts = []
    for name in names:
        spec = f"{revision}:{src.prefix + '/' if src.prefix else ''}{name}"
        out = subprocess.run(["git", "-C", str(src.toplevel), "show", spec], capture_output=True, text=True)
        if out.returncode == 0:
            parts.append(f"# {name}\n{out.stdout.rstrip()}\n")
    return "".join(parts) or None
