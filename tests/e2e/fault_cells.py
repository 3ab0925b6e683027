"""The fault matrix's table as data: each cell's phase, fault, the release it must leave serving
and `fab`'s exit. tests/e2e/test_faults.py asserts each cell against it, and
tests/unit/test_fault_matrix_table.py checks that docs/fault-matrix.md shows the same table.

`exit` is fab's exit code, or KILLED when fab must die by SIGKILL (its exit status is then the
signal's, never a code of its own: proof that it was still running when the fault landed).
A SIGTERM cell expects fab's own exit code, never death by SIGTERM: fab handles the signal.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

KILLED = -signal.SIGKILL          # subprocess's returncode for death by SIGKILL
HANGING = "hanging"               # fab left waiting on a silent link, killed by the test

# The phases in the order a deploy meets them (as the host shows them; tests/e2e/test_faults.py).
PHASES = ("plan", "upload", "install", "check/migrate", "activate", "after flip", "health", "handover", "record")

# A fault meant for a phase lands too late once the host shows this later phase.
TOO_LATE_ONCE = {
    "plan": "upload",
    "upload": "install",
    "install": "activate",
    "check/migrate": "activate",
    "activate": "record",
    "after flip": "health",
    "health": "record",
    "handover": "record",
    "record": None,   # fab's death by SIGKILL proves it was still running
}


@dataclass(frozen=True)
class Cell:
    phase: str        # as the test detects it (PHASES), "restart" for a release failing under systemd
    fault: str
    left: str         # "old" or "new": which release serves once the host is good again
    exit: int | str   # fab's exit code, KILLED or HANGING
    label: str = ""   # the phase as docs/fault-matrix.md names it, when it differs

    @property
    def doc_phase(self) -> str:
        return self.label or self.phase


MATRIX = (
    Cell("plan", "SIGKILL", "old", KILLED),
    Cell("plan", "link cut", "old", 1),
    Cell("upload", "SIGKILL", "old", KILLED),
    Cell("upload", "SIGTERM", "old", 1),
    Cell("install", "SIGKILL", "old", KILLED),
    Cell("install", "link cut", "old", 1),
    Cell("install", "step killed", "old", 1),
    Cell("install", "disk full", "old", 1),
    Cell("check/migrate", "SIGTERM", "old", 1),
    Cell("check/migrate", "PostgreSQL stopped", "old", 1),
    Cell("check/migrate", "SIGKILL", "old", KILLED),
    Cell("activate", "SIGKILL", "new", KILLED, "activate (call sent)"),
    Cell("after flip", "SIGKILL", "new", KILLED, "just after the flip"),
    Cell("after flip", "link cut", "new", 0, "just after the flip"),
    Cell("after flip", "step killed", "old", 1, "just after the flip"),
    Cell("health", "SIGTERM", "new", 0),
    Cell("health", "link cut", "new", 0),
    Cell("health", "step killed", "old", 1),
    Cell("health", "unit will not serve", "old", 1),
    Cell("handover", "step killed", "old", 1, "handover (the live slot stopping)"),
    Cell("restart", "unit will not start", "old", 1),
    Cell("record", "SIGKILL", "new", KILLED),
)

SILENT = Cell("install", "silent link", "old", HANGING)


def cell_id(cell: Cell) -> str:
    return f"{cell.phase}-{cell.fault}".replace(" ", "_").replace("/", "_")


def doc_exit(cell: Cell) -> str:
    """The exit column's first word in docs/fault-matrix.md."""
    return {KILLED: "killed", HANGING: "hanging"}.get(cell.exit, str(cell.exit))
