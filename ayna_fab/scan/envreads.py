"""Which environment variables a module reads, found in its syntax tree (never by running it).

Text patterns miss most real settings: `"DATABASE_URL" in os.environ`, `env.db()` (which reads
DATABASE_URL without naming it), `from os import getenv`, an `environ.Env` under another name.
The `ast` module sees each form as the call or test it is. A read records where it is (file and
line), whether the code has a default for it, how the value is used (`cast`: bool, int, list,
url, db, cache, or str) and whether the code appends a path to it (`REDIS_URL + "/0"`), which
decides the value `fab init` writes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")
# django-environ's methods, the value they parse, and the variable the URL ones read by default.
ENVIRON_CASTS = {"str": "str", "bool": "bool", "int": "int", "float": "int", "list": "list", "tuple": "list",
                 "json": "str", "dict": "str", "path": "str", "url": "url", "db": "db", "db_url": "db",
                 "cache": "cache", "cache_url": "cache", "email": "url", "email_url": "url",
                 "search_url": "url", "channels": "url", "channels_url": "url"}
ENVIRON_DEFAULT_VAR = {"db": "DATABASE_URL", "db_url": "DATABASE_URL", "cache": "CACHE_URL", "cache_url": "CACHE_URL",
                       "email": "EMAIL_URL", "email_url": "EMAIL_URL", "search_url": "SEARCH_URL",
                       "channels": "CHANNELS_URL", "channels_url": "CHANNELS_URL"}
DECOUPLE_CASTS = {"bool": "bool", "int": "int", "float": "int", "Csv": "list", "db_url": "db", "parse": "db"}


@dataclass(frozen=True)
class Read:
    """One read of a variable: where, whether it has a default, and how its value is used."""

    name: str
    file: str
    line: int
    default: bool
    how: str            # os.environ[...], os.getenv, "X" in os.environ, django-environ, decouple, dj-database-url
    cast: str = "str"
    appended: bool = False   # the code appends to the value ("/0"): a URL must end where that can follow
    split: str | None = None  # the code splits the value on this (" " for .split()): a list's separator
    truthy: bool = False     # the code takes bool() of the string: every value but the empty one is true
    when: str | None = None  # the read sits under an `if`: its condition (`STORAGE == "s3"`), as written
    target: str | None = None  # the setting its value is assigned to (`SECRET_KEY = env("DJANGO_KEY")`)
    given: str | None = None   # the default the code gives, when it is a string (`"True"`): its vocabulary

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def reads(text: str, file: str, helpers: Mapping[str, bool] | None = None) -> list[Read]:
    """Every read of the environment in one module's source (none if it does not parse).
    helpers: the project's own functions that read the variable named by their first argument
    (see helpers(): each with whether it returns a default when the variable is unset)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    return _Visitor(file, tree, helpers or {}).run()


def helpers(text: str) -> dict[str, bool]:
    """The module's functions that read the environment variable their first parameter names
    (`def env_str(name, default=None): return os.environ.get(name, ...)`): settings that call
    `env_str("SECRET_KEY")` read SECRET_KEY. Each maps to whether it passes a default parameter of
    its own, which has a default, through to its read (`def envsecret(s, default=None): return
    os.getenv(s, default)`): then a call without one returns that default, and requires nothing."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    out: dict[str, bool] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.args.args:
            param = fn.args.args[0].arg
            probe = _Visitor("", ast.Module(body=fn.body, type_ignores=[]), {}, key_param=param)
            if any(r.name == "?" for r in probe.run()):
                out[fn.name] = _passes_default(fn)
    return out


def _passes_default(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The helper's second parameter has a default, and a read keyed by its first takes it as its own."""
    params = fn.args.args
    if len(params) < 2 or len(fn.args.defaults) < len(params) - 1:
        return False
    key, default = params[0].arg, params[1].arg
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == key:
            given = node.args[1:2] + [k.value for k in node.keywords if k.arg == "default"]
            if any(isinstance(g, ast.Name) and g.id == default for g in given):
                return True
    return False


def _const(node: ast.AST | None, key_param: str | None = None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME_RE.fullmatch(node.value):
        return node.value
    if key_param is not None and isinstance(node, ast.Name) and node.id == key_param:
        return "?"
    return None


def _field(value: ast.AST | None) -> tuple[bool, str | None]:
    """(whether a settings field has a default, its alias) from what follows its annotation:
    nothing (required), a value, or `Field(...)` (required with `...` or no default at all)."""
    if value is None:
        return False, None
    if isinstance(value, ast.Call) and _dotted(value.func).rpartition(".")[2] == "Field":
        kw = {k.arg: k.value for k in value.keywords if k.arg}
        alias = next((v.value for k in ("validation_alias", "alias", "env")
                      if isinstance(v := kw.get(k), ast.Constant) and isinstance(v.value, str)), None)
        first = value.args[0] if value.args else kw.get("default")
        has = ("default_factory" in kw or first is not None) and not (
            isinstance(first, ast.Constant) and first.value is Ellipsis)
        return has, alias
    return True, None


# How a settings field's annotation parses the variable (only what init writes differently).
ANNOTATION_CASTS = {"bool": "bool", "int": "int", "float": "int", "PostgresDsn": "db", "RedisDsn": "cache"}


def _annotation_cast(annotation: ast.AST) -> str:
    names = {_dotted(n).rpartition(".")[2] for n in ast.walk(annotation) if isinstance(n, (ast.Name, ast.Attribute))}
    names -= {"Optional", "None", "Annotated", "Union"}
    return ANNOTATION_CASTS[names.pop()] if len(names) == 1 and next(iter(names)) in ANNOTATION_CASTS else "str"


def _dotted(node: ast.AST) -> str:
    """`os.environ.get` for an Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


class _Visitor:
    def __init__(self, file: str, tree: ast.Module, helpers: Mapping[str, bool],
                 key_param: str | None = None) -> None:
        self.file, self.tree, self.helpers = file, tree, helpers
        self.key_param = key_param   # helpers(): a read keyed by this parameter counts, as "?"
        self.environ = {"os.environ"}           # names bound to os.environ
        self.getenv = {"os.getenv"}             # names bound to os.getenv
        self.env_objects = {"env"}              # django-environ's Env instances
        self.decouple = {"config"}              # decouple's config (and AutoConfig instances)
        self.dj_database = {"dj_database_url"}  # the dj-database-url module
        self.out: list[Read] = []
        self.read_names: dict[str, list[Read]] = {}   # a module name assigned from reads
        self.appended: set[int] = set()         # id() of the reads the code appends a path to
        self.splits: dict[int, str] = {}        # id() of the reads the code splits, and on what
        self.truthy: set[int] = set()           # id() of the reads whose string the code takes bool() of
        self.guarded: set[int] = set()          # id() of nodes that run only when a variable is set
        self.when: dict[int, str] = {}          # id() of nodes under another `if`, and its condition
        self.targets: dict[int, str] = {}       # id() of nodes in an assignment's value, and its target
        self.given: dict[int, str] = {}         # id() of the reads whose default is a string, and that string

    def run(self) -> list[Read]:
        for node in ast.walk(self.tree):
            self._bindings(node)
        self.guarded = self._guarded()
        self.when = self._conditions()
        for node in ast.walk(self.tree):   # outer assignments first: an inner one's target wins below it
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) and node.value is not None else []
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if len(names) == 1:
                self.targets.update((id(n), names[0]) for n in ast.walk(node.value))
        self._settings_classes()
        for node in ast.walk(self.tree):
            self._read(node)
        for node in ast.walk(self.tree):
            self._appends(node)
        out = [replace(r, appended=id(r) in self.appended, split=self.splits.get(id(r)),
                       truthy=id(r) in self.truthy, given=self.given.get(id(r))) for r in self.out]
        return sorted(out, key=lambda r: r.line)

    # --- what names mean -------------------------------------------------------------------------
    def _bindings(self, node: ast.AST) -> None:
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                name = a.asname or a.name
                if node.module == "os" and a.name == "environ":
                    self.environ.add(name)
                elif node.module == "os" and a.name == "getenv":
                    self.getenv.add(name)
                elif node.module == "decouple" and a.name == "config":
                    self.decouple.add(name)
                elif node.module == "environ" and a.name == "Env":
                    pass    # instances are found by their constructor below
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "dj_database_url" and a.asname:
                    self.dj_database.add(a.asname)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            ctor = _dotted(node.value.func)
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if ctor in ("environ.Env", "Env", "environ.FileAwareEnv"):
                self.env_objects.update(targets)
                self._schema(node.value)
            elif ctor in ("AutoConfig", "decouple.AutoConfig") or ctor.endswith("Config") and "decouple" in ctor:
                self.decouple.update(targets)

    def _schema(self, call: ast.Call) -> None:
        """environ.Env(DEBUG=(bool, False)): a cast, and a default when the tuple has one."""
        for kw in call.keywords:
            if kw.arg and NAME_RE.fullmatch(kw.arg):
                cast = "str"
                if isinstance(kw.value, ast.Tuple) and kw.value.elts and isinstance(kw.value.elts[0], ast.Name):
                    cast = {"bool": "bool", "int": "int", "list": "list"}.get(kw.value.elts[0].id, "str")
                has_default = isinstance(kw.value, ast.Tuple) and len(kw.value.elts) > 1
                if has_default:
                    self._add(kw.arg, call, True, "django-environ", cast)

    def _guarded(self) -> set[int]:
        """id() of the nodes under `if "X" in os.environ:` (or `if os.environ.get("X"):`): a read
        there happens only when X is set, so it needs no value otherwise."""
        out: set[int] = set()
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.If):
                continue
            if self._tests_env(node.test):
                out.update(id(n) for child in node.body for n in ast.walk(child))
        return out

    def _conditions(self) -> dict[int, str]:
        """id() of the nodes under any other `if` (or its else), and the nearest such condition: a
        read there happens only when the code takes that branch (`if STORAGE == "s3":`)."""
        out: dict[int, str] = {}
        for node in ast.walk(self.tree):   # outer ifs first: an inner one's condition wins below it
            if not isinstance(node, ast.If) or self._tests_env(node.test):
                continue
            test = ast.unparse(node.test)
            for branch, text in ((node.body, test), (node.orelse, f"not ({test})")):
                out.update((id(n), text) for child in branch for n in ast.walk(child))
        return out

    def _tests_env(self, test: ast.AST) -> bool:
        """`"X" in os.environ`, `os.environ.get("X")`, or an and/or of such tests."""
        if isinstance(test, ast.BoolOp):
            return all(self._tests_env(v) for v in test.values)
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In):
            return _dotted(test.comparators[0]) in self.environ and bool(_const(test.left))
        return isinstance(test, ast.Call) and _dotted(test.func).rpartition(".")[0] in self.environ

    # --- pydantic-settings ------------------------------------------------------------------------
    def _settings_classes(self) -> None:
        """`class Settings(BaseSettings)`: each field is a variable (the env prefix and the field's
        name, or its alias), required unless it has a default; classes derived from such a class in
        the same module too. pydantic matches names without regard to case unless told otherwise."""
        bases = {"BaseSettings", "pydantic_settings.BaseSettings", "pydantic.BaseSettings"}
        classes = [n for n in ast.walk(self.tree) if isinstance(n, ast.ClassDef)]
        found: list[ast.ClassDef] = []
        grew = True
        while grew:
            grew = False
            for c in classes:
                if c not in found and any(_dotted(b) in bases for b in c.bases):
                    found.append(c)
                    bases.add(c.name)
                    grew = True
        for c in found:
            prefix, exact = self._settings_config(c)
            for stmt in c.body:
                if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                    continue
                field = stmt.target.id
                if field.startswith("_") or field == "model_config" or "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                has_default, alias = _field(stmt.value)
                name = alias or prefix + field
                name = name if exact else name.upper()
                if (re.fullmatch(r"[A-Za-z_]\w*", name) if exact else NAME_RE.fullmatch(name)):
                    self._add(name, stmt, has_default, "pydantic-settings", _annotation_cast(stmt.annotation))

    def _settings_config(self, c: ast.ClassDef) -> tuple[str, bool]:
        """(env_prefix, case_sensitive) from `model_config = SettingsConfigDict(...)` or `class Config`."""
        prefix, exact = "", False
        for stmt in c.body:
            pairs: list[tuple[str, ast.AST]] = []
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Call) and any(
                    isinstance(t, ast.Name) and t.id == "model_config"
                    for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])):
                pairs = [(k.arg, k.value) for k in stmt.value.keywords if k.arg]
            elif isinstance(stmt, ast.ClassDef) and stmt.name == "Config":
                pairs = [(t.id, a.value) for a in stmt.body if isinstance(a, ast.Assign)
                         for t in a.targets if isinstance(t, ast.Name)]
            for key, value in pairs:
                if key == "env_prefix" and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    prefix = value.value
                elif key == "case_sensitive" and isinstance(value, ast.Constant):
                    exact = value.value is True
        return prefix, exact

    # --- the reads -------------------------------------------------------------------------------
    def _add(self, name: str, node: ast.AST, default: bool, how: str, cast: str = "str") -> Read:
        target = node.target.id if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
            else self.targets.get(id(node))   # a settings class's field is its own target
        r = Read(name, self.file, getattr(node, "lineno", 0), default, how, cast, when=self.when.get(id(node)),
                 target=target)
        self.out.append(r)
        return r

    def _read(self, node: ast.AST) -> None:
        if isinstance(node, ast.Subscript) and _dotted(node.value) in self.environ:
            name = _const(node.slice, self.key_param)
            if name:
                guarded = id(node) in self.guarded
                self._note(node, self._add(name, node, guarded,
                                           "os.environ[...] under an if on the environment" if guarded
                                           else "os.environ[...]"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            name = _const(node.left)
            if name and _dotted(node.comparators[0]) in self.environ:
                self._add(name, node, True, f'"{name}" in os.environ')
        elif isinstance(node, ast.Call):
            r = self._call(node)
            if r:
                self._note(node, r)
                given = node.args[1:2] + [k.value for k in node.keywords if k.arg == "default"]
                if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
                    self.given[id(r)] = given[0].value

    def _call(self, node: ast.Call) -> Read | None:
        func = _dotted(node.func)
        first = _const(node.args[0], self.key_param) if node.args else None
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        owner, _, method = func.rpartition(".")
        if func in self.helpers and first:
            required = isinstance(kw.get("required"), ast.Constant) and kw["required"].value is True
            given = len(node.args) > 1 or "default" in kw or self.helpers[func]
            return self._add(first, node, given and not required, f"{func}()")
        if (owner in self.environ and method in ("get", "setdefault", "pop")) or func in self.getenv:
            if first:
                has_default = len(node.args) > 1 or "default" in kw or method == "get" or func in self.getenv
                return self._add(first, node, has_default, "os.getenv" if func in self.getenv else f"os.environ.{method}")
        elif func in self.env_objects or (owner in self.env_objects and method in ENVIRON_CASTS):
            cast = ENVIRON_CASTS.get(method, "str") if owner in self.env_objects else "str"
            name = first or _const(kw.get("var")) or ENVIRON_DEFAULT_VAR.get(method)
            if name:
                has_default = len(node.args) > 1 or "default" in kw
                return self._add(name, node, has_default, "django-environ", cast)
        elif owner in self.dj_database and method == "config":
            name = _const(kw.get("env")) or "DATABASE_URL"
            return self._add(name, node, "default" in kw, "dj-database-url", "db")
        elif func in self.decouple and first:
            cast_node = kw.get("cast")
            cast = "str"
            if cast_node is not None:
                cast_name = _dotted(cast_node.func if isinstance(cast_node, ast.Call) else cast_node).rpartition(".")[2]
                cast = DECOUPLE_CASTS.get(cast_name, "str")
            return self._add(first, node, len(node.args) > 1 or "default" in kw, "decouple", cast)
        return None

    def _note(self, node: ast.AST, read: Read) -> None:
        node._ayna_read = read   # type: ignore[attr-defined]

    # --- what the code does with a value ---------------------------------------------------------
    def _values(self, node: ast.AST) -> list[Read]:
        """The reads an expression's value may be: the read itself, its default when that is a
        read too (`os.environ.get("REDIS_TLS_URL", os.environ.get("REDIS_URL"))`), either side of
        an `or`, or a name assigned from such an expression."""
        if isinstance(node, ast.Name):
            return list(self.read_names.get(node.id, ()))
        if isinstance(node, ast.BoolOp):
            return [r for v in node.values for r in self._values(v)]
        if isinstance(node, ast.IfExp):
            return self._values(node.body) + self._values(node.orelse)
        r = getattr(node, "_ayna_read", None)
        if r is None:
            return []
        out = [r]
        if isinstance(node, ast.Call):
            defaults = node.args[1:2] + [k.value for k in node.keywords if k.arg == "default"]
            for d in defaults:
                out += self._values(d)
        return out

    def _appends(self, node: ast.AST) -> None:
        """What the code does with a value: appends a path to it, splits it, takes bool() of it."""
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = self._values(node.value)
            if values:
                self.read_names[node.targets[0].id] = values
        appended: list[Read] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _starts_path(node.right):
            appended = self._values(node.left)
        elif isinstance(node, ast.JoinedStr):
            for value, after in zip(node.values, node.values[1:]):
                if isinstance(value, ast.FormattedValue) and _starts_path(after):
                    appended += self._values(value.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split":
            sep = node.args[0] if node.args else None
            on = " " if sep is None else sep.value if isinstance(sep, ast.Constant) and isinstance(sep.value, str) \
                else None
            if on:
                for r in self._values(node.func.value):
                    self.splits[id(r)] = on
        elif isinstance(node, ast.Call) and _dotted(node.func) == "bool" and len(node.args) == 1:
            self.truthy.update(id(r) for r in self._values(node.args[0]) if r.cast == "str")
        for r in appended:
            self.appended.add(id(r))


def _starts_path(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/")


def reads_in(node: ast.AST) -> bool:
    """Whether an expression reads the environment (in any form `reads` knows)."""
    tree = ast.Module(body=[ast.Expr(value=node)], type_ignores=[])
    return bool(_Visitor("", tree, {}).run())
