"""The local git checkout a project deploys from: refs, revisions and archives of committed code.

Only committed code is deployed (git archive of a commit), so a dirty working
tree can never leak into a release. Refs are validated before git sees them, and
the names of a commit's files before anything is sent: a name a release uses for
itself, or one the host could not store exactly, stops the deploy here.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ayna_fab.errors import UsageError

# What git allows in ref names, minus anything a shell or git's option parser could misread.
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+-]{0,199}")
# What a release holds besides the project's files (hostprog/staging.py makes them): a committed
# file of one of these names would be replaced by the tool's own, or replace it.
RESERVED = {".env": "the link to shared/.env.{env}", "media": "the link to shared/media",
            ".venv": "the release's virtualenv"}
RESERVED_PREFIX = ".ayna-"   # the release's record, manifest and requirements
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


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
        commit = out.stdout.strip()
        self.check_names(commit)
        return commit

    def check_names(self, revision: str) -> None:
        """Refuse a commit whose files a release cannot hold exactly, before anything is sent:
        names a release uses for itself (a committed media/.gitkeep would turn the shared media
        link into a directory), names that are not UTF-8, and names with control characters
        (the host's manifest holds one name a line)."""
        problems = []
        for raw in self._names(revision):
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{_show(raw)} is not valid UTF-8")
                continue
            top = name.split("/", 1)[0]
            if CONTROL_RE.search(name):
                problems.append(f"{_show(raw)} holds a control character (a newline, a tab...)")
            elif top in RESERVED:
                problems.append(f"{_show(raw)}: every release has {RESERVED[top]} at {top!r}")
            elif top.startswith(RESERVED_PREFIX):
                problems.append(f"{_show(raw)}: {RESERVED_PREFIX}* names are the release's own records")
        if problems:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise UsageError(f"commit {revision[:12]} of {self.path} has files a release cannot hold: "
                             + "; ".join(problems[:5]) + more, step="resolve ref",
                             hint="rename or remove them (git mv, or git rm --cached) and commit again; "
                                  "uploaded media live in shared/media on the host, not in git")

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

    def texts(self, revision: str, names: tuple[str, ...]) -> dict[str, str]:
        """The text of each of names (relative to the project) that exists at revision, in one git call."""
        specs = [f"{revision}:{self.prefix + '/' if self.prefix else ''}{n}" for n in names]
        out = subprocess.run(["git", "-C", str(self.path), "cat-file", "--batch"], capture_output=True,
                             input=("\n".join(specs) + "\n").encode())
        found, data = {}, out.stdout
        for name in names:
            header, _, data = data.partition(b"\n")
            parts = header.split()
            if len(parts) == 3 and parts[1] == b"blob":
                size = int(parts[2])
                found[name] = data[:size].decode("utf-8", "replace")
                data = data[size + 1:]
        return found

    def _names(self, revision: str) -> list[bytes]:
        out = _git_bytes(self.toplevel, "ls-tree", "-r", "-z", "--name-only", self.tree(revision))
        return [n for n in out.split(b"\0") if n]

    def files(self, revision: str) -> list[str]:
        return [n.decode("utf-8", "surrogateescape") for n in self._names(revision)]

    def changes(self, base: str, revision: str) -> tuple[list[str], list[str]]:
        """(changed or added, deleted) paths between two revisions, relative to the project.
        Read as bytes: an old name that is not UTF-8 still comes back as the same bytes."""
        out = _git_bytes(self.toplevel, "diff", "--no-renames", "--no-ext-diff", "-z", "--name-status",
                         self.tree(base), self.tree(revision))
        fields = [f.decode("utf-8", "surrogateescape") for f in out.split(b"\0") if f]
        changed, deleted = [], []
        for status, name in zip(fields[0::2], fields[1::2]):
            (deleted if status == "D" else changed).append(name)
        return changed, deleted

    def archive(self, revision: str, paths: list[str] | None = None) -> bytes:
        """A tar.gz of the project's files at revision (only `paths`, if given)."""
        tree = self.tree(revision) if paths is None else self.subtree(revision, paths)
        argv = ["git", "-C", str(self.toplevel), "archive", "--format=tar.gz", tree]
        proc = subprocess.run(argv, capture_output=True)
        if proc.returncode != 0:
            raise UsageError(f"git archive failed: {proc.stderr.decode(errors='replace').strip()}",
                             step="upload")
        return proc.stdout

    def subtree(self, revision: str, paths: list[str]) -> str:
        """A tree object with only `paths` of revision, built in a temporary index. The names never
        become arguments or pathspecs: there may be any number of them, and ':x', '-x' or 'a*' each
        name that one file. The tree keeps its .gitattributes files, which git archive takes its
        export-ignore rules from. (git write-tree stores the tree in the repository's objects,
        as `git stash` would: unreferenced, git gc removes it.)"""
        wanted = {p.encode("utf-8", "surrogateescape") for p in paths}
        listing = _git_bytes(self.toplevel, "ls-tree", "-r", "-z", self.tree(revision), step="upload")
        entries = [e for e in listing.split(b"\0") if e and (
            e.split(b"\t", 1)[1] in wanted or e.split(b"\t", 1)[1].rsplit(b"/", 1)[-1] == b".gitattributes")]
        with tempfile.TemporaryDirectory(prefix="ayna-fab-index.") as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
            _git_bytes(self.toplevel, "update-index", "-z", "--index-info", step="upload",
                       input=b"".join(e + b"\0" for e in entries), env=env)
            return _git_bytes(self.toplevel, "write-tree", step="upload", env=env).decode().strip()

    def dirty(self) -> bool:
        out = _git_bytes(self.path, "status", "--porcelain", "--", ".")   # bytes: any file name
        return bool(out.strip())


def _show(raw: bytes) -> str:
    """A file name for a message: quoted, escapes for what is not printable UTF-8, on one line."""
    return repr(raw.decode("utf-8", "backslashreplace"))


def _git_bytes(cwd: Path, *args: str, step: str = "resolve ref", input: bytes | None = None,
               env: dict | None = None) -> bytes:
    """git's output as bytes: file names are bytes, and not every one is UTF-8."""
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, input=input, env=env)
    if proc.returncode != 0:
        raise UsageError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}", step=step)
    return proc.stdout


def _git(cwd: Path, *args: str, what: str | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(what or f"git {' '.join(args)} failed: {proc.stderr.strip()}", step="resolve ref")
    return proc.stdout
