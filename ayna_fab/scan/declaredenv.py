"""Variables a project lists for itself: `.env.example` (and its usual other names) and the
`ENV` lines of its Dockerfiles. They complete what the code's reads show (a variable read by a
library, not the settings) and give values a person chose (a Dockerfile's production settings).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ayna_fab.scan.settingsmodule import deploy_files

EXAMPLES = (".env.example", ".env.sample", ".env.template", ".env.dist", "env.example", "example.env")
LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
# What Dockerfiles set for the image itself, never for the app's .env.
IMAGE_ONLY = {"PATH", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "HOME",
              "DEBIAN_FRONTEND", "VIRTUAL_ENV", "UV_COMPILE_BYTECODE", "UV_LINK_MODE", "UV_PROJECT_ENVIRONMENT",
              "PORT", "DJANGO_SETTINGS_MODULE"}   # the units bind the registry's ports; settings: settingsmodule


def _unquote(value: str) -> str:
    value = re.sub(r"\s+#.*$", "", value) if not value.startswith(("'", '"')) else value
    try:
        parts = shlex.split(value)
    except ValueError:
        return value
    return parts[0] if len(parts) == 1 else value


def example(root: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name in EXAMPLES:
        path = root / name
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                m = LINE_RE.match(line)
                if m and m.group(1) not in out and m.group(1) not in IMAGE_ONLY:
                    out[m.group(1)] = (_unquote(m.group(2)), name)
    return out


def docker_env(root: Path) -> dict[str, tuple[str, str]]:
    """ENV KEY=VALUE ... and ENV KEY VALUE lines (continuations joined)."""
    out: dict[str, tuple[str, str]] = {}
    for path in deploy_files(root):
        if not path.name.startswith("Dockerfile"):
            continue
        where = path.relative_to(root).as_posix()
        text = re.sub(r"\\\n", " ", path.read_text(errors="replace"))
        for m in re.finditer(r"^\s*ENV\s+(.+)$", text, re.M):
            body = m.group(1).strip()
            try:
                words = shlex.split(body)
            except ValueError:
                continue
            if words and "=" not in words[0]:           # ENV KEY value
                pairs = [(words[0], " ".join(words[1:]))]
            else:
                pairs = [tuple(w.split("=", 1)) for w in words if "=" in w]
            for key, value in pairs:
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and key not in IMAGE_ONLY and "$" not in value:
                    out.setdefault(key, (value, where))
    return out


def declared(root: Path) -> dict[str, tuple[str, str]]:
    """name: (value, where listed); .env.example first, then Dockerfiles."""
    out = example(root)
    for key, v in docker_env(root).items():
        out.setdefault(key, v)
    return out
