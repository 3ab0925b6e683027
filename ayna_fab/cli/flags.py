"""Short flags: one table, so a letter means the same option in every task.

Invoke would give each option the first free letter of its name, so `-b` was --batch in deploy
and --backup in restore, and init's --host took `-h`, which is help everywhere. Here an option has
a short flag only if this table names one, keyed by the option's name: a task added later with
an option of a known name gets its letter, one with a new name gets none. `-h` (help) and `-H`
(the target) are the program's and never appear here.
"""

from __future__ import annotations

from fabric.tasks import Task as FabricTask

SHORT: dict[str, str] = {
    "project": "p",
    "json": "j",
    "dry_run": "d",
    "ref": "r",
    "message": "m",
    "to": "t",
    "service": "s",
    "follow": "f",
    "lines": "n",      # as tail -n and journalctl -n
    "list": "l",
    "yes": "y",
    "write": "w",
    "env": "e",
    "args": "a",
    "count": "c",
}


class Task(FabricTask):
    """Fabric's task, with short flags from SHORT only, and optional positional arguments.

    `positional_defaults` ({name: value}) names positional arguments that may be left out (init's
    PATH); the program fills them in (`cli/program.py`)."""

    def __init__(self, *args, positional_defaults=None, **kwargs):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)
        self.positional_defaults = dict(positional_defaults or {})

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT.get(name)
        if short and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts

    def get_arguments(self, ignore_unknown_help=None):
        """Invoke's, without using up `help` (it pops each option's help as it builds the
        arguments, so a second parse in one process would show options without help)."""
        kept = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept
