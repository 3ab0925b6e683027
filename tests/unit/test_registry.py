"""The standard's port registry: ranges, service ports, overlaps, claims."""

from __future__ import annotations

import pytest

from ayna_fab.config import registry
from ayna_fab.config.registry import (STANDARD, PortRange, RegistryError, claim, next_free_base,
                               overlaps, owner_of, port_for, range_of)

STANDARD_BASES = {"ayna-comply": 8100, "ayna-fly": 8110, "aynasite": 8120,
                  "uavcrew": 8130, "skybookus": 8140}


def test_standard_matches_the_deployment_standard():
    assert {name: r.base for name, r in STANDARD.items()} == STANDARD_BASES
    assert all(r.last == r.base + 9 for r in STANDARD.values())
    assert overlaps(STANDARD.values()) == []


@pytest.mark.parametrize("project,base", STANDARD_BASES.items())
@pytest.mark.parametrize("service,offset",
                         [("web", 0), ("api", 1), ("docs", 2), ("websocket", 3), ("admin", 4)])
def test_port_for_every_project_and_service(project, base, service, offset):
    assert port_for(project, service) == base + offset


def test_services_without_a_port_are_an_error():
    with pytest.raises(RegistryError, match="'celery' has no port") as err:
        port_for("uavcrew", "celery")
    assert "web, api, docs, websocket, admin" in err.value.fix


def test_unknown_project_is_an_error_naming_the_known_ones():
    with pytest.raises(RegistryError, match="'nope' has no port range") as err:
        range_of("nope")
    assert "ayna-comply" in err.value.fix and "port_base" in err.value.fix


def test_custom_ranges_are_looked_up_too():
    ranges = claim(STANDARD, "newproj", 8150)
    assert port_for("newproj", "api", ranges) == 8151
    assert range_of("newproj", ranges) == PortRange("newproj", 8150)
    assert "newproj" not in STANDARD  # the default is never mutated


def test_port_range_basics():
    r = PortRange("uavcrew", 8130)
    assert (r.base, r.last, str(r)) == (8130, 8139, "uavcrew 8130-8139")
    assert 8130 in r and 8139 in r and 8140 not in r and 8129 not in r and "8130" not in r
    assert r.overlaps(PortRange("x", 8139)) and r.overlaps(PortRange("x", 8121))
    assert not r.overlaps(PortRange("x", 8140)) and not r.overlaps(PortRange("x", 8120))


@pytest.mark.parametrize("base", [0, 80, 1023, 65527, 65535, 70000])
def test_ranges_stay_inside_unprivileged_ports(base):
    with pytest.raises(RegistryError, match="outside 1024-65535"):
        PortRange("x", base)


@pytest.mark.parametrize("base", [registry.MIN_PORT, 65526])
def test_range_edges_are_allowed(base):
    assert PortRange("x", base).last <= registry.MAX_PORT


def test_owner_of():
    assert owner_of(8135) == STANDARD["uavcrew"]
    assert owner_of(8100).project == "ayna-comply"
    assert owner_of(8150) is None and owner_of(22) is None


def test_overlaps_reports_each_pair_once_sorted():
    a, b, c = PortRange("a", 9000), PortRange("b", 9005), PortRange("c", 9009)
    assert overlaps([c, b, a]) == [(a, b), (a, c), (b, c)]
    assert overlaps([a, PortRange("d", 9010)]) == []
    assert overlaps([a, a]) == []  # the same project twice is not a conflict


def test_next_free_base():
    assert next_free_base() == 8150
    assert next_free_base(claim(STANDARD, "x", 8155)) == 8170
    assert next_free_base({}) == 1030  # first multiple of ten above 1024


def test_claim_accepts_a_standard_project_at_its_own_base():
    assert claim(STANDARD, "uavcrew", 8130) == dict(STANDARD)


def test_claim_names_the_expected_base_of_a_standard_project():
    with pytest.raises(RegistryError) as err:
        claim(STANDARD, "uavcrew", 8150)
    assert "8130-8139" in str(err.value) and err.value.fix.startswith("set port_base = 8130")


@pytest.mark.parametrize("base,other", [(8135, "uavcrew"), (8091, "ayna-comply"),
                                        (8149, "skybookus")])
def test_claim_refuses_overlaps(base, other):
    with pytest.raises(RegistryError, match=f"overlaps {other}") as err:
        claim(STANDARD, "newproj", base)
    assert "port_base = 8150" in err.value.fix


def test_claim_refuses_overlap_between_two_new_projects():
    ranges = claim(STANDARD, "alpha", 9000)
    with pytest.raises(RegistryError, match="overlaps alpha 9000-9009"):
        claim(ranges, "beta", 9009)
    assert claim(ranges, "beta", 9010)["beta"].last == 9019
