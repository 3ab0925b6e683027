"""`fab --list` and `fab --help TASK` say what each task and each of its options does: a task's line
is a whole sentence (invoke shows a docstring's first line only), and no option goes without help."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import fabfile

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).with_name("fab"))


def listed(tmp_path) -> dict[str, str]:
    """{task: its help as `fab --list` prints it, lines joined}."""
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('[hosts.far]\nhostname = "192.0.2.1"\n')   # TEST-NET-1: never reached
    out = subprocess.run([FAB, "--list"], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AYNA_FAB_HOSTS": str(hosts)}).stdout
    tasks: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        m = re.match(r"^  (\S+)(?:\s+(.*))?$", line)
        if m:
            name = m.group(1)
            tasks[name] = m.group(2) or ""
        elif name and line.startswith("   "):
            tasks[name] += " " + line.strip()
    return tasks


def test_every_task_is_listed_with_a_whole_sentence(tmp_path):
    tasks = listed(tmp_path)
    assert len(tasks) >= 20
    cut = {name: text for name, text in tasks.items() if not text.endswith(".")}
    assert cut == {}, "help cut short (make the docstring's first line a whole sentence)"


def walk(collection, prefix=""):
    for name, t in collection.tasks.items():
        yield prefix + name, t
    for name, sub in collection.collections.items():
        yield from walk(sub, f"{prefix}{name}.")


def test_every_option_of_every_task_has_help():
    missing = {name: [p for p in list(inspect.signature(t.body).parameters)[1:] if not t.help.get(p)]
               for name, t in walk(fabfile.ns)}
    assert {name: ps for name, ps in missing.items() if ps} == {}
