"""Caddy in front of two projects on one sandbox host, with tls = "internal": each answers on its
own domain (curl --resolve, checked against Caddy's internal root certificate), static files
through `current` with a year's cache for hashed names, uploads from shared/media across a
redeploy and a rollback, a link planted in media leading nowhere, the maintenance switch without a
reload, a project's own snippet, a bad snippet refused before anything changes, and a project
removed (its site gone, Caddy reloaded) then set up again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ayna_fab.provision import caddyfile
from tests.e2e.conftest import DEMO_ENV, fab
from tests.e2e.test_deploy import Repo

pytestmark = pytest.mark.e2e
HOST = 0            # sandbox1; the soak runs on sandbox2
HASHED = "crew/app.0123456789ab.css"
SNIPPET = 'handle /from-the-snippet {\n\trespond "snippet here" 200\n}\n'


def env_file(folder: Path, project: str, base: int) -> Path:
    text = DEMO_ENV.read_text().replace("uavcrew", project).replace("8130", str(base)).replace(
        "8131", str(base + 1)).replace("ALLOWED_HOSTS=localhost,127.0.0.1",
                                       "ALLOWED_HOSTS=localhost,127.0.0.1,uavcrew.test,shop.test")
    path = folder / f"{project}.env"
    path.write_text(text)
    return path


def inventory(folder: Path, sandbox, uavcrew: Path, shop: Path) -> Path:
    s, hs = sandbox.settings, sandbox.hosts[HOST]
    path = folder / "hosts.toml"
    path.write_text(f"""\
[defaults]
identity_file = "{s.key_path}"
known_hosts = "{s.known_hosts_path}"
tls = "internal"

[projects.uavcrew]
source = "{uavcrew}"
env = "production"
env_file = "{env_file(folder, "uavcrew", 8130)}"
create_database = true
domains = ["uavcrew.test"]
api_prefix = "/api"
maintenance_allow = ["127.0.0.2"]
headers = {{ X-Served-By = "ayna-fab-test" }}

[projects.shop]
source = "{shop}"
env = "production"
env_file = "{env_file(folder, "shop", 8200)}"
create_database = true
port_base = 8200

[hosts.{hs.name}]
hostname = "127.0.0.1"
port = {hs.ssh_port}
projects = ["uavcrew", "shop"]
domains = {{ shop = ["shop.test"] }}
""")
    return path


class Site:
    def __init__(self, sandbox, inv: Path, uavcrew: Repo, shop: Repo) -> None:
        self.sandbox, self.inv, self.uavcrew, self.shop = sandbox, inv, uavcrew, shop
        self.name = sandbox.hosts[HOST].name

    def fab(self, *args: str):
        return fab("-H", self.name, *args, hosts_file=self.inv)

    def get(self, url: str, *extra: str) -> tuple[int, dict[str, str], str]:
        """curl on the host, through Caddy: the name resolves to 127.0.0.1, the certificate is
        checked against Caddy's internal root."""
        domain = url.split("/")[2]
        port = 443 if url.startswith("https") else 80
        out = self.sandbox.check(HOST, f"curl -sS -i --max-time 30 --resolve {domain}:{port}:127.0.0.1 "
                                       f"--cacert {caddyfile.ROOT_CERT} {' '.join(extra)} '{url}'")
        head, _, body = out.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    def site_sha(self) -> str:
        return self.sandbox.check(HOST, f"sha256sum {caddyfile.path('uavcrew')}").split()[0]

    def reloads(self) -> int:
        """How many times Caddy has loaded a configuration since it started."""
        out = self.sandbox.check(HOST, "journalctl -u caddy -o cat --no-pager | grep -c 'load complete' || true")
        return int(out.strip() or 0)


@pytest.fixture(scope="module")
def site(sandbox, first_setup, tmp_path_factory) -> Site:
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    folder = tmp_path_factory.mktemp("proxy")
    uavcrew = Repo(folder / "uavcrew")
    hashed = uavcrew.path / "src/web/crew/static" / HASHED
    hashed.write_text("body { color: teal }\n")
    (uavcrew.path / "caddy").mkdir()
    (uavcrew.path / "caddy" / "extra.caddy").write_text(SNIPPET)
    uavcrew.git("add", "-A")
    uavcrew.git("commit", "-qm", "a hashed static file and a Caddy snippet")
    shop = Repo(folder / "shop")
    (shop.path / "SHOP").write_text("the second project\n")
    shop.git("add", "-A")
    shop.git("commit", "-qm", "shop")
    s = Site(sandbox, inventory(folder, sandbox, uavcrew.path, shop.path), uavcrew, shop)
    r = s.fab("setup", "--force-env")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote /etc/caddy/ayna/uavcrew.caddy" in r.stdout and "wrote /etc/caddy/ayna/shop.caddy" in r.stdout
    print(sandbox.check(HOST, f"cat {caddyfile.path('uavcrew')}"))   # the closing note's site file
    for project in ("uavcrew", "shop"):
        r = s.fab("deploy", "--project", project)
        assert r.returncode == 0, r.stdout + r.stderr
    return s


def test_setup_again_changes_nothing(site):
    r = site.fab("setup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "setup of uavcrew: nothing changed" in r.stdout and "setup of shop: nothing changed" in r.stdout


def test_two_projects_each_answer_on_their_own_domain(site):
    for project, repo in (("uavcrew", site.uavcrew), ("shop", site.shop)):
        status, headers, body = site.get(f"https://{project}.test/health/")
        assert status == 200, body
        assert json.loads(body)["revision"] == repo.git("rev-parse", "HEAD")
    status, headers, body = site.get("https://uavcrew.test/api/health")
    assert status == 200 and json.loads(body)["service"] == "api", body
    assert headers.get("x-served-by") == "ayna-fab-test"
    status, headers, _ = site.get("http://uavcrew.test/")
    assert status in (301, 308) and headers["location"] == "https://uavcrew.test/"


def test_static_files_come_through_current_and_hashed_names_are_cached_for_a_year(site):
    status, headers, body = site.get(f"https://uavcrew.test/static/{HASHED}")
    assert status == 200 and "teal" in body
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    status, headers, _ = site.get("https://uavcrew.test/static/crew/site.css")
    assert status == 200 and "immutable" not in headers.get("cache-control", "")


def test_the_project_s_snippet_is_used(site):
    status, _, body = site.get("https://uavcrew.test/from-the-snippet")
    assert (status, body) == (200, "snippet here")
    assert site.get("https://shop.test/from-the-snippet")[2] != "snippet here"   # only uavcrew has it


def test_an_upload_is_served_and_outlives_a_redeploy_and_a_rollback(site):
    site.sandbox.check(HOST, "runuser -u adonis -- sh -c 'printf uploaded > /opt/ayna/uavcrew/shared/media/up.txt'")
    assert site.get("https://uavcrew.test/media/up.txt")[::2] == (200, "uploaded")
    site.uavcrew.mode("code-change", text="Proxy edition")
    r = site.fab("deploy", "--project", "uavcrew")
    assert r.returncode == 0, r.stdout + r.stderr
    assert site.get("https://uavcrew.test/media/up.txt")[::2] == (200, "uploaded")
    assert site.get(f"https://uavcrew.test/static/{HASHED}")[0] == 200
    r = site.fab("rollback", "--project", "uavcrew")
    assert r.returncode == 0, r.stdout + r.stderr
    assert site.get("https://uavcrew.test/media/up.txt")[::2] == (200, "uploaded")
    status, _, body = site.get("https://uavcrew.test/health/")
    assert status == 200 and json.loads(body)["revision"] != site.uavcrew.git("rev-parse", "HEAD")


def test_a_link_planted_in_media_leads_nowhere(site):
    """Caddy's file_server would follow these to its own keys, the env file, anything Caddy reads:
    the media server sees nothing but shared/media."""
    media = "/opt/ayna/uavcrew/shared/media"
    site.sandbox.check(HOST, f"runuser -u adonis -- sh -c 'printf photo > {media}/photo.txt'")
    targets = {"key.txt": "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.key",
               "root.txt": caddyfile.ROOT_CERT, "site.txt": caddyfile.path("uavcrew"),
               "env.txt": "/opt/ayna/uavcrew/shared/.env.production", "passwd.txt": "/etc/passwd",
               "inside.txt": "../media/photo.txt"}
    for name, target in targets.items():
        site.sandbox.check(HOST, f"runuser -u adonis -- ln -sfn {target} {media}/{name}")
    site.sandbox.check(HOST, f"runuser -u caddy -- test -r {targets['key.txt']}")   # Caddy itself would serve it
    assert site.get("https://uavcrew.test/media/photo.txt")[::2] == (200, "photo")
    assert site.get("https://uavcrew.test/media/inside.txt")[::2] == (200, "photo")   # a link inside media
    for name in ("key.txt", "root.txt", "site.txt", "env.txt", "passwd.txt"):
        status, _, body = site.get(f"https://uavcrew.test/media/{name}")
        assert status in (403, 404) and not any(s in body for s in ("BEGIN", "SECRET", "root:", "uavcrew.test")), (
            name, status, body)
    status, _, body = site.get("https://uavcrew.test/media/")
    assert status in (403, 404) and "photo.txt" not in body      # no listing either


def test_maintenance_on_and_off_without_a_reload(site):
    loads = site.reloads()
    assert loads >= 1, "setup reloaded Caddy at least once: the count must see it"
    r = site.fab("maintenance", "on", "--message", "Back at <five>", "--project", "uavcrew")
    assert r.returncode == 0 and "uavcrew: maintenance on" in r.stdout, r.stdout + r.stderr
    status, headers, body = site.get("https://uavcrew.test/")
    assert status == 503 and headers["retry-after"] == "300" and "Back at &lt;five&gt;" in body
    assert site.get("https://uavcrew.test/health/")[0] == 200      # health checks still reach the app
    assert site.get("https://uavcrew.test/api/health")[0] == 200
    assert site.get("https://uavcrew.test/", "--interface", "127.0.0.2")[0] == 200   # the allowlist
    assert site.get("https://shop.test/")[0] == 200                 # the other project is not in maintenance
    rows = json.loads(site.fab("status", "--json", "--project", "uavcrew").stdout)
    assert [row["proxy"] for row in rows if row["host"] == site.name] == ["caddy active, site, maintenance on"]
    r = site.fab("maintenance", "off", "--project", "uavcrew")
    assert r.returncode == 0 and "uavcrew: maintenance off" in r.stdout, r.stdout + r.stderr
    assert site.get("https://uavcrew.test/")[0] == 200
    assert site.reloads() == loads


def test_validate_checks_the_proxy(site):
    r = site.fab("validate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Caddy serves the project's domains" in r.stdout


def test_a_bad_snippet_is_refused_before_anything_changes(site):
    before = site.site_sha()
    (site.uavcrew.path / "caddy" / "extra.caddy").write_text(SNIPPET + "this_is_no_directive\n")
    site.uavcrew.git("commit", "-qam", "a broken snippet")
    try:
        r = site.fab("setup", "--project", "uavcrew")
        assert r.returncode != 0 and "caddy validate refused the site of uavcrew" in r.stderr, r.stdout + r.stderr
        assert site.site_sha() == before
        assert site.get("https://uavcrew.test/from-the-snippet")[::2] == (200, "snippet here")
    finally:
        site.uavcrew.git("revert", "--no-edit", "HEAD")
    r = site.fab("setup", "--project", "uavcrew")
    assert r.returncode == 0 and "setup of uavcrew: nothing changed" in r.stdout, r.stdout + r.stderr


def test_remove_takes_the_site_off_and_setup_brings_it_back(site):
    """The removed project's site file and media server go, Caddy reloads gracefully and keeps
    serving the other project; setup then puts them back."""
    loads = site.reloads()
    r = site.fab("remove", "--project", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"removed {caddyfile.path('shop')}" in r.stdout and "reloaded caddy (graceful)" in r.stdout
    assert "stopped and removed shop-media.service" in r.stdout
    site.sandbox.check(HOST, f"test ! -e {caddyfile.path('shop')} && systemctl is-active --quiet caddy")
    assert site.reloads() > loads
    assert site.get("https://uavcrew.test/health/")[0] == 200
    again = site.fab("remove", "--project", "shop")
    assert again.returncode == 0 and "nothing to remove" in again.stdout, again.stdout + again.stderr
    r = site.fab("setup", "--project", "shop")
    assert r.returncode == 0 and f"wrote {caddyfile.path('shop')}" in r.stdout, r.stdout + r.stderr
    r = site.fab("deploy", "--project", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert site.get("https://shop.test/")[0] == 200
