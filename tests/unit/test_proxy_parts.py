"""The proxy's parts that need no host: setup's script, the maintenance page and switch, validate's verdicts."""

from __future__ import annotations

import os

import pytest

from ayna_fab.commands import caddy as caddycmd
from ayna_fab.hostprog import calls, sitepage
from ayna_fab.hostprog.wire import Refused
from ayna_fab.ops import proxy
from tests.unit.test_caddyfile import SITE


def test_a_new_site_file_is_validated_with_the_whole_configuration_before_it_is_installed():
    script = caddycmd.install_site("shop", "shop.test {\n}\n").script
    validate = script.index("caddy validate --adapter caddyfile")
    assert validate < script.index("install -m 644 -o root -g root \"$stage/site\" /etc/caddy/ayna/shop.caddy")
    assert validate < script.index(">> /etc/caddy/Caddyfile")
    assert "    exit 1\n" in script[validate:script.index("install -m 644")]
    assert script.index("cp \"$stage/site\" \"$stage/sites/\"shop.caddy") < validate


def test_a_change_is_applied_with_a_graceful_reload_and_nothing_changed_reloads_nothing():
    script = caddycmd.install_site("shop", "x\n").script
    assert "elif [ $reload = 1 ]; then systemctl reload caddy" in script
    assert "restart" not in script
    assert "if ! cmp -s \"$stage/site\" /etc/caddy/ayna/shop.caddy || [ $need_import = 1 ]; then" in script


def test_caddy_is_installed_from_the_distribution_only_when_missing():
    script = caddycmd.install_site("shop", "x\n").script
    assert script.index("if ! command -v caddy") < script.index("apt-get install -y -q caddy")


def test_the_maintenance_page_shows_the_message_as_text():
    page = proxy.page("shop", "<script>x</script> back at 5")
    assert "&lt;script&gt;x&lt;/script&gt; back at 5" in page and "<script>" not in page
    assert proxy.DEFAULT_MESSAGE in proxy.page("shop", None)


def test_the_switch_writes_and_removes_the_page_caddy_looks_for(tmp_path):
    assert sitepage.switch(calls.SitePage(root=str(tmp_path), page="<p>soon</p>")) == {"on": True, "changed": True}
    page = tmp_path / "maintenance" / "page.html"
    assert page.read_text() == "<p>soon</p>" and oct(page.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path / "maintenance") == ["page.html"]
    assert sitepage.switch(calls.SitePage(root=str(tmp_path), page=None)) == {"on": False, "changed": True}
    assert not page.exists()
    assert sitepage.switch(calls.SitePage(root=str(tmp_path), page=None)) == {"on": False, "changed": False}


def test_the_switch_follows_no_link_planted_at_its_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "maintenance").symlink_to(elsewhere)
    with pytest.raises(Refused):
        sitepage.switch(calls.SitePage(root=str(tmp_path / "root"), page="x"))
    assert os.listdir(elsewhere) == []


GOOD = {"installed": "1", "active": "active", "site": "1", "imported": "1", "valid": "1", "maintenance": "0",
        "media": "active"}


def test_validate_passes_a_served_site_and_names_each_problem():
    seen = [("shop.test", "/health/", "HTTP/1.1 200 OK")]
    assert proxy.problems(SITE, GOOD, seen) == []
    said = proxy.problems(SITE, {**GOOD, "active": "inactive", "valid": "0", "maintenance": "1"},
                          [("shop.test", "/health/", "HTTP/1.1 502 Bad Gateway")])
    assert said == ["caddy is inactive", "caddy validate refuses the host's configuration",
                    "https://shop.test/health/ through Caddy: HTTP/1.1 502 Bad Gateway",
                    "maintenance is on (fab maintenance off)"]
    assert proxy.problems(SITE, {"installed": "0"}, []) == ["caddy is not installed: run setup"]
    assert proxy.problems(SITE, {**GOOD, "media": "failed"}, seen) == [
        "the media server (shop-media.service) is failed: run setup"]


def test_validate_asks_every_domain_for_the_app_s_health():
    assert proxy.probes(SITE) == [("shop.test", "/health/", "internal"), ("www.shop.test", "/health/", "internal")]
    assert proxy.summary({**GOOD, "maintenance": "1"}) == "caddy active, site, maintenance on"
