"""The site file setup writes: rendered from a Site alone, with the promises docs/proxy.md makes."""

from __future__ import annotations

import dataclasses

from ayna_fab.config.sites import Site
from ayna_fab.provision import caddyfile

SITE = Site(project="shop", domains=("shop.test", "www.shop.test"), api_domains=(), api_prefix="/api",
            tls="internal", email=None, root="/opt/ayna/shop", static_dir="staticfiles", web_port=8200,
            api_port=8201, media_port=8209, health={"web": "/health/", "api": "/health"},
            headers={"X-Frame-Options": "DENY"}, allow=("10.0.0.0/8",))


def block(text: str, head: str) -> str:
    """The lines of the block that opens with `head`, up to its closing brace."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == head + " {")
    depth = len(lines[start]) - len(lines[start].lstrip("\t"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == "\t" * depth + "}")
    return "\n".join(lines[start:end + 1])


def test_static_follows_current_and_caches_hashed_names_for_a_year():
    static = block(caddyfile.render(SITE), "handle_path /static/*")
    assert "root * /opt/ayna/shop/releases/current/staticfiles" in static
    assert 'header @hashed Cache-Control "public, max-age=31536000, immutable"' in static


def test_media_comes_from_the_media_server_and_the_app_gets_the_rest():
    """Caddy never reads shared/media itself: its file_server would follow a link planted there."""
    text = caddyfile.render(SITE)
    assert "reverse_proxy 127.0.0.1:8209" in block(text, "handle_path /media/*")
    assert "shared/media" not in text and text.count("file_server") == 2   # static, the maintenance page
    assert "reverse_proxy 127.0.0.1:8201" in block(text, "handle_path /api/*")
    assert "reverse_proxy 127.0.0.1:8200" in block(text, "handle")


def test_every_request_gets_a_new_connection_to_the_app():
    text = caddyfile.render(SITE)
    assert text.count("reverse_proxy 127.0.0.1:") == text.count("\t\tkeepalive off\n") == 3


def test_one_route_in_written_order_maintenance_first_and_the_app_last():
    route = block(caddyfile.render(SITE), "route").split("\n")
    heads = [line.strip() for line in route if line.startswith("\t\t") and not line.startswith("\t\t\t")]
    assert heads[0] == 'error @ayna_maintenance "ayna-maintenance" 503'
    assert [h for h in heads if h.startswith("handle")] == [
        "handle_path /static/* {", "handle_path /media/* {", "handle_path /api/* {", "handle {"]


def test_maintenance_is_a_file_checked_per_request_that_health_and_the_allowlist_pass():
    text = caddyfile.render(SITE)
    matcher = block(text, "@ayna_maintenance")
    assert "root /opt/ayna/shop/maintenance" in matcher and "try_files /page.html" in matcher
    assert "not path /health/ /api/health" in matcher
    assert "not remote_ip 10.0.0.0/8" in matcher
    page = block(text, "handle @ayna_maintenance_page")
    assert "header Retry-After 300" in page and "rewrite * /page.html" in page


def test_tls_modes_and_headers():
    assert caddyfile.render(SITE).count("\ttls internal\n") == 1
    auto = caddyfile.render(dataclasses.replace(SITE, tls="auto", email="ops@example.org"))
    assert "\ttls ops@example.org\n" in auto and "internal" not in auto
    off = caddyfile.render(dataclasses.replace(SITE, tls="off"))
    assert "http://shop.test, http://www.shop.test {" in off and "\ttls" not in off
    assert 'X-Frame-Options "DENY"' in block(caddyfile.render(SITE), "header")


def test_api_domains_get_a_block_of_their_own_and_a_snippet_joins_the_site():
    site = dataclasses.replace(SITE, api_prefix=None, api_domains=("api.shop.test",))
    text = caddyfile.render(site, snippet="redir /old /new\n")
    api = block(text, "api.shop.test")
    assert "reverse_proxy 127.0.0.1:8201" in api and "not path /health/ /health" in api
    assert "handle_path /api/*" not in text
    assert "\tredir /old /new\n" in block(text, "shop.test, www.shop.test")
    assert "redir" not in api
