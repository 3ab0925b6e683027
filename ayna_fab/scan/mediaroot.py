"""Where the settings put uploads, worked out from their syntax tree: inside a release or not.

Each release is a directory of its own, with one link, `media`, to `shared/media`. A
`MEDIA_ROOT` built from `__file__` (`os.path.join(PROJECT_DIR, "media")`, `BASE_DIR / "media"`)
resolves inside the release unless it is exactly that link, and the next deploy leaves every
file uploaded there behind. The path expression is evaluated from the forms settings use
(`__file__`, `os.path.dirname`/`abspath`/`join`, `Path(...).resolve().parent`, `/`, names
assigned earlier); a value read from the environment is the person's choice and passes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ayna_fab.scan import envreads
from ayna_fab.scan.settingsmodule import assigned

FROM_ENV = object()   # the value is read from the environment
PASS_THROUGH = {"abspath", "realpath", "normpath", "Path", "PurePath", "resolve", "absolute", "str", "fspath",
                "expanduser"}


@dataclass(frozen=True)
class Inside:
    """MEDIA_ROOT resolves to `where` (relative to the project's root), inside each release."""

    where: str
    file: str
    line: int
    expression: str


def inside_release(root: Path, django_dir: Path, files: list[Path]) -> Inside | None:
    found = assigned(files, "MEDIA_ROOT")
    if found is None:
        return None
    node, path = found
    value = _Eval(files).value(node, path)
    if value is None or value is FROM_ENV:
        return None
    target = Path(value) if Path(value).is_absolute() else django_dir / value
    try:
        where = target.resolve(strict=False).relative_to(root.resolve())
    except ValueError:
        return None   # outside the release: the person chose the place
    if where.parts[:1] == ("media",):
        return None   # the release's link to shared/media
    text = ast.get_source_segment(path.read_text(errors="replace"), node) or "..."
    return Inside(where.as_posix() or ".", path.relative_to(root).as_posix(), node.lineno, text)


class _Eval:
    def __init__(self, files: list[Path]) -> None:
        self.files, self.depth = files, 0

    def value(self, node: ast.AST, path: Path):
        self.depth += 1
        try:
            return None if self.depth > 30 else self._value(node, path)
        finally:
            self.depth -= 1

    def _value(self, node: ast.AST, path: Path):
        if envreads.reads_in(node):
            return FROM_ENV
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return str(path)
            found = assigned(self.files, node.id)
            return self.value(*found) if found else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self._join(self.value(node.left, path), self.value(node.right, path))
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = self.value(node.value, path)
            return inner if inner in (None, FROM_ENV) else str(Path(inner).parent)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "parents" and isinstance(node.slice, ast.Constant):
            inner = self.value(node.value.value, path)
            if inner in (None, FROM_ENV) or not isinstance(node.slice.value, int):
                return inner
            return str(Path(inner).parents[node.slice.value])
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            method_of = node.func.value if isinstance(node.func, ast.Attribute) else None
            args = [self.value(a, path) for a in node.args]
            if name in ("resolve", "absolute", "expanduser") and method_of is not None and not args:
                return self.value(method_of, path)
            if name == "joinpath" and method_of is not None:
                args = [self.value(method_of, path), *args]
                name = "join"
            if name in PASS_THROUGH and len(args) == 1:
                return args[0]
            if name == "dirname" and len(args) == 1:
                return args[0] if args[0] in (None, FROM_ENV) else str(Path(args[0]).parent)
            if name == "join" and args:
                out = args[0]
                for a in args[1:]:
                    out = self._join(out, a)
                return out
        return None

    @staticmethod
    def _join(left, right):
        if FROM_ENV in (left, right):
            return FROM_ENV
        if left is None or right is None:
            return None
        return str(Path(left) / right)
