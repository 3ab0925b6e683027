"""Day-two operations without a host: command building, quoting, backup names and pruning,
and the host program itself, run locally against a fake project and fake PostgreSQL tools."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fabric import Config as FabricConfig
from fabric.main import Fab
from invoke import Collection

from ayna_fab.cli import executor
from ayna_fab.cli.output import Lines
from ayna_fab.cli.tasks import daytwo as tasks
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.commands import systemd as cmd
from ayna_fab.config import model as config
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import backups as rules
from ayna_fab.hostprog import envfile
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Result

REPO = Path(__file__).resolve().parents[2]
PROJECT = config.Project(name="uavcrew", source=None, port_base=8130, services=("web",), env="production")
HOSTILE = ["it's", '"quoted"', "$(touch /tmp/ayna-pwned)", "`id`", "a b\tc", "semi;colon", "new\nline",
           "--settings=evil", "ü €", "back\\slash", "*", "", "-"]


@pytest.fixture
def cfg():
    return config.load(REPO / "hosts.toml")


@pytest.fixture
def project(cfg):
    return cfg.projects["uavcrew"]


# --- backup names and which to keep ---------------------------------------------------------------

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_a_backup_name_holds_project_utc_time_and_release():
    name = rules.name_for("uavcrew", WHEN, "v7")
    assert name == "uavcrew-20260102T030405Z-v7.dump"
    b = rules.parse(name)
    assert (b.project, b.taken_at, b.release) == ("uavcrew", WHEN, "v7")
    assert rules.name_for("ayna-comply", WHEN, None) == "ayna-comply-20260102T030405Z-none.dump"
    assert rules.parse("ayna-comply-20260102T030405Z-none.dump").project == "ayna-comply"


@pytest.mark.parametrize("name", ["../uavcrew-20260102T030405Z-v7.dump", "/etc/passwd", "uavcrew.dump",
                                  "uavcrew-20260102T030405Z-v7.dump.partial", ".uavcrew-20260102T030405Z-v7.dump",
                                  "uavcrew-20261302T030405Z-v7.dump", "uavcrew-20260102T030405Z-v0.dump",
                                  "uavcrew-20260102T030405Z-v7.dump\n", "uavcrew-20260102T030405Z-$(id).dump", ""])
def test_anything_else_is_not_a_backup(name):
    assert rules.parse(name) is None
    with pytest.raises(ValueError, match="is not a backup name"):
        rules.check_name(name, "uavcrew")


def test_a_backup_of_another_project_is_refused():
    with pytest.raises(ValueError, match="is a backup of skybookus, not of uavcrew"):
        rules.check_name("skybookus-20260102T030405Z-v1.dump", "uavcrew")


@pytest.mark.parametrize("release", ["7", "v07", "v1;x", "current", "../v1"])
def test_bad_release_names_are_refused(release):
    with pytest.raises(ValueError, match="is not a release name"):
        rules.name_for("uavcrew", WHEN, release)


def names(*stamps: str, project: str = "uavcrew") -> list[str]:
    return [f"{project}-2026010{s}T000000Z-v1.dump" for s in stamps]


def test_pruning_keeps_the_newest_n_by_the_time_in_the_name():
    found = names("3", "1", "5", "2", "4") + ["notes.txt", ".uavcrew-20260109T000000Z-v1.dump.partial"]
    found += names("9", project="skybookus")
    assert rules.to_prune(found, "uavcrew", 3) == names("2", "1")
    assert rules.to_prune(found, "uavcrew", 10) == []
    assert [b.name for b in rules.newest_first(found, "uavcrew")] == names("5", "4", "3", "2", "1")


def test_protected_backups_are_never_pruned_and_take_no_place():
    found = names("1", "2", "3", "4")
    assert rules.to_prune(found, "uavcrew", 2, protect=names("1")) == names("2")
    assert rules.to_prune(found, "uavcrew", 1, protect=names("4")) == names("2", "1")


@pytest.mark.parametrize("keep", [0, -1, True, "3", 2.5, None])
def test_keep_must_be_a_whole_number_of_at_least_one(keep):
    with pytest.raises(ValueError, match="keep_backups"):
        rules.check_keep(keep)


def test_settings_default_until_hosts_toml_has_them(project, cfg):
    assert rules.keep_for(project, cfg.defaults) == 10
    assert rules.before_migrate(project) is True
    assert rules.keep_for(dataclasses.make_dataclass("P", [("keep_backups", int)])(3)) == 3
    assert rules.before_migrate(dataclasses.make_dataclass("P", [("backup_before_migrate", bool)])(False)) is False
    assert rules.restore_hint("prod", "x.dump") == "fab -H prod restore --backup x.dump"


# --- the password stays out of argv --------------------------------------------------------------

def test_the_database_url_is_split_into_a_uri_without_password_and_the_password():
    assert rules.connection("postgresql://uavcrew:s3cr%3At@localhost:5432/uavcrew") == (
        "postgresql://uavcrew@localhost:5432/uavcrew", "s3cr:t")
    assert rules.connection("postgres://u@db.internal/app?sslmode=require&password=pw") == (
        "postgresql://u@db.internal/app?sslmode=require", "pw")
    assert rules.connection("postgresql+psycopg://u:p@[::1]:6432/app") == ("postgresql://u@[::1]:6432/app", "p")
    assert rules.connection("postgresql:///app?host=/var/run/postgresql") == (
        "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql", "")
    with pytest.raises(ValueError, match="not a postgresql"):
        rules.connection("sqlite:///db.sqlite3")


def test_pgpass_escapes_colons_and_backslashes():
    assert rules.pgpass_line("a:b\\c") == "*:*:*:*:a\\:b\\\\c\n"


def test_no_argv_carries_a_password():
    uri, password = rules.connection("postgresql://u:hunter2@localhost/app")
    for argv in (rules.dump_argv(uri, "/x/.b.partial"), rules.restore_script_argv("/x/b.dump"), rules.psql_argv(uri)):
        assert not any("hunter2" in a for a in argv)
    assert "--single-transaction" in rules.psql_argv(uri) and "ON_ERROR_STOP=1" in rules.psql_argv(uri)


# --- command building -----------------------------------------------------------------------------

def test_unit_control_is_one_sudo_systemctl_per_unit_as_sudoers_allows():
    c = cmd.systemctl("restart", ["uavcrew-web.service", "uavcrew-api.service"])
    assert "sudo -n /usr/bin/systemctl restart uavcrew-web.service &" in c.script
    assert "sudo -n /usr/bin/systemctl restart uavcrew-api.service &" in c.script
    assert c.changes and c.step == "restart"
    with pytest.raises(ValueError):
        cmd.systemctl("disable", ["uavcrew-web.service"])
    assert not hostcmd.services(["uavcrew-web.service"]).changes


def test_services_pick_units_by_service_name(project):
    assert tasks._units(project, None) == [f"uavcrew-{s}.service" for s in (
        "web-blue", "web-green", "api-blue", "api-green", "celery-blue", "celery-green", "beat")]
    assert tasks._units(project, "celery, beat") == ["uavcrew-celery-blue.service", "uavcrew-celery-green.service",
                                                     "uavcrew-beat.service"]
    with pytest.raises(UsageError, match="has no service 'db'; its services: web, api, celery, beat"):
        tasks._units(project, "web,db")


def test_logs_go_through_the_projects_journal_reader():
    """The deploy user reads its units' journal through its sudo rule, never the whole journal."""
    reader = "sudo -n /usr/local/lib/ayna-fab/journal-uavcrew"
    c = cmd.logs("uavcrew", ["uavcrew-web.service", "uavcrew-api.service"], lines=50, since=None, follow=False)
    assert c.script == f"{reader} --unit=uavcrew-web.service --unit=uavcrew-api.service --lines=50"
    f = cmd.logs("uavcrew", ["uavcrew-web.service"], lines=None, since="2 hours ago", follow=True)
    assert f.script.startswith(f"{reader} ") and f.script.endswith("'--since=2 hours ago' --follow")
    assert cmd.logs("uavcrew", ["u.service"], lines=None, since="-1h", follow=False).script.endswith(" --since=-1h")
    assert cmd.logs("uavcrew", ["u.service"], lines=5, since="today", follow=False).script == (
        f"set -o pipefail; {reader} --unit=u.service --since=today | tail -n 5")


@pytest.mark.parametrize("since", ["$(id)", "`id`", "1h; rm -rf /", "a'b", "x\ny", "a" * 41])
def test_hostile_since_values_are_refused(since):
    with pytest.raises(ValueError, match="is not a time journalctl knows"):
        cmd.logs("uavcrew", ["u.service"], lines=None, since=since, follow=False)


SHOW = {"now": 1125000000, "units": [
    {"Id": "uavcrew-web.service", "ActiveState": "active", "SubState": "running", "MainPID": "572",
     "MemoryCurrent": "[not set]", "ActiveEnterTimestamp": "Fri 2026-11-27 14:20:00 UTC",
     "ActiveEnterTimestampMonotonic": "1000000000", "ControlGroup": "/system.slice/uavcrew-web.service",
     "Pss": 100 * 2**20},
    {"ActiveState": "active", "MainPID": "579", "Id": "uavcrew-api.service", "SubState": "running",
     "MemoryCurrent": "52428800", "ActiveEnterTimestamp": "Fri 2026-11-27 14:20:01 UTC",
     "ActiveEnterTimestampMonotonic": "1001000000", "Pss": 1},
    {"Id": "uavcrew-beat.service", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0",
     "MemoryCurrent": "18446744073709551615", "ActiveEnterTimestamp": "",
     "ActiveEnterTimestampMonotonic": "0", "Pss": None}]}


def test_unit_facts_state_pid_memory_and_uptime():
    web, api, beat = cmd.unit_facts(SHOW)
    assert web == {"unit": "uavcrew-web.service", "active": "active", "sub": "running", "pid": 572,
                   "memory": 100 * 2**20, "uptime": 125.0, "since": "Fri 2026-11-27 14:20:00 UTC"}
    assert (api["pid"], api["memory"], api["uptime"]) == (579, 50 * 2**20, 124.0)
    assert (beat["active"], beat["pid"], beat["memory"], beat["uptime"], beat["since"]) == (
        "inactive", None, None, None, None)
    assert [cmd.human_duration(s) for s in (None, 5, 125, 7322, 93784)] == ["-", "5s", "2m 5s", "2h 2m", "1d 2h"]
    assert cmd.human_memory(100 * 2**20) == "100.0 MiB" and cmd.human_memory(None) == "-"


def test_migrate_and_restore_build_host_program_calls(project, cfg):
    lay = Layout.of(cfg, project)
    m = hostcmd.migrate(lay, project, ["crew", "0001"], backup=True, keep=3, lock={"token": "t"})
    assert m.script.startswith("python3 -c ") and " migrate " in m.script
    assert m.call.argv == ["crew", "0001"] and '"argv": ["crew", "0001"]' in m.script
    r = hostcmd.restore(lay, project, "uavcrew-20260102T030405Z-v7.dump", keep=3, lock={"token": "t"})
    assert r.step == "restore" and "uavcrew-20260102T030405Z-v7.dump" in r.script
    assert r.call.units == [f"uavcrew-{s}.service" for s in (
        "web-blue", "web-green", "api-blue", "api-green", "celery-blue", "celery-green", "beat")]
    with pytest.raises(ValueError):
        hostcmd.restore(lay, project, "../x.dump", keep=3, lock={})
    with pytest.raises(ValueError):
        hostcmd.backup(lay, project, "current", 3)
    assert not hostcmd.backups(lay, project).changes


def answer(stdout: str, code: int = 0) -> dict:
    return hostcall.parse(Result(code, stdout, ""), host="h", step="s")


def test_results_are_read_from_the_last_result_line():
    assert answer('noise\n@@result {"a": 1}\n') == {"a": 1}
    assert answer('Operations...\n@@step backup 0.5 ok\n  No migrations.\n@@result {"code": 0}\n') == {"code": 0}
    assert hostcall.steps("x\n@@step backup 0.500 ok {\"backup\": \"b\"}\n@@step check 1.000 failed\n") == [
        ("backup", 0.5, True, {"backup": "b"}), ("check", 1.0, False, None)]
    with pytest.raises(Exception, match="gave no answer"):
        answer("Traceback ...\n", 1)


# --- words after -- -------------------------------------------------------------------------------

def test_words_after_dashes_keep_their_boundaries():
    argv = ["fab", "-H", "h", "manage", "--", "shell", "-c", "print('a b')"]
    assert executor.remainder_argv(argv, "shell -c print('a b')") == ["shell", "-c", "print('a b')"]
    assert executor.remainder_argv(["fab"], "showmigrations crew") == ["showmigrations", "crew"]
    assert tasks._words("check --deploy", "manage") == ["check", "--deploy"]
    assert tasks._words(["a b"], "manage") == ["a b"]


def run_fab(argv, monkeypatch, exit=False):
    """Run a Fab program with ayna-fab's executor and two recording tasks; no connection is made."""
    seen = []

    @executor.takes_remainder
    @tasks.task
    def takes(c, args=None):
        seen.append(("takes", c.host, args))

    @tasks.task
    def plain(c):
        seen.append(("plain", c.host))

    monkeypatch.setattr(sys, "argv", argv)
    program = Fab(namespace=Collection(takes, plain), executor_class=executor.Executor, config_class=FabricConfig)
    program.run(argv, exit=exit)
    return seen


def test_the_executor_hands_the_words_to_the_task_and_runs_nothing_raw(monkeypatch):
    seen = run_fab(["fab", "-H", "h1,h2", "plain", "takes", "--", "shell", "-c", "print('a b')"], monkeypatch)
    # one call per task with the whole target, and no third: Fabric's anonymous
    # "run the words on each host" is gone
    assert seen == [("plain", "h1,h2"), ("takes", "h1,h2", ["shell", "-c", "print('a b')"])]
    assert run_fab(["fab", "-H", "h1", "takes"], monkeypatch) == [("takes", "h1", None)]


def test_words_after_dashes_for_a_task_that_takes_none_are_refused(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_fab(["fab", "-H", "h1", "plain", "--", "id"], monkeypatch, exit=True)
    assert exit_.value.code == 2
    assert "ayna-fab runs no raw commands" in capsys.readouterr().err


# --- output lines ---------------------------------------------------------------------------------

def test_lines_are_prefixed_whole_and_marks_are_kept_from_people():
    got, marks = [], []
    sink = Lines(got.append, "[h1] ", on_mark=marks.append)
    sink.write("one\r\ntw")
    sink.flush()                      # invoke flushes after every chunk: not a line yet
    sink.write("o\n@@step backup 1.0 ok\nthr")
    assert got == ["[h1] one", "[h1] two"] and marks == ["@@step backup 1.0 ok"]
    sink.finish()
    assert got[-1] == "[h1] thr"
    plain = []
    Lines(plain.append).write("@@ -1,2 +1,2 @@\n")    # manage output is never filtered
    assert plain == ["@@ -1,2 +1,2 @@"]


def test_a_shared_database_is_handled_once_on_migrate_host(cfg, project):
    shared = dataclasses.replace(project, migrate_host="sandbox2")
    h1, h2 = cfg.hosts["sandbox1"], cfg.hosts["sandbox2"]
    said = []
    assert targets.once_per_database([(h1, shared), (h2, shared)], said.append) == [(h2, shared)]
    assert said == ["[sandbox1] uavcrew shares its database with sandbox2 (migrate_host): done there once"]
    assert targets.once_per_database([(h1, shared)], said.append) == [(h1, shared)]
    assert targets.once_per_database([(h1, project), (h2, project)], said.append) == [(h1, project), (h2, project)]


# --- the host program, run here against a fake project -------------------------------------------

ENV_CASES = {
    "A=1": {"A": "1"},
    "  B = spaced value  ": {"B": "spaced value"},
    "C='single $HOME \\n'": {"C": "single $HOME \\n"},
    'D="double \\"q\\" \\$x \\\\ \\n"': {"D": 'double "q" $x \\ \\n'},
    "E=a\\\nb": {"E": "ab"},
    "# F=comment\n; G=also": {},
    "H=": {"H": ""},
    "I=x=y": {"I": "x=y"},
    "bad key=1\nJ=2": {"J": "2"},
    "K=$(touch /tmp/ayna-pwned)": {"K": "$(touch /tmp/ayna-pwned)"},
    'L="multi\nline"': {"L": "multi\nline"},
    "M='a'\"b\"c": {"M": "abc"},
}


@pytest.mark.parametrize("text", ENV_CASES)
def test_env_files_are_read_as_systemd_reads_them(tmp_path, text):
    path = tmp_path / "env"
    path.write_text(text + "\n")
    assert envfile.read(str(path)) == ENV_CASES[text]


def fake_project(tmp_path: Path, env: str = "") -> Path:
    """releases/v1 with a venv python (this interpreter) and a manage.py that reports what it got."""
    root = tmp_path / "uavcrew"
    web = root / "releases" / "v1" / "src" / "web"
    web.mkdir(parents=True)
    (root / "releases" / "v1" / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / "releases" / "v1" / ".venv" / "bin" / "python")
    os.symlink("v1", root / "releases" / "current")
    (root / "shared" / "backups").mkdir(parents=True)
    (root / "shared" / ".env.production").write_text(env or "DATABASE_URL=postgresql://u:hunter2@localhost/app\n"
                                                     "SPACED=a b c\nDOLLAR='$(id)'\n")
    (web / "manage.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'SPACED': os.environ.get('SPACED'),"
        " 'DOLLAR': os.environ.get('DOLLAR'), 'path0': os.environ['PATH'].split(':')[0]}))\n"
        "sys.exit(int(os.environ.get('EXIT', '0')))\n")
    return root


def layout(tmp_path: Path) -> Layout:
    return Layout(str(tmp_path), "uavcrew", "production")


def run_script(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_manage_gets_every_argument_exactly_and_the_units_environment(tmp_path):
    root = fake_project(tmp_path)
    c = hostcmd.manage(layout(tmp_path), PROJECT, HOSTILE)
    p = run_script(c.script)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["argv"] == HOSTILE
    assert got["cwd"] == str(root / "releases" / "v1" / "src" / "web")      # current resolved once
    assert (got["SPACED"], got["DOLLAR"]) == ("a b c", "$(id)")
    assert got["path0"] == str(root / "releases" / "v1" / ".venv" / "bin")
    assert not Path("/tmp/ayna-pwned").exists()


def test_manage_without_a_live_release_says_deploy_first(tmp_path):
    root = fake_project(tmp_path)
    (root / "releases" / "current").unlink()
    p = run_script(hostcmd.manage(layout(tmp_path), PROJECT, ["check"]).script)
    res = answer(p.stdout, p.returncode)
    assert p.returncode == 3 and res["error"] == "no-release" and "deploy first" in res["detail"]


FAKE_PG = """#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_PG_LOG"]
pgpass = open(os.environ["PGPASSFILE"]).read() if os.environ.get("PGPASSFILE") else None
mode = oct(os.stat(os.environ["PGPASSFILE"]).st_mode & 0o777) if pgpass else None
with open(log, "a") as f:
    f.write(json.dumps({"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "pgpass": pgpass,
                        "pgpass_mode": mode, "PGPASSWORD": os.environ.get("PGPASSWORD"),
                        "PGPASSFILE": os.environ.get("PGPASSFILE")}) + "\\n")
tool = os.path.basename(sys.argv[0])
if os.environ.get("FAKE_PG_FAIL") == tool:
    print("FATAL: password authentication failed for hunter2-ish user", file=sys.stderr)
    sys.exit(1)
if tool == "pg_dump":
    out = [a for a in sys.argv if a.startswith("--file=")][0][7:]
    open(out, "w").write("dump of " + os.environ.get("FAKE_DB", "db"))
elif tool == "pg_restore":
    sys.stdout.write("-- restore of " + open(sys.argv[-1]).read() + "\\n")
elif tool == "psql":
    with open(log + ".sql", "w") as f:
        f.write(sys.stdin.read())
"""


@pytest.fixture
def fake_pg(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("pg_dump", "pg_restore", "psql", "sudo", "systemctl"):
        path = bindir / tool
        if tool in ("sudo", "systemctl"):
            path.write_text(f"#!/bin/sh\necho \"{tool} $*\" >> \"$FAKE_PG_LOG.units\"\n"
                            + ("[ \"$1\" = is-active ] && echo active\n" if tool == "systemctl" else "") + "exit 0\n")
        else:
            path.write_text(FAKE_PG)
        path.chmod(0o755)
    log = tmp_path / "pg.log"
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_PG_LOG": str(log), "PGPASSWORD": "leak"}, log


def pg_calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_backup_is_private_named_and_the_password_never_in_argv(tmp_path, fake_pg, project, cfg):
    env, log = fake_pg
    root = fake_project(tmp_path)
    lay = layout(tmp_path)
    private_tmp = tmp_path / "tmp"     # this call's own temporary files, apart from other runs' in /tmp
    private_tmp.mkdir()
    p = run_script(hostcmd.backup(lay, project, None, 3).script, **env, TMPDIR=str(private_tmp))
    assert p.returncode == 0, p.stderr
    res = answer(p.stdout)
    assert rules.parse(res["backup"]).release == "v1" and res["bytes"] > 0 and res["pruned"] == []
    path = root / "shared" / "backups" / res["backup"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (call,) = pg_calls(log)
    assert call["tool"] == "pg_dump" and "--dbname=postgresql://u@localhost/app" in call["argv"]
    assert not any("hunter2" in a for a in call["argv"]) and "hunter2" not in p.stdout + p.stderr
    assert call["pgpass"] == "*:*:*:*:hunter2\n" and call["pgpass_mode"] == "0o600"
    assert call["PGPASSWORD"] is None                      # the caller's one is not passed on
    assert not list((root / "shared" / "backups").glob(".*"))   # no partial file left
    assert Path(call["PGPASSFILE"]).parent.parent == private_tmp   # the pgpass was made there
    assert list(private_tmp.iterdir()) == []                        # and nothing of it is left


def test_backups_beyond_keep_are_pruned_and_failures_redact_the_password(tmp_path, fake_pg, project, cfg):
    env, log = fake_pg
    root = fake_project(tmp_path)
    folder = root / "shared" / "backups"
    for n in range(1, 5):
        (folder / f"uavcrew-2020010{n}T000000Z-v1.dump").write_text("old")
    (folder / "notes.txt").write_text("keep me")
    lay = layout(tmp_path)
    res = answer(run_script(hostcmd.backup(lay, project, "v9", 2).script, **env).stdout)
    assert res["release"] == "v9" and res["backup"].endswith("-v9.dump")
    assert sorted(res["pruned"]) == [f"uavcrew-2020010{n}T000000Z-v1.dump" for n in (1, 2, 3)]
    assert sorted(x.name for x in folder.iterdir()) == sorted(["notes.txt", "uavcrew-20200104T000000Z-v1.dump",
                                                                  res["backup"]])
    failed = run_script(hostcmd.backup(lay, project, None, 2).script, **env, FAKE_PG_FAIL="pg_dump")
    detail = answer(failed.stdout, failed.returncode)["detail"]
    assert failed.returncode == 3 and "pg_dump exited 1" in detail
    assert "hunter2" not in failed.stdout + failed.stderr and "********" in detail
    assert not list(folder.glob(".*partial"))


def test_restore_locks_backs_up_stops_replaces_in_one_transaction_and_starts(tmp_path, fake_pg, project, cfg):
    env, log = fake_pg
    root = fake_project(tmp_path)
    name = "uavcrew-20200101T000000Z-v1.dump"
    (root / "shared" / "backups" / name).write_text("the old data")
    lay = layout(tmp_path)
    two = dataclasses.replace(project, services=("web", "celery"))
    units = ["uavcrew-web-blue.service", "uavcrew-web-green.service", "uavcrew-celery-blue.service",
             "uavcrew-celery-green.service"]
    c = hostcmd.restore(lay, two, name, keep=1, lock={"token": "t1", "by": "me"})
    res = answer(run_script(c.script, **env).stdout)
    assert res["restored"] and not res["errors"] and res["started"] == units
    assert name in os.listdir(root / "shared" / "backups")          # protected from the safety backup's pruning
    calls = {x["tool"]: x for x in pg_calls(log)}
    assert pg_calls(log)[0]["tool"] == "pg_dump" and sorted(calls) == ["pg_dump", "pg_restore", "psql"]
    assert "--single-transaction" in calls["psql"]["argv"]
    sql = Path(str(log) + ".sql").read_text()
    assert sql.index("DROP %s IF EXISTS") < sql.index("-- restore of the old data")   # prelude first
    unit_calls = Path(str(log) + ".units").read_text()
    assert unit_calls.index("-n /usr/bin/systemctl stop uavcrew-web-blue.service") < unit_calls.index(
        "-n /usr/bin/systemctl start uavcrew-web-blue.service")
    assert not (root / ".deploy-lock").exists()


def test_restore_and_migrate_respect_the_deploy_lock(tmp_path, fake_pg, project, cfg):
    env, _ = fake_pg
    root = fake_project(tmp_path)
    (root / ".deploy-lock").mkdir()
    (root / ".deploy-lock" / "owner.json").write_text(json.dumps({"by": "ana", "token": "other"}))
    name = "uavcrew-20200101T000000Z-v1.dump"
    (root / "shared" / "backups" / name).write_text("x")
    lay = layout(tmp_path)
    r = answer(run_script(hostcmd.restore(lay, project, name, keep=2, lock={"token": "t"}).script, **env).stdout)
    assert (r["error"], r["holder"]) == ("locked", {"by": "ana", "token": "other"})
    m = hostcmd.migrate(lay, project, [], backup=True, keep=2, lock={"token": "t"})
    assert answer(run_script(m.script, **env).stdout)["error"] == "locked"
    assert (root / ".deploy-lock" / "owner.json").exists()          # someone else's lock stays


def test_migrate_backs_up_first_then_runs_and_unlocks(tmp_path, fake_pg, project, cfg):
    env, log = fake_pg
    root = fake_project(tmp_path)
    m = hostcmd.migrate(layout(tmp_path), project, ["crew", "0001"], backup=True, keep=2, lock={"token": "t"})
    p = run_script(m.script, **env, EXIT="3")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("@@step backup ") and json.loads(lines[1])["argv"] == ["migrate", "--noinput", "crew",
                                                                                        "0001"]
    res = answer(p.stdout)
    assert res["code"] == 3 and rules.parse(res["backup"]["backup"]).release == "v1"
    assert not (root / ".deploy-lock").exists()
