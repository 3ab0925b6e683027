"""The local git checkout a project deploys from: refs, revisions and archives of committed code.

Only committed code is deployed (git archive of a commit), so a dirty working
tree can never leak into a release. Refs are validated before git sees them.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ayna_fab.errors import UsageError

# What git allows in ref names, minus anything a shell or git's option parser could misread.
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+-]{0,199}")


def check_ref(ref: str) -> str:
    if not REF_RE.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/", ".")) or "@{" in ref:
        raise UsageError(f"{ref!r} is not a ref ayna-fab accepts", step="resolve ref",
                         hint="use a branch, tag or commit: letters, digits and . _ / @ + -, "
                              "not starting with '-'")
    return ref


@dataclass(frozen=True)
class Source:
    """A project inside a git checkout (possibly a subdirectory of a larger repository)."""

    path: Path
    toplevel: Path
    prefix: str            # the project's directory inside the repository, '' at the top

    @classmethod
    def open(cls, path: Path) -> "Source":
        if not path.is_dir():
            raise UsageError(f"source {path} does not exist", step="resolve ref",
                             hint="set projects.NAME.source in hosts.toml to the local git checkout")
        top = _git(path, "rev-parse", "--show-toplevel", what=f"{path} is not in a git checkout").strip()
        prefix = _git(path, "rev-parse", "--show-prefix").strip().rstrip("/")
        return cls(path, Path(top), prefix)

    def resolve(self, ref: str) -> str:
        """The full commit id REF names, or a UsageError before anything remote happens."""
        check_ref(ref)
        out = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--verify", "--quiet",
                              "--end-of-options", f"{ref}^{{commit}}"], capture_output=True, text=True)
        if out.returncode != 0:
            raise UsageError(f"ref {ref!r} does not resolve to a commit in {self.path}", step="resolve ref",
                             hint="commit your work, or name an existing branch, tag or commit")
        return out.stdout.strip()

    def has_commit(self, revision: str) -> bool:
        return subprocess.run(["git", "-C", str(self.path), "cat-file", "-e", f"{revision}^{{commit}}"],
                              capture_output=True).returncode == 0

    def tree(self, revision: str) -> str:
        return f"{revision}:{self.prefix}" if self.prefix else f"{revision}^{{tree}}"

    def blob(self, revision: str, name: str) -> str | None:
        """The blob id of a file at a revision (a cheap identity for uv.lock), or None."""
        spec = f"{revision}:{self.prefix + '/' if self.prefix else ''}{name}"
        out = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--verify", "--quiet", spec],
                             capture_output=True, text=True)
        return out.stdout.strip() or None

    def files(self, revision: str) -> list[str]:
        out = _git(self.toplevel, "ls-tree", "-r", "-z", "--name-only", self.tree(revision))
        return [n for n in out.split("\0") if n]

    def changes(self, base: str, revision: str) -> tuple[list[str], list[str]]:
        """(changed or added, deleted) paths between two revisions, relative to the project."""
        out = _git(self.toplevel, "diff", "--no-renames", "-z", "--name-status", self.tree(base),
                   self.tree(revision))
        fields = [f for f in out.split("\0") if f]
        changed, deleted = [], []
        for status, name in zip(fields[0::2], fields[1::2]):
            (deleted if status == "D" else changed).append(name)
        return changed, deleted

    def archive(self, revision: str, paths: list[str] | None = None) -> bytes:
        """A tar.gz of the project's files at revision (only `paths`, if given)."""
        argv = ["git", "-C", str(self.toplevel), "archive", "--format=tar.gz", self.tree(revision)]
        if paths is not None:
            argv += ["--", *paths]
        proc = subprocess.run(argv, capture_output=True)
        if proc.returncode != 0:
            raise UsageError(f"git archive failed: {proc.stderr.decode(errors='replace').strip()}",
                             step="upload")
        return proc.stdout

    def dirty(self) -> bool:
        out = _git(self.path, "status", "--porcelain", "--", ".")
        return bool(out.strip())


def _git(cwd: Path, *args: str, what: str | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(what or f"git {' '.join(args)} failed: {proc.stderr.strip()}", step="resolve ref")
    return proc.stdout
