"""The standard's port registry: which 127.0.0.1 ports each project may bind.

Ports are a company-wide contract: several projects share a host, so two
projects must never claim the same port, whichever hosts they happen to run on
today. The table lives here once; the arithmetic (service -> port, overlaps)
is pure so it can be checked without a config file or a network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

RANGE_SIZE = 10
MIN_PORT = 1024  # below this only root may bind; our units run as the deploy user
MAX_PORT = 65535

# Offsets within a range (the standard's "Port Convention"); +5..+9 are reserved.
OFFSETS: Mapping[str, int] = MappingProxyType(
    {"web": 0, "api": 1, "docs": 2, "websocket": 3, "admin": 4})
MEDIA_OFFSET = 9   # a reserved port: the media server of a project Caddy serves (docs/proxy.md)


class RegistryError(ValueError):
    """A range that breaks the registry; `fix` says what to write instead.

    The loader turns it into a ConfigError naming the file and key.
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


@dataclass(frozen=True)
class PortRange:
    """The ten ports [base, base+9] that belong to one project."""

    project: str
    base: int

    def __post_init__(self) -> None:
        if not MIN_PORT <= self.base <= MAX_PORT - RANGE_SIZE + 1:
            raise RegistryError(
                f"port range {self.base}-{self.base + RANGE_SIZE - 1} is outside "
                f"{MIN_PORT}-{MAX_PORT}",
                f"choose a port_base from {MIN_PORT} to {MAX_PORT - RANGE_SIZE + 1}")

    @property
    def last(self) -> int:
        return self.base + RANGE_SIZE - 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.base <= port <= self.last

    def port(self, service: str) -> int:
        """The port of `service` (web, api, docs, websocket, admin) in this range."""
        try:
            return self.base + OFFSETS[service]
        except KeyError:
            raise RegistryError(
                f"service {service!r} has no port in the registry",
                f"ports exist for: {', '.join(OFFSETS)}") from None

    def overlaps(self, other: PortRange) -> bool:
        return self.base <= other.last and other.base <= self.last

    def __str__(self) -> str:
        return f"{self.project} {self.base}-{self.last}"


STANDARD: Mapping[str, PortRange] = MappingProxyType({r.project: r for r in (
    PortRange("ayna-comply", 8100),
    PortRange("ayna-fly", 8110),
    PortRange("aynasite", 8120),
    PortRange("uavcrew", 8130),
    PortRange("skybookus", 8140),
)})


def range_of(project: str, ranges: Mapping[str, PortRange] = STANDARD) -> PortRange:
    """The range registered for `project`."""
    try:
        return ranges[project]
    except KeyError:
        raise RegistryError(
            f"project {project!r} has no port range",
            f"registered projects: {', '.join(sorted(ranges))}; others need a "
            f"port_base in hosts.toml") from None


def port_for(project: str, service: str,
             ranges: Mapping[str, PortRange] = STANDARD) -> int:
    """The port `project`'s `service` binds on 127.0.0.1."""
    return range_of(project, ranges).port(service)


def owner_of(port: int, ranges: Mapping[str, PortRange] = STANDARD) -> PortRange | None:
    """The range holding `port`, or None when no project owns it."""
    return next((r for r in ranges.values() if port in r), None)


def overlaps(ranges: Iterable[PortRange]) -> list[tuple[PortRange, PortRange]]:
    """Every pair of distinct projects whose ranges share a port, sorted by base."""
    ordered = sorted(ranges, key=lambda r: (r.base, r.project))
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]
            if a.project != b.project and a.overlaps(b)]


def next_free_base(ranges: Mapping[str, PortRange] = STANDARD) -> int:
    """The first multiple of ten after every registered range: a safe suggestion."""
    top = max((r.last for r in ranges.values()), default=MIN_PORT - 1)
    return (top // RANGE_SIZE + 1) * RANGE_SIZE


def claim(ranges: Mapping[str, PortRange], project: str, base: int) -> dict[str, PortRange]:
    """`ranges` plus `project`'s range at `base`, or RegistryError if it conflicts.

    A project in the standard keeps the standard's range (a host file cannot
    move it); any other project gets a new range that overlaps nobody's.
    """
    standard = STANDARD.get(project)
    if standard is not None and standard.base != base:
        raise RegistryError(
            f"{project} is in the standard's port registry at {standard.base}-"
            f"{standard.last}, not {base}",
            f"set port_base = {standard.base} (or leave it out)")
    new = PortRange(project, base)
    for other in ranges.values():
        if other.project != project and new.overlaps(other):
            raise RegistryError(
                f"range {new.base}-{new.last} overlaps {other}",
                f"choose a free range of {RANGE_SIZE}, e.g. port_base = "
                f"{next_free_base(ranges)}")
    return {**ranges, project: new}
