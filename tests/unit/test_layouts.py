"""Projects as people have them: any layout, services in any useful combination, honest checks,
SQLite, package index settings and bastions, at the level of pure code and the host program.
(tests/e2e/test_corpus.py deploys the same shapes to real hosts.)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.commands import setup as setup_cmd
from ayna_fab.config import model as config, packageindex, targets
from ayna_fab.config.layout import Layout
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import backups, calls, django_steps, dumps
from ayna_fab.ops import planchecks
from ayna_fab.provision import unitfiles as units, uvrelease
from ayna_fab.remote import ssh
from ayna_fab.scan import project as projectinit
from tests import corpus

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "hosts.toml"
    path.write_text(textwrap.dedent(text))
    return config.load(path)


SHAPES_TOML = """
[projects.notes]
source = "notes"
env = "production"
port_base = 8150
services = ["web"]
django_dir = "."
wsgi_app = "notes_site.wsgi:application"

[projects.pinger]
source = "pinger"
env = "production"
port_base = 8160
services = ["api"]
asgi_dir = "src"
asgi_app = "pinger.api:app"

[projects.jobs]
source = "jobs"
env = "production"
port_base = 8170
services = ["web", "celery"]
django_dir = "backend"
celery_app = "jobsite"

[projects.orders]
source = "orders"
env = "production"
port_base = 8180
services = ["api", "celery"]
asgi_dir = "."
asgi_app = "orders.main:app"
celery_app = "orders.worker"

[hosts.box]
hostname = "box.example.org"
projects = ["notes", "pinger", "jobs", "orders"]
"""


# --- any layout: "." and every useful set of services -------------------------------------------

def test_the_projects_root_is_a_layout_and_django_follows_the_services(tmp_path):
    cfg = load(tmp_path, SHAPES_TOML)
    notes, pinger, jobs, orders = (cfg.projects[n] for n in ("notes", "pinger", "jobs", "orders"))
    assert (notes.django_dir, orders.asgi_dir) == (".", ".")
    assert (notes.django, jobs.django, pinger.django, orders.django) == (True, True, False, False)
    assert notes.checks == "errors"   # the default: Django's errors fail a deploy, its warnings are shown


def test_units_are_rendered_for_exactly_the_projects_services_with_clean_paths(tmp_path):
    cfg = load(tmp_path, SHAPES_TOML)
    host = cfg.hosts["box"]
    rendered = {name: units.render_all(cfg, host, cfg.projects[name]) for name in cfg.projects}
    services = {name: sorted(u for u in r if u.endswith(".service")) for name, r in rendered.items()}
    assert services == {"notes": ["notes-web-blue.service", "notes-web-green.service"],
                        "pinger": ["pinger-api-blue.service", "pinger-api-green.service"],
                        "jobs": ["jobs-celery-blue.service", "jobs-celery-green.service", "jobs-web-blue.service",
                                 "jobs-web-green.service"],
                        "orders": ["orders-api-blue.service", "orders-api-green.service", "orders-celery-blue.service",
                                   "orders-celery-green.service"]}
    assert "--chdir /opt/ayna/notes/releases/blue \\\n" in rendered["notes"]["notes-web-blue.service"]
    assert "--app-dir /opt/ayna/pinger/releases/green/src \\\n" in rendered["pinger"]["pinger-api-green.service"]
    assert "--app-dir /opt/ayna/orders/releases/blue \\\n" in rendered["orders"]["orders-api-blue.service"]
    # Celery imports its app from the Django directory, or without Django from the API's
    assert "--workdir /opt/ayna/jobs/releases/blue/backend \\\n" in rendered["jobs"]["jobs-celery-blue.service"]
    assert "--workdir /opt/ayna/orders/releases/green \\\n" in rendered["orders"]["orders-celery-green.service"]
    assert "-A orders.worker worker" in rendered["orders"]["orders-celery-blue.service"]
    for texts in rendered.values():
        for text in texts.values():
            assert "/." not in text.replace("/.env", "").replace("/.venv", "")


def test_the_demo_units_are_unchanged_by_the_path_rules():
    """The standard's layout renders exactly the units committed with the demo project."""
    cfg = config.load(REPO / "hosts.toml")
    project = cfg.projects["uavcrew"]
    for name, text in units.render_all(cfg, None, project).items():
        assert (REPO / "examples/uavcrew/systemd" / name).read_text() == text, name


def test_a_project_without_django_prepares_without_backup_migrate_or_collectstatic(tmp_path):
    cfg = load(tmp_path, SHAPES_TOML)
    lay = Layout.of(cfg, cfg.projects["orders"])
    steps = ["install", "backup", "check", "migrate", "collectstatic", "preflight"]
    orders = cmd.prepare(lay, cfg.projects["orders"], "t", 2, steps, None, "v1", 5).call
    assert orders.steps == ["install", "check", "preflight"] and orders.django_dir is None
    assert orders.asgi_app == "orders.main:app" and orders.uv_config == "/opt/ayna/orders/uv.toml"
    notes = cmd.prepare(Layout.of(cfg, cfg.projects["notes"]), cfg.projects["notes"], "t", 2, steps, None,
                        "v1", 5).call
    assert notes.steps == steps and notes.django_dir == "." and notes.checks == "errors"
    assert backups.before_migrate(cfg.projects["notes"]) and not backups.before_migrate(cfg.projects["orders"])


def test_strict_checks_reach_the_host(tmp_path):
    cfg = load(tmp_path, SHAPES_TOML.replace('django_dir = "."', 'django_dir = "."\nchecks = "strict"'))
    call = cmd.prepare(Layout.of(cfg, cfg.projects["notes"]), cfg.projects["notes"], "t", 1, ["check"], None,
                       None, 5).call
    assert call.checks == "strict"


# --- checks that help: the application's own message ------------------------------------------

def test_an_error_shows_the_applications_frames_and_message_not_the_host_programs():
    app = compile("def settings():\n    raise ImportError(\"No module named 'whitenoise'\")\n", "/srv/app/settings.py",
                  "exec")
    ns: dict = {}
    exec(app, ns)
    runner = compile("def step(fn):\n    fn()\n", django_steps.HERE, "exec")  # as `python -c` names its frames
    exec(runner, ns)
    try:
        ns["step"](ns["settings"])
    except ImportError as exc:
        caught = exc
    text = django_steps.app_message(caught)
    assert "".join(traceback.format_exception(caught)).count(django_steps.HERE) == 1  # it was there
    assert django_steps.HERE not in text
    assert '/srv/app/settings.py", line 2, in settings' in text
    assert text.rstrip().endswith("ImportError: No module named 'whitenoise'")


def test_djangos_own_errors_read_as_manage_py_prints_them():
    class CommandError(Exception):
        pass

    class SystemCheckError(CommandError):
        pass

    report = "SystemCheckError: System check identified some issues:\n\nERRORS:\n?: (fields.E001) bad"
    assert django_steps.app_message(SystemCheckError(report)) == report
    assert django_steps.app_message(CommandError("Unknown app 'x'")) == "CommandError: Unknown app 'x'"


def django_stand_in(tmp_path, debug=False):
    """A Django of a few lines: setup, settings.DEBUG, and call_command's check and collectstatic."""
    (tmp_path / "django" / "core" / "management").mkdir(parents=True)
    (tmp_path / "django" / "conf").mkdir()
    (tmp_path / "django" / "conf" / "__init__.py").write_text(f"class settings:\n    DEBUG = {debug}\n")
    (tmp_path / "django" / "__init__.py").write_text("def setup():\n    pass\n")
    (tmp_path / "django" / "core" / "__init__.py").write_text("")
    (tmp_path / "django" / "core" / "management" / "__init__.py").write_text(textwrap.dedent("""
        class CommandError(Exception):
            pass

        class SystemCheckError(CommandError):
            pass

        def call_command(name, **kw):
            if name == "check":
                report = "System check identified some issues:\\n\\nWARNINGS:\\n?: (security.W004) no HSTS"
                if kw["fail_level"] == "WARNING":
                    raise SystemCheckError("SystemCheckError: " + report)
                kw["stderr"].write(report)
            if name == "collectstatic":
                raise CommandError("Unknown command: 'collectstatic'")
        """))


def run_django_steps(cwd, fail_level="ERROR", **more):
    args = {"steps": ["check", "migrate", "collectstatic"], "django": True, "fail_level": fail_level,
            "asgi_app": None, "asgi_dir": None, **more}
    return subprocess.run([sys.executable, "-c", Path(django_steps.__file__).read_text(), json.dumps(args)],
                          cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "site.settings.dev"})


def test_the_django_steps_report_warnings_as_a_note_and_stop_at_errors(tmp_path):
    """The program itself, run as prepare runs it, against a Django stand-in."""
    django_stand_in(tmp_path)

    def run(fail_level):
        return run_django_steps(tmp_path, fail_level)

    ok = run("ERROR")
    assert ok.returncode == 0, ok.stderr
    notes = [line for line in ok.stdout.splitlines() if line.startswith("@@note ")]
    assert "security.W004" in json.loads(notes[0].split(" ", 2)[2]) and notes[0].startswith("@@note check ")
    assert "@@note collectstatic " in ok.stdout and "@@step collectstatic" in ok.stdout
    strict = run("WARNING")
    assert strict.returncode == 1 and "@@step check" in strict.stdout and "failed" in strict.stdout
    out = "\n".join(line for line in strict.stdout.split("@@step")[0].splitlines() if not line.startswith("@@start "))
    assert out.strip().startswith("SystemCheckError: System check identified some issues")
    assert "Traceback" not in strict.stdout + strict.stderr and "@@step migrate" not in strict.stdout


def test_the_check_refuses_debug_settings_unless_the_project_allows_them(tmp_path):
    django_stand_in(tmp_path, debug=True)
    refused = run_django_steps(tmp_path)
    assert refused.returncode == 1 and "@@step check" in refused.stdout and "failed" in refused.stdout
    said = refused.stdout.split("@@step")[0]
    assert "DEBUG is True in site.settings.dev" in said and "allow_debug = true" in said
    assert "@@step migrate" not in refused.stdout and "Traceback" not in refused.stdout + refused.stderr
    allowed = run_django_steps(tmp_path, allow_debug=True)
    assert allowed.returncode == 0 and "DEBUG is True" not in allowed.stdout, allowed.stdout


def test_a_deploy_tells_the_check_whether_the_project_allows_debug(tmp_path):
    cfg = tmp_path / "hosts.toml"
    cfg.write_text('[projects.p]\nsource = "."\nenv = "production"\nport_base = 8150\nallow_debug = true\n'
                   '[projects.q]\nsource = "."\nenv = "production"\nport_base = 8160\n'
                   '[hosts.h]\nhostname = "h"\nprojects = ["p", "q"]\n')
    loaded = config.load(cfg)
    wants = {name: cmd.prepare(Layout.of(loaded, loaded.projects[name]), loaded.projects[name], "t", 1, ["check"],
                               None, None, 3).call.allow_debug for name in ("p", "q")}
    assert wants == {"p": True, "q": False}


# --- SQLite -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,engine", [("sqlite:////srv/db.sqlite3", "sqlite"), ("postgresql://u@h/d", "postgresql"),
                                        ("postgres://u@/d?host=/run", "postgresql"), ("mysql://u:p@h/d", "mysql"),
                                        ("", None), (None, None)])
def test_the_engine_is_the_scheme_alone(url, engine):
    assert backups.engine(url) == engine
    assert (backups.unsupported(engine) is None) == (engine in ("sqlite", "postgresql"))


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "sqlite://:memory:", "sqlite://host/db", "sqlite:////srv/"])
def test_a_sqlite_url_must_name_an_absolute_file(url):
    with pytest.raises(ValueError, match="absolute file path"):
        backups.sqlite_path(url)


def test_sqlite_backups_share_the_naming_and_the_retention():
    from datetime import datetime, timezone
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    name = backups.name_for("notes", when, "v3", "sqlite")
    assert name == "notes-20260102T030405Z-v3.sqlite3" and backups.parse(name).engine == "sqlite"
    assert backups.check_name(name, "notes").release == "v3"
    names = [backups.name_for("notes", when.replace(minute=m), "v1", e) for m, e in
             ((1, "sqlite"), (2, "postgresql"), (3, "sqlite"), (4, "sqlite"))]
    assert backups.to_prune(names, "notes", 2) == [names[1], names[0]]


@pytest.fixture
def sqlite_project(tmp_path):
    root = tmp_path / "opt" / "notes"
    (root / "shared").mkdir(parents=True)
    (root / "releases").mkdir()
    db = root / "shared" / "db.sqlite3"
    env = root / "shared" / ".env.production"
    env.write_text(f"DATABASE_URL=sqlite:///{db}\n")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE note (text TEXT)")
    con.execute("INSERT INTO note VALUES ('first')")
    con.commit()
    return root, env, db, con


def test_a_sqlite_backup_is_a_private_consistent_copy_while_the_app_writes(sqlite_project):
    root, env, db, con = sqlite_project
    con.execute("INSERT INTO note VALUES ('uncommitted')")   # a writer in the middle of a transaction
    taken = dumps.take(str(root), str(env), "notes", "v1", 10)
    con.rollback()
    path = Path(taken["path"])
    assert path.name.endswith("-v1.sqlite3") and oct(path.stat().st_mode & 0o777) == "0o600"
    copy = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert copy.execute("SELECT text FROM note").fetchall() == [("first",)]
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)   # one file, no -wal beside it
    copy.close()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert [b["name"] for b in dumps.listing(str(root), "notes")] == [path.name]


def test_a_sqlite_restore_replaces_the_data_and_refuses_a_postgresql_dump(sqlite_project):
    root, env, db, con = sqlite_project
    taken = dumps.take(str(root), str(env), "notes", "v1", 10)
    con.execute("INSERT INTO note VALUES ('after the backup')")
    con.commit()
    assert dumps.restore(str(env), taken["path"]) == []
    assert con.execute("SELECT text FROM note").fetchall() == [("first",)]
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)   # the live database keeps its mode
    pg = Path(taken["path"]).with_name("notes-20260102T030405Z-v1.dump")
    pg.write_bytes(b"PGDMP")
    errors = dumps.restore(str(env), str(pg))
    assert errors and "is a postgresql backup" in errors[0] and "nothing was changed" in errors[0]


def test_a_missing_sqlite_file_or_an_unsupported_engine_is_refused_with_the_setting(sqlite_project, tmp_path):
    root, env, db, con = sqlite_project
    con.close()
    db.unlink()
    with pytest.raises(dumps.Refused, match="does not exist yet"):
        dumps.take(str(root), str(env), "notes", "v1", 10)
    env.write_text("DATABASE_URL=mysql://u:p@localhost/notes\n")
    with pytest.raises(dumps.Refused, match="backup_before_migrate = false") as err:
        dumps.take(str(root), str(env), "notes", "v1", 10)
    assert "mysql" in err.value.detail and "p@" not in err.value.detail
    assert dumps.engine(str(env)) == "mysql"


class _T:
    """What planchecks reads of a runner HostRun."""

    def __init__(self, cfg, project, plan):
        self.name, self.host, self.project, self.plan = "box", cfg.hosts["box"], project, plan
        self.layout = Layout.of(cfg, project)


def test_the_plan_refuses_a_backup_it_cannot_take_before_anything_is_built(tmp_path):
    cfg = load(tmp_path, SHAPES_TOML)
    notes = cfg.projects["notes"]
    with pytest.raises(UsageError) as err:
        planchecks.refuse(_T(cfg, notes, {"database": "mysql", "uv_config": None}), backup_due=True)
    assert "mysql" in err.value.message and "backup_before_migrate = false" in err.value.hint
    assert err.value.step == "plan" and "[projects.notes]" in err.value.hint
    with pytest.raises(UsageError, match="DATABASE_URL is not set"):
        planchecks.refuse(_T(cfg, notes, {"database": None, "uv_config": None}), backup_due=True)
    for fine in ({"database": "sqlite"}, {"database": "postgresql"}):
        planchecks.refuse(_T(cfg, notes, {**fine, "uv_config": None}), backup_due=True)
    planchecks.refuse(_T(cfg, notes, {"database": "mysql", "uv_config": None}), backup_due=False)


# --- package index settings ---------------------------------------------------------------------

INDEX_TOML = SHAPES_TOML.replace('[hosts.box]\nhostname = "box.example.org"', '''[defaults]
index_url = "https://pypi.internal.example/simple"

[hosts.box]
hostname = "box.example.org"
system_certs = true
extra_index_urls = ["https://extra.example/simple"]''').replace(
    'django_dir = "."', 'django_dir = "."\nindex_url = "https://notes.example/simple"\nextra_index_urls = []')


def test_index_settings_come_from_the_project_then_the_host_then_the_defaults(tmp_path):
    cfg = load(tmp_path, INDEX_TOML)
    host = cfg.hosts["box"]
    assert config.package_index(host, cfg.projects["notes"]) == config.PackageIndex(
        "https://notes.example/simple", (), True)   # the project's own, even an empty extra list
    assert config.package_index(host, cfg.projects["pinger"]) == config.PackageIndex(
        "https://pypi.internal.example/simple", ("https://extra.example/simple",), True)
    assert config.package_index(cfg.hosts["box"], cfg.projects["pinger"]) != config.PackageIndex()


def test_setup_writes_uvs_own_configuration_and_pips_options(tmp_path):
    index = config.PackageIndex("https://pypi.internal.example/simple", ("https://extra.example/simple",), True)
    text = packageindex.uv_toml(index)
    import tomllib
    data = tomllib.loads(text)
    assert data["system-certs"] is True
    assert data["index"] == [{"url": "https://extra.example/simple"},
                             {"url": "https://pypi.internal.example/simple", "default": True}]
    assert packageindex.pip_args(index) == ["--index-url", "https://pypi.internal.example/simple",
                                            "--cert", "/etc/ssl/certs/ca-certificates.crt"]
    assert packageindex.uv_toml(config.PackageIndex()) is None and packageindex.pip_args(config.PackageIndex()) == []
    assert cmd.setup_uv_config("/opt/ayna/notes/uv.toml", text).call == calls.UvConfig("/opt/ayna/notes/uv.toml", text)
    assert cmd.setup_uv_config("/opt/ayna/notes/uv.toml", None).call.text is None
    assert "pip install --quiet --disable-pip-version-check --no-deps" in setup_cmd.install_uv(
        packageindex.pip_args(index)).script


def test_setup_installs_one_uv_release_by_hash_from_one_index():
    """uv runs as root's install: one version, only its wheels, only hosts.toml's index (or the host's)."""
    index = config.PackageIndex("https://pypi.internal.example/simple", ("https://extra.example/simple",), False)
    script = setup_cmd.install_uv(packageindex.pip_args(index)).script
    assert f"uv=={uvrelease.VERSION} \\\n    --hash=sha256:" in script
    assert "--only-binary :all: --require-hashes" in script and "--no-deps" in script
    assert "extra.example" not in script and "--extra-index-url" not in script
    assert "PIP_CONFIG_FILE=/dev/null " in script      # pip.conf's extra indexes set aside too
    own = setup_cmd.install_uv(packageindex.pip_args(config.PackageIndex())).script
    assert "PIP_CONFIG_FILE" not in own and "--index-url" not in own   # the host's configured index
    assert len(set(uvrelease.WHEEL_SHA256)) == len(uvrelease.WHEEL_SHA256) >= 2
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in uvrelease.WHEEL_SHA256)
    # an older uv that setup installed is replaced by the pinned one; another's uv is left alone
    assert f"!= {uvrelease.VERSION}" in script and "readlink /usr/local/bin/uv" in script


def test_the_sandbox_wheelhouse_pins_the_same_uv():
    base = (Path(__file__).resolve().parents[2] / "ayna_fab" / "sandbox" / "wheelhouse-base.txt").read_text()
    assert f"uv=={uvrelease.VERSION}" in base.split()


def test_a_deploy_refuses_index_settings_that_setup_has_not_written(tmp_path):
    cfg = load(tmp_path, INDEX_TOML)
    notes = cfg.projects["notes"]
    want = packageindex.digest(packageindex.uv_toml(config.package_index(cfg.hosts["box"], notes)))
    planchecks.refuse(_T(cfg, notes, {"database": "sqlite", "uv_config": want}), backup_due=True)
    for stale in (None, "0" * 64):
        with pytest.raises(UsageError) as err:
            planchecks.refuse(_T(cfg, notes, {"database": "sqlite", "uv_config": stale}), backup_due=True)
        assert "not what setup wrote" in err.value.message and err.value.hint == "fab -H box setup --project notes"
    plain = load(tmp_path, SHAPES_TOML)
    with pytest.raises(UsageError, match="sets no package index settings"):
        planchecks.refuse(_T(plain, plain.projects["notes"], {"database": "sqlite", "uv_config": want}),
                          backup_due=True)


def test_the_host_program_names_the_uv_config_the_laptop_writes():
    from ayna_fab.hostprog import plan
    assert Layout("/opt/ayna", "notes", "production").uv_config == f"/opt/ayna/notes/{plan.UV_CONFIG}"


# --- bastions -----------------------------------------------------------------------------------

GATEWAY_TOML = SHAPES_TOML + """
[hosts.jump]
hostname = "bastion.example.org"
port = 2222
user = "hop"
identity_file = "/keys/hop"
known_hosts = "/keys/bastion_known_hosts"
gateway = "edge"

[hosts.edge]
hostname = "edge.example.org"
user = "edgeuser"
"""


def test_a_gateway_is_a_host_entry_reached_first_as_its_own_user(tmp_path):
    cfg = load(tmp_path, GATEWAY_TOML.replace('hostname = "box.example.org"',
                                              'hostname = "10.0.0.5"\ngateway = "jump"'))
    ep = targets.endpoint(cfg, cfg.hosts["box"], admin=True)
    assert (ep.hostname, ep.user) == ("10.0.0.5", "root")
    hop = ep.gateway
    assert (hop.name, hop.hostname, hop.port, hop.user) == ("jump", "bastion.example.org", 2222, "hop")
    assert hop.identity_file == Path("/keys/hop") and hop.known_hosts == Path("/keys/bastion_known_hosts")
    assert (hop.gateway.name, hop.gateway.user, hop.gateway.gateway) == ("edge", "edgeuser", None)


def test_every_hop_is_strict_forwards_no_agent_and_ignores_ssh_config(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host box.example.org\n  HostName evil.example.org\n  Port 2022\n"
                                          "  User mallory\n  ProxyJump mallory@jump.evil\n  ForwardAgent yes\n"
                                          "  IdentityFile ~/.ssh/other\n")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "kh").write_text("")
    hop = ssh.Endpoint(name="jump", hostname="bastion.example.org", user="hop", known_hosts=tmp_path / "kh")
    ep = ssh.Endpoint(name="box", hostname="box.example.org", user="adonis", known_hosts=tmp_path / "kh", gateway=hop)
    plain = ssh.connection(ep)
    assert (plain.host, plain.port, plain.user, plain.gateway, plain.forward_agent) == (
        "box.example.org", 22, "adonis", False, False)
    assert "key_filename" not in plain.connect_kwargs
    gw = ssh.connection(hop)
    through = ssh.connection(ep, gw)
    assert through.gateway is gw and gw.forward_agent is False
    import paramiko
    for c in (plain, gw, through):
        assert isinstance(c.client._policy, paramiko.RejectPolicy)


def test_an_unknown_bastion_is_refused_naming_the_bastion_and_its_trust(tmp_path):
    """The bastion's own key is checked before anything is sent through it."""
    import socket
    import threading
    import paramiko
    server_key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if server_key is None:
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives import serialization
        raw = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        import io
        server_key = paramiko.Ed25519Key.from_private_key(io.StringIO(raw.decode()))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        t = paramiko.Transport(conn)
        t.add_server_key(server_key)
        try:
            t.start_server(server=paramiko.ServerInterface())
            t.accept(2)
        except Exception:
            pass
        finally:
            t.close()

    threading.Thread(target=serve, daemon=True).start()
    (tmp_path / "kh").write_text("")
    hop = ssh.Endpoint(name="jump", hostname="127.0.0.1", port=port, user="hop", known_hosts=tmp_path / "kh",
                       timeout=5)
    ep = ssh.Endpoint(name="box", hostname="10.9.9.9", user="adonis", known_hosts=tmp_path / "kh", gateway=hop,
                      timeout=5)
    with pytest.raises(UsageError) as err:
        ssh.connect(ep)
    listener.close()
    assert err.value.host == "box" and "through its gateway jump" in err.value.message
    assert "refusing an unknown host key" in err.value.message and err.value.hint == "check and record its key with: fab -H jump trust"


# --- fab init -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    return {name: corpus.make(name, d)[0] for name in corpus.SHAPES}


def test_init_finds_each_shapes_layout_apps_and_database(shapes):
    found = {name: projectinit.inspect(path) for name, path in shapes.items()}
    got = {n: (f.services, f.django_dir, f.wsgi_app, f.asgi_dir, f.asgi_app, f.celery_app, f.database)
           for n, f in found.items()}
    assert got == {
        "notes": (["web"], ".", "notes_site.wsgi:application", None, None, None, "sqlite"),
        "ledger": (["web", "api"], ".", "ledger.wsgi:application", ".", "api.main:app", None, "postgresql"),
        "pinger": (["api"], None, None, "src", "pinger.api:app", None, None),
        "jobs": (["web", "celery"], "backend", "jobsite.wsgi:application", None, None, "jobsite", "sqlite"),
        "orders": (["api", "celery"], None, None, ".", "orders.main:app", "orders.worker", None),
    }
    assert found["notes"].settings_module == "notes_site.settings" and found["notes"].health_web is None
    assert (found["ledger"].health_web, found["ledger"].health_api) == ("/healthz/", "/health")
    assert found["jobs"].beat is False and found["jobs"].health_web == "/health/"
    assert {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL"} <= set(found["notes"].env_keys)
    assert "REDIS_URL" in found["orders"].env_keys
    assert all(not f.uv_lock for f in found.values())


def test_init_without_uv_lock_gives_the_exact_command(shapes):
    f = projectinit.inspect(shapes["pinger"])
    gap = next(g for g in projectinit.deploy_gaps(f) if "uv.lock" in g.what)
    assert gap.blocking and gap.fix == (f"cd {shapes['pinger'].resolve()} && uv lock && git add uv.lock "
                                        "&& git commit -m 'Lock dependencies'")


def test_init_names_what_would_break_a_deploy(tmp_path):
    project = tmp_path / "site"
    corpus.notes(project)
    settings = project / "notes_site" / "settings.py"
    text = settings.read_text()
    text = text.replace('STATIC_ROOT = BASE_DIR / "staticfiles"\n', "")
    text = text.replace('ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")',
                        'ALLOWED_HOSTS = ["notes.example.org"]')
    text = text[:text.index("\n\ndef database_from_url")] + (
        '\nDATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}\n')
    settings.write_text(text)
    (project / "pyproject.toml").write_text(corpus.pyproject("site", ["django"]))
    gaps = {g.what.split(",")[0].split(":")[0]: g for g in projectinit.deploy_gaps(projectinit.inspect(project))}
    assert "gunicorn is not a dependency" in " ".join(gaps) and gaps["STATIC_ROOT is not set"].blocking
    assert any("DATABASES themselves" in w for w in gaps)
    assert any("leaves out 127.0.0.1" in w for w in gaps)


def test_init_writes_an_entry_that_loads_and_an_env_that_setup_accepts(shapes, tmp_path):
    inventory = tmp_path / "hosts.toml"
    inventory.write_text('[hosts.box]\nhostname = "127.0.0.1"\nport = 2201\nprojects = []  # none yet\n')
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inventory)}
    fab = Path(sys.executable).with_name("fab")
    for name in ("notes", "ledger", "orders"):
        r = subprocess.run([str(fab), "init", str(shapes[name]), "--write", "--host", "box"], cwd=REPO, env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    cfg = config.load(inventory)
    assert cfg.hosts["box"].projects == ("notes", "ledger", "orders")
    bases = [cfg.projects[n].port_base for n in ("notes", "ledger", "orders")]
    assert bases == [8150, 8160, 8170]           # free ranges of the registry, one after another
    ledger = cfg.projects["ledger"]
    assert (ledger.services, ledger.django_dir, ledger.asgi_dir, ledger.create_database) == (
        ("web", "api"), ".", ".", True)
    assert dict(ledger.health) == {"web": "/healthz/", "api": "/health"}
    orders = cfg.projects["orders"]
    assert orders.django is False and orders.celery_app == "orders.worker"
    for name in ("notes", "ledger", "orders"):
        path = tmp_path / f"{name}.env"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        values = config_env(path)
        project = cfg.projects[name]
        from ayna_fab.provision import envcheck as envfile
        assert envfile.problems(values, name, project.port("web"), project.port("api")) == []
        assert len(values["SECRET_KEY"]) >= 50 and "CHANGE-ME" not in path.read_text()
    assert config_env(tmp_path / "notes.env")["DATABASE_URL"] == "sqlite:////opt/ayna/notes/shared/db.sqlite3"
    assert config_env(tmp_path / "ledger.env")["DATABASE_URL"].startswith("postgresql://ledger:")
    # secrets are never printed, and a second init of the same project is refused without a change
    before = inventory.read_text()
    r = subprocess.run([str(fab), "init", str(shapes["notes"]), "--write"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "already has a project 'notes'" in r.stderr and inventory.read_text() == before


def config_env(path: Path) -> dict:
    from ayna_fab.provision import envcheck as envfile
    return envfile.parse(path.read_text())


def test_init_prints_without_writing_and_shows_no_secret(shapes, tmp_path):
    inventory = tmp_path / "hosts.toml"
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inventory)}
    r = subprocess.run([str(Path(sys.executable).with_name("fab")), "init", str(shapes["jobs"])], cwd=REPO,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not inventory.exists() and not (tmp_path / "jobs.env").exists()
    assert '[projects.jobs]' in r.stdout and 'services = ["web", "celery"]' in r.stdout
    assert "SECRET_KEY=CHANGE-ME" in r.stdout and "uv.lock is missing" in r.stdout
    assert "Against the standard" in r.stdout and "Makefile is missing" in r.stdout


@pytest.mark.parametrize("existing,expected", [
    ('[hosts.box]\nhostname = "h"\nprojects = ["a"]  # keep\n\n[groups]\nall = ["box"]\n',
     'projects = ["a", "new"]  # keep'),
    ('[hosts.box]\nhostname = "h"\n\n[hosts.other]\nhostname = "o"\nprojects = ["a"]\n', 'projects = ["new"]'),
])
def test_init_adds_the_project_to_its_host(existing, expected):
    text = projectinit.inventory_text(existing, "[projects.new]\nsource = \".\"\n", "new", "box", None)
    box = text.split("[hosts.box]")[1].split("\n[")[0]
    assert expected in box and text.count("[projects.new]") == 1


def test_init_refuses_edits_it_cannot_make_safely():
    with pytest.raises(ValueError, match="one-line array"):
        projectinit.inventory_text('[hosts.box]\nhostname = "h"\nprojects = [\n  "a",\n]\n', "[projects.n]\n", "n",
                                   "box", None)
    with pytest.raises(ValueError, match="give --hostname"):
        projectinit.inventory_text('[hosts.box]\nhostname = "h"\n', "[projects.n]\n", "n", "new", None)
    with pytest.raises(ValueError, match="already has"):
        projectinit.inventory_text("[projects.n]\nsource = '.'\n", "[projects.n]\n", "n", None, None)


def test_init_turns_a_requirements_file_into_a_lock_with_one_command(tmp_path):
    corpus.notes(tmp_path)
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "requirements.txt").write_text("Django>=5.2\ngunicorn\n")
    f = projectinit.inspect(tmp_path)
    assert {"django", "gunicorn"} <= f.dependencies and not f.pyproject
    gap = next(g for g in projectinit.deploy_gaps(f) if "uv.lock" in g.what)
    assert gap.fix.startswith(f"cd {tmp_path.resolve()} && uv init --bare --no-workspace && uv add -r requirements.txt")
    assert not any("gunicorn is not a dependency" in g.what for g in projectinit.deploy_gaps(f))


def test_init_starts_an_inventory_with_its_first_host(tmp_path):
    project = corpus.notes(tmp_path / "notes")
    inventory = tmp_path / "hosts.toml"
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inventory)}
    fab = [str(Path(sys.executable).with_name("fab")), "init", str(project), "--write"]
    r = subprocess.run(fab, cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "pass --host NAME --hostname ADDRESS" in r.stderr and not inventory.exists()
    r = subprocess.run(fab + ["--host", "web1", "--hostname", "web1.example.org"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = config.load(inventory)
    assert cfg.hosts["web1"].hostname == "web1.example.org" and cfg.hosts["web1"].projects == ("notes",)
    assert cfg.projects["notes"].source == project.resolve()
