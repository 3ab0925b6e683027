"""Caddy's keys in hosts.toml: sites resolve per host, and each mistake is named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ayna_fab.config import sites
from ayna_fab.config.model import load
from ayna_fab.errors import ConfigError

BASE = """\
[defaults]
tls = "internal"

[projects.uavcrew]
source = "."
env = "production"
domains = ["uavcrew.test"]
{uavcrew}

[projects.shop]
source = "."
env = "production"
port_base = 8200
{shop}

[hosts.prod]
hostname = "prod.example.org"
projects = ["uavcrew", "shop"]
{host}
"""


def cfg(tmp_path: Path, uavcrew: str = "", shop: str = "", host: str = ""):
    path = tmp_path / "hosts.toml"
    path.write_text(BASE.format(uavcrew=uavcrew, shop=shop, host=host))
    return load(path)


def problem(tmp_path: Path, **parts) -> str:
    with pytest.raises(ConfigError) as exc:
        cfg(tmp_path, **parts)
    return f"{exc.value} {exc.value.hint}"


def test_a_host_s_domains_replace_the_project_s_and_tls_comes_from_defaults(tmp_path):
    c = cfg(tmp_path, shop='domains = ["shop.test"]', host='domains = { shop = ["staging.shop.test"] }')
    by = {s.project: s for s in sites.sites(c, c.hosts["prod"])}
    assert by["uavcrew"].domains == ("uavcrew.test",) and by["shop"].domains == ("staging.shop.test",)
    assert by["shop"].tls == "internal" and by["shop"].web_port == 8200 and by["shop"].api_port == 8201


def test_a_project_without_domains_has_no_site(tmp_path):
    c = cfg(tmp_path)
    assert [s.project for s in sites.sites(c, c.hosts["prod"])] == ["uavcrew"]


def test_a_domain_on_two_projects_of_one_host_is_refused(tmp_path):
    said = problem(tmp_path, shop='domains = ["uavcrew.test"]')
    assert "'uavcrew.test' is a domain of both 'uavcrew' and 'shop'" in said


def test_an_api_domain_of_one_project_that_is_another_s_site_is_refused(tmp_path):
    assert "is a domain of both" in problem(tmp_path, shop='api_domains = ["uavcrew.test"]')


def test_an_api_prefix_over_django_s_health_url_is_refused(tmp_path):
    said = problem(tmp_path, uavcrew='api_prefix = "/health"')
    assert "takes Django's health URL '/health/' to the api" in said


@pytest.mark.parametrize("prefix, says", [
    ('"/static"', "under /static/"), ('"/media/api"', "under /media/"), ('"/"', "every request to the API"),
    ('"/api/"', "ends with '/'"), ('"api"', "not a plain URL path")])
def test_an_api_prefix_must_leave_caddy_s_own_paths_alone(tmp_path, prefix, says):
    assert says in problem(tmp_path, uavcrew=f"api_prefix = {prefix}")


def test_an_api_for_a_project_without_api_is_refused(tmp_path):
    said = problem(tmp_path, shop='services = ["web"]\napi_prefix = "/api"')
    assert "projects.shop.api_prefix: the project does not run api" in said


@pytest.mark.parametrize("domain, says", [
    ("shop.test:8443", "names a port"), ("https://shop.test", "scheme"), ("Shop.test", "not a domain"),
    ("10.0.0.1", "not a domain"), ("shop", "not a domain")])
def test_domains_are_plain_dns_names(tmp_path, domain, says):
    assert says in problem(tmp_path, shop=f'domains = ["{domain}"]')


def test_tls_auto_needs_an_email(tmp_path):
    said = problem(tmp_path, uavcrew='tls = "auto"')
    assert "projects.uavcrew.tls_email" in said and "needs an email" in said
    c = cfg(tmp_path, uavcrew='tls = "auto"\ntls_email = "ops@example.org"')
    assert sites.site(c, c.hosts["prod"], c.projects["uavcrew"]).email == "ops@example.org"


def test_host_domains_name_only_its_projects(tmp_path):
    assert "'blog' is not one of this host's projects" in problem(tmp_path, host='domains = { blog = ["b.test"] }')


def test_headers_and_allowlist_are_checked(tmp_path):
    assert "is not a header name" in problem(tmp_path, uavcrew='headers = { "X Bad" = "1" }')
    assert "holds a control character, a quote" in problem(tmp_path, uavcrew='headers = { X-A = "a\\"b" }')
    assert "not an IP address or network" in problem(tmp_path, uavcrew='maintenance_allow = ["office"]')
    assert "unknown tls mode" in problem(tmp_path, uavcrew='tls = "acme"')
