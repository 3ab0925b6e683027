"""The hosts' package index: wheels downloaded on the controller, shown read-only to hosts.

Hosts have no internet, like many production servers behind a private index.
Rebuilt when the requirement files change (a digest of them is kept beside it).
"""

from __future__ import annotations

import fcntl
import hashlib
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from ayna_fab import local

from . import commands
from .settings import BASE_REQUIREMENTS, SandboxSettings

DIGEST = ".requirements.sha256"   # bookworm's wheels (3.11); other Pythons' beside them, stamped apart
PROJECT_FILE = "wheelhouse-requirements.txt"


def requirements_for(projects) -> tuple[Path, ...]:
    """The base tools plus each project's wheelhouse-requirements.txt, where it ships one.

    Hosts cannot reach PyPI, so a project that wants to be deployed to the sandbox
    lists its locked runtime wheels there (uv export --no-hashes of its uv.lock).
    """
    extra = [Path(p.source) / PROJECT_FILE for p in projects if (Path(p.source) / PROJECT_FILE).is_file()]
    return (BASE_REQUIREMENTS, *extra)


def digest(settings: SandboxSettings) -> str:
    h = hashlib.sha256()
    for req in settings.requirements:
        h.update(str(req).encode() + b"\0" + req.read_bytes() + b"\0")
    return h.hexdigest()


def stamp_name(python_version: str) -> str:
    """The digest file of the wheels for one Python: one wheelhouse serves every suite (a pure
    Python wheel once), and each Python's wheels are downloaded and checked on their own."""
    return DIGEST if python_version == "3.11" else f".requirements-py{python_version}.sha256"


def ensure(settings: SandboxSettings, say: Callable[[str], None]) -> bool:
    """Download what the requirement files name, if not already there; True if it did."""
    wh = settings.wheelhouse_dir
    wh.mkdir(parents=True, exist_ok=True)
    with open(settings.cache_dir / "wheelhouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        want = digest(settings)
        stamp = wh / stamp_name(settings.python_version)
        if stamp.exists() and stamp.read_text().strip() == want:
            return False
        say(f"downloading wheels for the hosts into {wh}")
        # one resolution per file: projects may pin different versions of one package (each has its lock)
        for req in settings.requirements:
            local.run(commands.pip_download(sys.executable, wh, [req], platform.machine(),
                                            python_version=settings.python_version),
                      step="sandbox wheelhouse", timeout=1800,
                      hint="the controller needs PyPI (or PIP_INDEX_URL) to fill the hosts' wheelhouse")
        stamp.write_text(want + "\n")
        return True
