"""Release states and the decisions made from them: pure, so every rule is unit-tested.

States: building -> failed | active; active -> previous -> good as newer releases
go live; a release rolled away from becomes rolled-back. Only good states
(active, previous, good) are rollback targets or count towards keep_releases,
so failed releases never push good ones out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ayna_fab.errors import UsageError

GOOD = ("active", "previous", "good")
# Rolled-back releases were live and healthy once: a person may choose one again (--to),
# but the default rollback never picks one. Failed releases were never healthy.
CHOOSABLE = GOOD + ("rolled-back",)
STATES = ("building", "failed", "active", "previous", "good", "rolled-back")
RELEASE_RE = re.compile(r"v([1-9][0-9]{0,8})")
REVISION_RE = re.compile(r"[0-9a-f]{7,40}")


def revision(value: object) -> str | None:
    """A revision a host recorded, if it is a commit hash (7 to 40 hex digits, lower-cased); else
    None. What a host says reaches git commands and laptop hooks only in this form."""
    if isinstance(value, str) and REVISION_RE.fullmatch(value.lower()):
        return value.lower()
    return None


@dataclass(frozen=True)
class Release:
    number: int
    state: str
    revision: str = ""
    ref: str = ""
    deployed_by: str = ""
    deployed_at: str = ""
    complete: bool = True          # its files and venv are all there
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return f"v{self.number}"

    @property
    def good(self) -> bool:
        return self.state in GOOD and self.complete


def parse_name(text: str) -> int:
    m = RELEASE_RE.fullmatch(text)
    if not m:
        raise UsageError(f"{text!r} is not a release name", hint="name a release like v12")
    return int(m.group(1))


def active(releases: list[Release], current: int | None) -> Release | None:
    return next((r for r in releases if r.number == current), None)


def rollback_target(releases: list[Release], current: int | None, to: int | None) -> Release:
    """vN if asked (it must be a good, complete release), else the previous good one."""
    candidates = [r for r in releases if r.good and r.number != current]
    choosable = [r for r in releases if r.complete and r.state in CHOOSABLE and r.number != current]
    listing = ", ".join(f"{r.name} ({r.state})" for r in sorted(releases, key=lambda r: -r.number)) or "none"
    if to is not None:
        chosen = next((r for r in releases if r.number == to), None)
        if chosen is None:
            raise UsageError(f"there is no release v{to}; releases: {listing}", step="rollback")
        if chosen.number == current:
            raise UsageError(f"v{to} is already the active release", step="rollback")
        if chosen not in choosable:
            raise UsageError(f"v{to} is {chosen.state}{'' if chosen.complete else ', incomplete'}: not a "
                             f"rollback target; candidates: "
                             + (", ".join(r.name for r in choosable) or "none"), step="rollback")
        return chosen
    previous = [r for r in candidates if r.state == "previous"]
    pool = previous or sorted(candidates, key=lambda r: -r.number)
    if not pool:
        raise UsageError(f"no good release to roll back to; releases: {listing}", step="rollback")
    return pool[0]


def after_activation(releases: list[Release], new_active: int, old_active: int | None,
                     rolled_back: bool = False) -> dict[int, str]:
    """The states that change when new_active goes live (old_active was live before)."""
    changes: dict[int, str] = {new_active: "active"}
    for r in releases:
        if r.number == new_active:
            continue
        if r.number == old_active:
            changes[r.number] = "rolled-back" if rolled_back else "previous"
        elif r.state in ("previous", "active"):
            changes[r.number] = "good"
    if rolled_back:  # the new previous is the newest good release left below
        below = [r for r in releases if r.good and r.number not in (new_active, old_active)]
        if below:
            changes[max(below, key=lambda r: r.number).number] = "previous"
    return changes


def to_remove(releases: list[Release], current: int | None, keep: int) -> list[int]:
    """Releases cleanup may delete (it runs under the deploy lock, after success).

    Kept: the newest `keep` good releases, the active one and the previous good
    one whatever their age, and the newest bad one (failed, rolled back, or
    abandoned while building) for a post-mortem. Bad releases never count
    towards `keep`.
    """
    good = sorted((r for r in releases if r.good), key=lambda r: -r.number)
    bad = sorted((r for r in releases if not r.good), key=lambda r: -r.number)
    kept = {r.number for r in good[:keep]} | {r.number for r in bad[:1]}
    kept |= {r.number for r in good if r.state == "previous"}
    if current is not None:
        kept.add(current)
    return sorted(r.number for r in releases if r.number not in kept)
