"""The installed command, `ayna-fab`: Fabric's program with ayna-fab's namespace, executor and version.

It runs from any directory (no fabfile.py or fabric.yaml needed). What it adds to Fabric's program
is the CLI contract docs/cli.md states: usage errors exit 2 (UsageError's code) with the task's
usage and a "did you mean"; an optional positional argument (init's PATH) may be left out; a
task's help names -H; `--list` shows the tasks grouped by what they are for.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
import sys
import textwrap
from importlib import metadata

import fabric
import invoke
import paramiko
from fabric.main import Fab
from invoke import Argument, Exit, ParseError
from invoke.terminals import pty_size

from ayna_fab.cli.executor import Executor
from ayna_fab.errors import UsageError

NAME = "ayna-fab"
TARGET_HELP = ("-H TARGET (before the task): a host, a group, or a comma-separated list of them from "
               "hosts.toml; without it, default_target. Tasks that work on this machine alone "
               "(init, sandbox.*) take no -H.")


def version() -> str:
    try:
        return metadata.version(NAME)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        from ayna_fab import __version__
        return __version__


class _HelpAsked(Exception):
    def __init__(self, task: str) -> None:
        self.task = task


class _Positional(Argument):
    """A positional argument of a task (its parser context in `context`) that refuses flags."""

    context = None

    def set_value(self, value, cast=True):
        if isinstance(value, str) and value.startswith("-") and value != "-":
            if value in ("-h", "--help"):
                raise _HelpAsked(self.context.name)
            raise ParseError(f"No idea what {value!r} is!", self.context)
        super().set_value(value, cast)


class Program(Fab):
    def print_version(self) -> None:
        print(f"{NAME} {self.version}")
        print(f"Fabric {fabric.__version__}")
        print(f"Paramiko {paramiko.__version__}")
        print(f"Invoke {invoke.__version__}")

    # --- usage errors: exit 2 with the usage and a "did you mean" ----------------------------

    def parse_core(self, argv):
        with self._usage_errors():
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        with self._usage_errors():
            try:
                super().parse_tasks()
            except ParseError as exc:
                filled = self._with_defaults(exc)
                if filled is None:
                    raise
                self.core.unparsed = filled
                super().parse_tasks()

    def _make_parser(self):
        """Invoke's parser, except that a positional argument never takes a word that looks like
        a flag: `init --bogus` is an unknown flag and `init -h` is help, not a PATH."""
        parser = super()._make_parser()
        for ctx in parser.contexts.values():
            for arg in ctx.positional_args:
                arg.__class__ = _Positional
                arg.context = ctx
        return parser

    def parse_cleanup(self) -> None:
        with self._usage_errors():
            super().parse_cleanup()

    def _with_defaults(self, exc: ParseError) -> list[str] | None:
        """The words again, with the defaults of a task's optional positional arguments put in
        after its name, when those are all it missed; None when something else is wrong."""
        ctx = exc.context
        if ctx is None or not ctx.name or "did not receive required positional" not in str(exc):
            return None
        defaults = getattr(self.collection[ctx.name], "positional_defaults", {})
        missing = [a.name for a in ctx.missing_positional_args]
        if not missing or any(m not in defaults for m in missing):
            return None
        words = list(self.core.unparsed)
        names = {ctx.name, *ctx.aliases}
        at = next(i for i, w in enumerate(words) if w in names)
        return words[:at + 1] + [str(defaults[m]) for m in missing] + words[at + 1:]

    @contextlib.contextmanager
    def _usage_errors(self):
        try:
            yield
        except _HelpAsked as asked:
            self.print_task_help(asked.task)
            raise Exit(code=0) from None
        except ParseError as exc:
            self._usage_error(str(exc), exc.context)
        except ValueError as exc:  # a flag's value Invoke could not convert (--count abc)
            self._usage_error(f"a value is malformed: {exc}", None)

    def _usage_error(self, message: str, ctx) -> None:
        task = ctx.name if ctx is not None and ctx.name else None
        token, candidates = None, []
        m = re.fullmatch(r"No idea what '(.*)' is!", message)
        if m:
            token = m.group(1)
            if token.startswith("-"):
                message = f"unknown flag {token}" + (f" for {task}" if task else "")
                candidates = list(ctx.flags if ctx is not None else self.initial_context.flags)
            else:
                message, task = f"unknown task {token!r}", None
                candidates = list(self.collection.task_names) + [
                    a for aliases in self.collection.task_names.values() for a in aliases]
        elif m := re.fullmatch(r"Flag <Argument: ([\w-]+).*needed value and was not given one!", message):
            message = f"--{m.group(1)} needs a value"
        elif m := re.fullmatch(r"'(.*)' did not receive required positional arguments: (.*)", message):
            message = f"{m.group(1)} needs {m.group(2).replace(chr(39), '').upper()}"
        elif m := re.fullmatch(r"Flag <Argument: ([\w-]+).*doesn't take any value!", message):
            message = f"--{m.group(1)} takes no value"
        close = difflib.get_close_matches(token.split("=")[0], candidates, n=1, cutoff=0.7) if token else []
        print(f"error: {message}" + (f"; did you mean {close[0]}?" if close else ""), file=sys.stderr)
        with contextlib.redirect_stdout(sys.stderr):
            if task and task in self.collection.task_names:
                print()
                self.print_task_help(task)
            else:
                print(f"Usage: {self.binary} [-H TARGET] TASK [--options]; "
                      f"{self.binary} --list shows the tasks, {self.binary} TASK --help a task's options")
        raise Exit(code=UsageError.exit_code)

    # --- help and the task list ----------------------------------------------------------------

    def print_task_help(self, name: str) -> None:
        ctx = self.parser.contexts[name]
        tuples = ctx.help_tuples()
        positional = " ".join(f"[{a.name.upper()}]" if a.name in getattr(self.collection[name],
                                                                          "positional_defaults", {})
                              else a.name.upper() for a in ctx.positional_args)
        print(f"Usage: {self.binary} [-H TARGET] {name} {positional + ' ' if positional else ''}"
              + ("[--options]" if tuples else ""))
        print()
        for line in (inspect.getdoc(self.collection[name]) or "").splitlines():
            print(self.leading_indent + line if line.strip() else "")
        print()
        print("Options:")
        if tuples:
            self.print_columns(tuples)
        else:
            print(self.leading_indent + "none\n")
        print(textwrap.fill(TARGET_HELP, width=self.terminal_width_for_help()) + "\n")

    def terminal_width_for_help(self) -> int:
        return min(pty_size()[0], 100)

    def list_flat(self) -> None:
        if self.scoped_collection is not self.collection:  # --list sandbox: the names one types
            print(f"Tasks of {self.list_root}:\n")
            self.print_columns([(f"{self.list_root}{n}" if n.startswith(".") else n, h)
                                for n, h in self._make_pairs(self.scoped_collection)])
            return
        from ayna_fab.cli.namespace import GROUPS, HIDDEN_COLLECTIONS
        pairs = dict(self._make_pairs(self.collection))
        shown: set[str] = set()
        for title, names in GROUPS:
            rows = [(n, pairs[n]) for n in names if n in pairs]
            if rows:
                print(f"{title}:\n")
                self.print_columns(rows)
                shown.update(names)
        hidden = tuple(f"{c}." for c in HIDDEN_COLLECTIONS)
        rest = [(n, h) for n, h in pairs.items() if n not in shown and not n.startswith(hidden)]
        if rest:
            print("Other tasks:\n")
            self.print_columns(rest)
        for c in HIDDEN_COLLECTIONS:
            if c in self.collection.collections:
                print(f"{c}.*: local {c} hosts for the demo and the tests ({self.binary} --list {c})\n")


def program() -> Program:
    from ayna_fab.cli.namespace import ns
    return Program(name=NAME, binary=NAME, version=version(), namespace=ns, executor_class=Executor,
                   config_class=fabric.Config)


def main() -> None:
    program().run()
