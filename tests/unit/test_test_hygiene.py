"""The suite's verdicts do not hang on the clock or on luck, and it never passes by skipping in CI.

A test that asserts how long something took, or sleeps and then asserts, fails on a busy machine
and passes a slow bug; a timer racing the code under test is the same bet. Waiting belongs in a
poll with a deadline (tests/polling.py), the verdict in the condition itself: a count, an order, a
state. Lower bounds stay allowed (a delay can only add time, so `>= the delay` cannot flake).
Benchmarks (benchmarks/, outside tests/) keep their figures. Every skip goes through
tests/prereqs.py, which fails instead when CI=true.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCKS = {"monotonic", "time", "perf_counter"}
PACING = "# pacing:"   # a sleep that only lets load run before an operation; no verdict waits on it
SKIPS = re.compile(r"pytest\.skip\(|\bskipif\b|mark\.skip\b|importorskip|pytest\.xfail\(|mark\.xfail\b")
SHELL_SLEEP = re.compile(r"&&\s*sleep\s+[\d.]+")


def sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve())


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(TESTS.parent)}:{node.lineno}"


def is_call(node: ast.AST, names: set[str], owner: str | None = None) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr in names and (owner is None or isinstance(f.value, ast.Name) and f.value.id == owner)
    return isinstance(f, ast.Name) and f.id in names and owner is None


def reads_clock(node: ast.AST) -> bool:
    return any(is_call(n, CLOCKS, "time") for n in ast.walk(node))


def durations(tree: ast.AST) -> set[str]:
    """Names assigned a clock reading minus something: `took = time.time() - started`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) \
                and isinstance(node.value.op, ast.Sub) and reads_clock(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def is_duration(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and reads_clock(node):
        return True
    return isinstance(node, ast.Name) and node.id in names


def upper_bounds_on_time(path: Path, tree: ast.AST) -> list[str]:
    """`assert took < 1.4`, `assert time.monotonic() - started < 10`: a duration bounded above."""
    names, found = durations(tree), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = [cmp.left, *cmp.comparators]
            for op, left, right in zip(cmp.ops, sides, sides[1:]):
                if isinstance(op, (ast.Lt, ast.LtE)) and is_duration(left, names) \
                        or isinstance(op, (ast.Gt, ast.GtE)) and is_duration(right, names):
                    found.append(where(path, node))
    return found


def in_loop(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.While, ast.For, ast.AsyncFor)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return False
    return False


def sleeps_then_asserts(path: Path, tree: ast.AST, lines: list[str]) -> list[str]:
    """A time.sleep outside any loop, with an assert after it in the same block."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for i, stmt in enumerate(block):
                if not (isinstance(stmt, ast.Expr) and is_call(stmt.value, {"sleep"}, "time")):
                    continue
                if in_loop(stmt, parents) or PACING in lines[stmt.lineno - 1]:
                    continue
                if any(isinstance(n, ast.Assert) for later in block[i + 1:] for n in ast.walk(later)):
                    found.append(where(path, stmt))
    return found


def timers(path: Path, tree: ast.AST) -> list[str]:
    """threading.Timer: a thread that acts after a delay races whatever the test is waiting on."""
    return [where(path, n) for n in ast.walk(tree) if is_call(n, {"Timer"})]


def shell_sleeps(path: Path, tree: ast.AST) -> list[str]:
    """`... && sleep 1` in a command run on a host: a fixed wait for something to be ready."""
    return [where(path, n) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and SHELL_SLEEP.search(n.value)]


def offences(check) -> list[str]:
    found = []
    for path in sources():
        text = path.read_text()
        tree = ast.parse(text, str(path))
        if check is sleeps_then_asserts:
            found += check(path, tree, text.splitlines())
        else:
            found += check(path, tree)
    return found


def test_no_duration_is_bounded_above_in_an_assert():
    assert offences(upper_bounds_on_time) == []


def test_no_fixed_sleep_comes_before_an_assert():
    assert offences(sleeps_then_asserts) == []


def test_no_timer_races_the_code_under_test():
    assert offences(timers) == []


def test_no_fixed_sleep_waits_in_a_host_command():
    assert offences(shell_sleeps) == []


def test_every_skip_goes_through_the_helper_that_fails_in_ci():
    found = [f"{path.relative_to(TESTS.parent)}:{n}" for path in sources() if path.name != "prereqs.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if SKIPS.search(line)]
    assert found == []


# --- the checks find what they are meant to find ------------------------------------------------

BAD = '''
import threading, time
def test_a():
    started = time.monotonic()
    work()
    assert time.monotonic() - started < 10
def test_b():
    took = time.time() - t0
    assert ok and took < 1.4
def test_c():
    start()
    time.sleep(1)
    x = read()
    assert x
def test_d():
    threading.Timer(0.2, go).start()
def test_e():
    run("systemd-run --unit=rogue srv && sleep 1")
'''

GOOD = '''
import time
def test_a():
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done()
def test_b():
    t = time.monotonic()
    verify()
    assert time.monotonic() - t >= SETTLE
def test_c():
    time.sleep(3)   # pacing: load runs before the deploy
    assert deploy()
def test_d():
    run("for i in 1 2 3; do ready && break; sleep 0.05; done")
'''


def check_text(check, text: str) -> list[int]:
    tree, path = ast.parse(text), TESTS / "sample.py"
    found = check(path, tree, text.splitlines()) if check is sleeps_then_asserts else check(path, tree)
    return [int(f.rsplit(":", 1)[1]) for f in found]


def test_the_checks_flag_each_bad_pattern_and_spare_polling_and_lower_bounds():
    assert check_text(upper_bounds_on_time, BAD) == [6, 9]
    assert check_text(sleeps_then_asserts, BAD) == [12]
    assert check_text(timers, BAD) == [16]
    assert check_text(shell_sleeps, BAD) == [18]
    for check in (upper_bounds_on_time, sleeps_then_asserts, timers, shell_sleeps):
        assert check_text(check, GOOD) == [], check.__name__


def test_a_missing_prerequisite_skips_locally_and_fails_in_ci(monkeypatch):
    import pytest

    from tests import prereqs
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        prereqs.skip_or_fail("no bash")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        prereqs.skip_or_fail("no bash")
