"""docs/fault-matrix.md shows the table that tests/e2e/test_faults.py asserts, cell for cell:
the same cells, the release each leaves serving and fab's exit."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.fault_cells import MATRIX, SILENT, TOO_LATE_ONCE, PHASES, doc_exit

DOC = Path(__file__).resolve().parents[2] / "docs" / "fault-matrix.md"
ROW = re.compile(r"^\| *([^|]+?) *\| *([^|]+?) *\| *([^|]+?) *\| *([^|]+?) *\| *([^|]+?) *\|$")


def doc_rows():
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line.strip())
        if m and m[1] not in ("phase", "---") and not set(m[1]) <= set("-"):
            rows[(m[1], m[2])] = (m[3], m[5])
    return rows


def test_the_documented_table_has_exactly_the_cells_the_test_runs():
    cells = {(c.doc_phase, c.fault) for c in (*MATRIX, SILENT)}
    assert set(doc_rows()) == cells


def test_each_documented_row_says_what_its_cell_asserts():
    rows = doc_rows()
    for c in (*MATRIX, SILENT):
        left, fab_exit = rows[(c.doc_phase, c.fault)]
        assert left.startswith(f"the {c.left} release"), (c, left)
        assert fab_exit.split()[0] == doc_exit(c), (c, fab_exit)


def test_every_phase_a_cell_waits_for_has_its_too_late_marker():
    waited = {c.phase for c in MATRIX if c.fault not in ("unit will not serve", "unit will not start", "disk full")}
    assert waited <= set(PHASES) and waited <= set(TOO_LATE_ONCE)
    for phase, later in TOO_LATE_ONCE.items():
        assert later is None or PHASES.index(later) > PHASES.index(phase), (phase, later)
