"""Run each task once per -H value, not once per comma-separated host; run no raw commands.

Fabric splits `-H a,b` and calls a task once per host, serially. ayna-fab's
TARGET is one thing (hosts and groups, comma-separated) that a task resolves
in hosts.toml itself, so a fleet deploy can prepare every host, then flip them
together. This executor hands the whole -H string to the task as one call.
"""

from __future__ import annotations

from fabric.executor import Executor
from invoke.exceptions import Exit

from ayna_fab import output
from ayna_fab.errors import UsageError


class TargetExecutor(Executor):
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
