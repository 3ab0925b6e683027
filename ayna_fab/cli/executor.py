"""Run each task once per -H value, not once per comma-separated host; run no raw commands.

Fabric splits `-H a,b` and calls a task once per host, serially. ayna-fab's
TARGET is one thing (hosts and groups, comma-separated) that a task resolves
in hosts.toml itself, so a fleet deploy can prepare every host, then flip them
together. This executor hands the whole -H string to the task as one call.
"""

from __future__ import annotations

import shlex
import sys

from fabric.executor import Executor as FabricExecutor
from invoke.exceptions import Exit

from ayna_fab.cli import output
from ayna_fab.errors import UsageError


class TargetExecutor(FabricExecutor):
    def expand_calls(self, calls, apply_hosts=True):
        if self.core.remainder:
            # Fabric would run the words after `--` as a shell command on every -H host, over a
            # connection that accepts any host key. ayna-fab runs no raw commands.
            output.error("ayna-fab runs no raw commands after --; use its tasks "
                         "(fab --list), or ssh to the host yourself")
            raise Exit(code=UsageError.exit_code)
        hosts = self.core[0].args.hosts
        value = hosts.value
        if apply_hosts and value and "," in value:
            hosts.value = value.replace(",", "\x00")  # kept whole through Fabric's split
            try:
                expanded = super().expand_calls(calls, apply_hosts)
            finally:
                hosts.value = value
            for call in expanded:
                kwargs = getattr(call, "init_kwargs", None)
                if kwargs and "host" in kwargs:
                    kwargs["host"] = kwargs["host"].replace("\x00", ",")
            return expanded
        return super().expand_calls(calls, apply_hosts)


class Executor(TargetExecutor):
    """ayna-fab's executor (one call per -H value), except that the words after `--` go to the
    task that takes them (manage, migrate) as its `args`, with their boundaries kept (invoke
    joins them with spaces).

    Fabric would otherwise also run them as a shell command on every -H host, over a
    connection that accepts any host key. Built into the installed program (cli/program.py);
    `fab` in this repository finds it through fabric.yaml next to fabfile.py (tasks.executor_class).
    """

    def expand_calls(self, calls, apply_hosts=True):
        rest = self.core.remainder
        if not rest:
            return super().expand_calls(calls, apply_hosts)
        self.core.remainder = ""
        try:
            expanded = super().expand_calls(calls, apply_hosts)
        finally:
            self.core.remainder = rest
        takers = [call for call in expanded if getattr(call.task, "takes_remainder", False)]
        if not takers:
            output.error("words after -- are arguments for manage or migrate "
                         "(e.g. fab -H HOST manage -- showmigrations); ayna-fab runs no raw commands")
            raise Exit(code=UsageError.exit_code)
        argv = remainder_argv(sys.argv, rest)
        for call in takers:
            call.kwargs = {**call.kwargs, "args": argv}
        return expanded


def remainder_argv(argv: list[str], rest: str) -> list[str]:
    """The words after the first `--` as the shell split them; else split invoke's joined string."""
    if "--" in argv:
        tail = argv[argv.index("--") + 1:]
        if " ".join(tail) == rest:
            return tail
    return shlex.split(rest)


def takes_remainder(t):
    """Mark a task as one that takes the words after `--` (as its `args`)."""
    t.takes_remainder = True
    return t
