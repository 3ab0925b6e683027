"""No module of ayna_fab imports itself back, at any depth: a cycle is a layer that leans on the
one above it. Imports inside functions count too (they only hide a cycle from the interpreter)."""

import ast
from pathlib import Path

import ayna_fab

ROOT = Path(ayna_fab.__file__).parent
HOST = ROOT / "hostprog"
# What the laptop takes from the host program, and nothing else (docs/ARCHITECTURE.md, "The host protocol").
LAPTOP_TAKES = {"ayna_fab.hostprog.backups", "ayna_fab.hostprog.calls", "ayna_fab.hostprog.envfile",
                "ayna_fab.hostprog.wire", "ayna_fab.hostprog.switchover", "ayna_fab.hostprog.proctree"}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The ayna_fab modules `name` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walk_sees_imports_inside_functions():
    assert "ayna_fab.hostprog.holder" in GRAPH["ayna_fab.hostprog.plan"]
    assert "ayna_fab.scan.project" in GRAPH["ayna_fab.cli.tasks.init"]


def test_no_import_cycles():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_laptop_takes_only_the_shared_modules_of_the_host_program():
    taken = {(name, m) for name, deps in GRAPH.items() if not name.startswith("ayna_fab.hostprog")
             for m in deps if m.startswith("ayna_fab.hostprog.") and m not in LAPTOP_TAKES}
    assert not taken, sorted(taken)


def test_laptop_and_host_modules_share_no_name():
    host = {p.stem for p in HOST.glob("*.py")} - {"__init__"}
    laptop = {p.stem for p in ROOT.rglob("*.py") if HOST not in p.parents} - {"__init__"}
    assert not host & laptop, sorted(host & laptop)
