"""Every remote command ayna-fab runs, built as data by pure functions (no I/O here).

Each builder returns a `remote.Command`: one shell script for one round trip.
Scripts that change something print `changed: ...` lines, so a task can say
exactly what it changed, and "nothing changed" on a second run.
"""

from __future__ import annotations

import shlex

q = shlex.quote


def heredoc(target: str, text: str, tag: str = "AYNA_FAB_EOF") -> str:
    """A shell fragment writing text verbatim (quoted delimiter: no expansion) to target,
    a shell word the caller has already quoted."""
    if any(line == tag for line in text.splitlines()):
        raise ValueError(f"text contains the heredoc delimiter {tag}")
    body = text if text.endswith("\n") else text + "\n"
    return f"cat > {target} <<'{tag}'\n{body}{tag}\n"


def changed_lines(stdout: str) -> list[str]:
    return [line[len("changed: "):] for line in stdout.splitlines() if line.startswith("changed: ")]
