"""The host protocol's contract: what the laptop sends is exactly what the host program reads.

Every call is a dataclass in ayna_fab/hostprog/calls.py. The host's handler for it, and any
function the handler hands the arguments to, take that type (annotated); here their
sources are read to collect every field they use. The laptop side builds each call in
exactly one function of ayna_fab/commands/hostcalls.py. A field nobody reads, a read of a
field nobody sends, a second builder or a handler missing fails a test here.
"""

from __future__ import annotations

import ast
import json
import shlex
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from ayna_fab.hostprog import calls, main

PACKAGE = Path(calls.__file__).parent
LAPTOP = PACKAGE.parent


def host_reads() -> dict[str, set[str]]:
    """For each call type: the attributes read from a parameter annotated with it, anywhere in the host package."""
    reads: dict[str, set[str]] = {name: set() for name in calls.CALLS}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            typed = {}
            for arg in fn.args.args:
                ann = arg.annotation
                if isinstance(ann, ast.Attribute) and isinstance(ann.value, ast.Name) and ann.value.id == "calls":
                    typed[arg.arg] = ann.attr.lower()
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in typed:
                    reads[typed[node.value.id]].add(node.attr)
    return reads


@pytest.mark.parametrize("name", sorted(calls.CALLS))
def test_every_argument_sent_is_read_and_every_argument_read_is_sent(name):
    sent = {f.name for f in fields(calls.CALLS[name])}
    read = host_reads()[name]
    assert read - sent == set(), f"the host reads {read - sent} that {name} never sends"
    assert sent - read == set(), f"{name} sends {sent - read} that the host never reads"


def test_every_call_has_one_handler_taking_its_type():
    assert set(main.HANDLERS) == set(calls.CALLS)
    for name in main.HANDLERS:
        ann = main.handler(name).__annotations__
        (param,) = [v for k, v in ann.items() if k != "return"]
        assert param in (calls.CALLS[name], f"calls.{calls.CALLS[name].__name__}"), (name, param)


def test_every_call_is_built_by_exactly_one_laptop_function():
    built: dict[str, list[str]] = {name: [] for name in calls.CALLS}
    for path in LAPTOP.rglob("*.py"):
        if PACKAGE in path.parents:
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef):
                for node in ast.walk(fn):
                    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and isinstance(node.func.value, ast.Name) and node.func.value.id == "calls"
                            and node.func.attr.lower() in built):
                        built[node.func.attr.lower()].append(f"{path.relative_to(LAPTOP)}:{fn.name}")
    for name, where in built.items():
        assert len(where) == 1 and where[0].startswith("commands/hostcalls.py:"), (name, where)


def test_a_call_survives_the_wire_as_the_same_value():
    from ayna_fab.remote import hostcall
    from ayna_fab.commands import hostcalls as cmd
    from ayna_fab.config.model import Project
    from ayna_fab.config.layout import Layout
    lay = Layout("/opt/ayna", "demo", "production")
    proj = Project(name="demo", source=None, port_base=8130, services=("web", "api"), env="production")
    command = cmd.prepare(lay, proj, "tok", 3, ["install", "check"], None, "v2", 5)
    argv = shlex.split(command.script)
    assert argv[:2] == ["python3", "-c"] and argv[3] == "prepare"
    payload = json.loads(argv[4])
    assert calls.Prepare(**payload) == command.call and asdict(command.call) == payload
    assert command.display.startswith("ayna-host prepare ") and len(hostcall.bootstrap()) < 100_000
