"""Build steps: run on the laptop before anything remote, their outputs carried into the release.

A build runs in a clean export of the commit being deployed (never the working tree, which may
hold uncommitted changes or another branch), so what it produces matches the code it ships
with. Its outputs are usually ignored by git; they travel anyway, like changed files: each
release records the digest of every output file (`build` in its record), and the next deploy
sends only the ones whose digest changed, names the ones that disappeared as deleted, and lets
the host copy the rest from the live release. A build that fails stops the deploy before any
connection, with its output.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ayna_fab import local
from ayna_fab.config.model import BuildStep, Project
from ayna_fab.errors import OperationFailed
from ayna_fab.ops.gitsource import Source

OUTPUT_LINES = 40   # of a failed build's output, shown in its error


@dataclass(frozen=True)
class Built:
    """The build's output files: release-relative name -> (bytes, mode). ran=False: the build
    was skipped (a dry run), so nothing is known about its outputs and none counts as gone."""

    files: Mapping[str, tuple[bytes, int]] = field(default_factory=dict)
    ran: bool = True

    @property
    def digests(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, (data, _) in sorted(self.files.items())}


def run(project: Project, source: Source, revision: str, say: Callable[[str], None], *,
        dry_run: bool = False) -> Built:
    """Every build step of the project, in order, in an export of revision; their outputs."""
    if not project.build:
        return Built()
    if dry_run:   # nothing runs in a dry run, here either
        for step in project.build:
            say(f"[laptop] build:{step.name}: would run {shlex.join(step.command)} in an export of "
                f"{revision[:12]}, producing {', '.join(step.outputs)}")
        return Built(ran=False)
    with tempfile.TemporaryDirectory(prefix="ayna-fab-build.") as tmp:
        export(source, revision, Path(tmp))
        for step in project.build:
            run_step(step, Path(tmp), say)
        files = {}
        for step in project.build:
            files.update(collect(Path(tmp), step))
    say(f"[laptop] build: {len(files)} output files, {sum(len(d) for d, _ in files.values())} bytes")
    return Built(files)


def export(source: Source, revision: str, into: Path) -> None:
    """The project's committed files at revision, as `git archive` makes them."""
    with tarfile.open(fileobj=io.BytesIO(source.archive(revision)), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):   # Python 3.11.4+: refuse what a plain file tree cannot hold
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)


def run_step(step: BuildStep, cwd: Path, say: Callable[[str], None]) -> None:
    started = time.monotonic()
    proc = local.run_project(step.command, step=f"build:{step.name}", timeout=step.timeout, cwd=cwd,
                             hint="run the build in your checkout to see why")
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()[-OUTPUT_LINES:]
        raise OperationFailed(f"{shlex.join(step.command)} exited {proc.returncode}; nothing was sent to any "
                              "host:\n" + "\n".join("    " + line for line in lines), step=f"build:{step.name}",
                              hint="run it in your checkout to see why; fix, commit and deploy again")
    say(f"[laptop] build:{step.name:<8} {seconds:6.2f}s")


def collect(root: Path, step: BuildStep) -> dict[str, tuple[bytes, int]]:
    """The files under the step's outputs; a missing output or a symbolic link stops the deploy."""
    found = {}
    for out in step.outputs:
        path = root / out
        if not path.exists() and not path.is_symlink():
            raise OperationFailed(f"the build finished but produced no {out}", step=f"build:{step.name}",
                                  hint="check the step's outputs in hosts.toml against what the command writes")
        paths = [path] if not path.is_dir() or path.is_symlink() else sorted(
            Path(d) / f for d, dirs, files in os.walk(path) for f in files + [x for x in dirs
                                                                             if (Path(d) / x).is_symlink()])
        for p in paths:
            name = p.relative_to(root).as_posix()
            if p.is_symlink() or not p.is_file():
                raise OperationFailed(f"build output {name} is not a regular file", step=f"build:{step.name}",
                                      hint="build outputs are files and directories, never symbolic links")
            found[name] = (p.read_bytes(), 0o755 if os.access(p, os.X_OK) else 0o644)
    return found


def changes(built: Built, base_meta: Mapping | None, changed: list[str]) -> tuple[list[str], list[str]]:
    """(output files to send, outputs of the base release that are gone): unchanged outputs stay
    on the host. A committed file changed at an output's path is sent as the build made it."""
    if not built.ran:
        return [], []
    before = (base_meta or {}).get("build") or {}
    now = built.digests
    send = sorted(n for n, d in now.items() if before.get(n) != d or n in changed)
    gone = sorted(n for n in before if n not in now and n not in changed)
    return send, gone


def with_files(archive: bytes | None, built: Built, names: list[str]) -> bytes | None:
    """The upload: git's archive of changed files plus the named build outputs, as one tar.gz."""
    if not names:
        return archive
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as dst:
        if archive:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as src:
                for m in src.getmembers():
                    if m.name not in built.files:
                        dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name in names:
            data, mode = built.files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()
