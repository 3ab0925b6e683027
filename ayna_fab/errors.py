"""The few exception types ayna-fab raises, and the exit code each maps to.

Exit codes are a contract (docs/ARCHITECTURE.md, "Errors and exit codes"): scripts and CI branch on them.
Only `ayna_fab.cli.exitcodes` turns these into process exits.
"""

from __future__ import annotations


class AynaFabError(Exception):
    """Base of every error ayna-fab reports to a person.

    The message must name what failed (host, step) and what to do next.
    """

    exit_code = 1

    def __init__(self, message: str, *, host: str | None = None, step: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.step = step
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.host and self.step:
            where = f"[{self.host}] {self.step}: "
        elif self.host:
            where = f"[{self.host}] "
        elif self.step:
            where = f"{self.step}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f"\n  -> {self.hint}"
        return text


class UsageError(AynaFabError):
    """Bad input or configuration, or a missing prerequisite: nothing was done remotely."""

    exit_code = 2


class ConfigError(UsageError):
    """hosts.toml (or another config file) is malformed or inconsistent."""


class OperationFailed(AynaFabError):
    """The operation failed but every host was left in (or put back into) a good state."""

    exit_code = 1


class CommandExited(AynaFabError):
    """A person's own command (fab exec) ended with a non-zero status: ayna-fab exits with that status."""

    def __init__(self, message: str, code: int, **where) -> None:
        super().__init__(message, **where)
        self.exit_code = code


class NeedsAttention(AynaFabError):
    """The operation failed and a good state could not be restored: a person must look."""

    exit_code = 3
