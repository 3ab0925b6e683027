"""Setup's caddy step: a project with domains gets its site file (with its committed caddy/ snippet),
one without has its old one removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ayna_fab.config.model import load
from ayna_fab.config import registry
from ayna_fab.provision import setup as hostsetup, unitfiles as units
from ayna_fab.remote.transport import Result


class Recorder:
    def __init__(self) -> None:
        self.commands = []

    def run(self, cmd, **_):
        self.commands.append(cmd)
        return Result(0, "changed: something\n", "")


def project_repo(path: Path, snippet: str | None, uncommitted: str | None = None) -> Path:
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (path / "README").write_text("x\n")
    if snippet is not None:
        (path / "caddy").mkdir()
        (path / "caddy" / "site.caddy").write_text(snippet)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    if uncommitted is not None:
        (path / "caddy" / "later.caddy").write_text(uncommitted)
    return path


def plan(tmp_path: Path, domains: str, snippet: str | None = None, uncommitted: str | None = None):
    tmp_path.mkdir(exist_ok=True)
    src = project_repo(tmp_path / "src", snippet, uncommitted)
    inv = tmp_path / "hosts.toml"
    inv.write_text(f'[defaults]\ntls = "internal"\n[projects.uavcrew]\nsource = "{src}"\nenv = "production"\n'
                   f'{domains}\n[hosts.h]\nhostname = "h.example.org"\nprojects = ["uavcrew"]\n')
    cfg = load(inv)
    return hostsetup.prepare(cfg, cfg.hosts["h"], cfg.projects["uavcrew"], force_env=False)


def test_a_project_with_domains_gets_its_site_file_with_its_committed_snippet(tmp_path):
    s = plan(tmp_path, 'domains = ["uavcrew.test"]', snippet="redir /old /new\n", uncommitted="respond /x 500\n")
    r = Recorder()
    hostsetup.step_caddy(s, r)
    media, cmd = r.commands
    assert "/etc/caddy/ayna/uavcrew.caddy" in cmd.script and "uavcrew.test {" in cmd.script
    assert "\tredir /old /new\n" in cmd.script and "respond /x 500" not in cmd.script
    assert "/etc/systemd/system/uavcrew-media.service" in media.script   # running before Caddy proxies to it
    assert s.changes == ["something", "something"]


def test_a_project_without_domains_has_its_site_file_removed(tmp_path):
    s = plan(tmp_path, "")
    r = Recorder()
    hostsetup.step_caddy(s, r)
    cmd, media = r.commands
    assert cmd.script.startswith("set -eu\nif [ -e /etc/caddy/ayna/uavcrew.caddy ]; then\n  rm -f")
    assert "systemctl disable --now --quiet uavcrew-media.service" in media.script
    assert "apt-get" not in cmd.script + media.script


def test_served_media_opens_shared_to_others_only_with_a_site(tmp_path):
    modes = {p.rsplit("/", 1)[-1]: m for p, _, _, m in plan(tmp_path, 'domains = ["uavcrew.test"]').layout.dirs(
        "adonis", served=True)}
    assert (modes["shared"], modes["media"], modes["backups"]) == ("1771", "755", "700")
    closed = {p.rsplit("/", 1)[-1]: m for p, _, _, m in plan(tmp_path / "b", "").layout.dirs("adonis")}
    assert (closed["shared"], closed["media"]) == ("1770", "750")


def test_the_media_server_sees_nothing_but_shared_media_on_a_reserved_port_of_its_own(tmp_path):
    s = plan(tmp_path, 'domains = ["uavcrew.test"]')
    text = units.render_media(s.config, s.project)
    service = dict(line.split("=", 1) for line in text.split("[Service]")[1].split("[Install]")[0].split("\n")
                   if "=" in line)
    assert service["TemporaryFileSystem"] == "/" and service["User"] == "caddy"
    assert "DynamicUser" not in service and "ProtectSystem" not in service   # either brings the host's / back
    binds = service["BindReadOnlyPaths"].split()
    assert binds[-1] == "/opt/ayna/uavcrew/shared/media:/srv/media"
    assert all(b.lstrip("-") in ("/usr", "/lib", "/lib64") for b in binds[:-1])   # the program, nothing else
    assert service["ExecStart"].endswith("--root /srv/media --listen 127.0.0.1:8139")
    assert "--browse" not in service["ExecStart"]
    port = s.site.media_port
    assert port == 8139 and port - s.project.port_base not in (*registry.OFFSETS.values(),
                                                                *units.PREFLIGHT_OFFSETS.values())
    assert port in s.project.ports
