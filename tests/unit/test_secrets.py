"""No part of a DATABASE_URL password reaches any output, whatever characters it holds.

Passwords with '#', '/', '?', '@', '%' and ':' go unescaped into DATABASE_URL, and through every
command that reads it: on the host (backup, restore, migrate's backup, a deploy's backup step, run
by the real host program against fake PostgreSQL tools that print the password they were given
when they fail) and on the laptop (setup's checks of a local env file). Every piece of each password
is then looked for in everything that was printed or answered.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.config import model as config
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import backups as rules
from ayna_fab.provision import database, setup as hostsetup
from tests.unit.test_ops import FAKE_PG, fake_project, layout, run_script

PASSWORDS = ["Kx9f#Lm2q", "Vb7w/Tn4r", "Nb3x?Wq7p", "Hy6s@Pd3e", "Qz8c%Rw5t", "Jm4v:Gs2k", "1234#Zq9w",
             "Ab1c#De2f/Gh3i@Jk4l%Mn5o:Pq6r?St7u", "Uv8w%41Xy9z"]
# Passwords whose URL is read one way only: used as they are (the rest are refused, unquoted).
USABLE = {"Hy6s@Pd3e": "Hy6s@Pd3e", "Qz8c%Rw5t": "Qz8c%Rw5t", "Jm4v:Gs2k": "Jm4v:Gs2k", "Uv8w%41Xy9z": "Uv8wAXy9z"}
# What setup and env-check accept: a password with nothing left to percent-encode (the rest are
# refused before anything is uploaded, even where the host could read them one way).
ENCODED = {"Uv8w%41Xy9z"}


def pieces(password: str) -> list[str]:
    """Every run of letters and digits of the password: none may show anywhere."""
    return [p for p in re.split(r"[^A-Za-z0-9]+", password) if len(p) >= 3]


def assert_nothing_of(password: str, *texts: str) -> None:
    text = "\n".join(texts)
    for piece in pieces(password) + ([password] if password else []):
        assert piece not in text, f"{piece!r} of the password showed:\n{text}"


def url(password: str) -> str:
    return f"postgresql://app:{password}@localhost:5432/app"


@pytest.fixture
def loud_pg(tmp_path):
    """fake pg tools that, told to fail, print the password they were given (as a real server
    might echo a connection string): the host program must never pass that on."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    loud = FAKE_PG.replace('print("FATAL: password authentication failed for hunter2-ish user", file=sys.stderr)',
                           'print("FATAL: password " + (pgpass or "").split(":", 4)[-1].strip()'
                           '.replace(chr(92) + ":", ":").replace(chr(92) * 2, chr(92)) + " rejected", file=sys.stderr)')
    assert loud != FAKE_PG
    for tool in ("pg_dump", "pg_restore", "psql"):
        (bindir / tool).write_text(loud)
        (bindir / tool).chmod(0o755)
    for tool in ("sudo", "systemctl"):
        (bindir / tool).write_text("#!/bin/sh\n[ \"$1\" = is-active ] && echo active\nexit 0\n")
        (bindir / tool).chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_PG_LOG": str(tmp_path / "pg.log")}


PROJECT = config.Project(name="uavcrew", source=None, port_base=8130, services=("web",), env="production")


def host_commands(tmp_path):
    lay = layout(tmp_path)
    name = "uavcrew-20200101T000000Z-v1.dump"
    (tmp_path / "uavcrew" / "shared" / "backups" / name).write_text("old data")
    lock = {"token": "t", "by": "test"}
    return {
        "backup": hostcmd.backup(lay, PROJECT, None, 3),
        "restore": hostcmd.restore(lay, PROJECT, name, keep=3, lock=lock),
        "migrate": hostcmd.migrate(lay, PROJECT, [], backup=True, keep=3, lock=lock),
        "deploy's backup step": hostcmd.prepare(lay, PROJECT, "t", 1, ["backup"], None, "v1", 3),
    }


# A refused URL stops before any tool runs; a usable one also goes through a failing pg_dump.
CASES = [(p, None) for p in PASSWORDS] + [(p, "pg_dump") for p in USABLE]


@pytest.mark.parametrize("password,fail", CASES, ids=[f"{p}-{f or 'works'}" for p, f in CASES])
def test_host_commands_never_show_the_password(tmp_path, loud_pg, password, fail):
    fake_project(tmp_path, env=f"DATABASE_URL={url(password)}\nSECRET_KEY=x\n")
    lock = tmp_path / "uavcrew" / ".deploy-lock"
    env = dict(loud_pg, **({"FAKE_PG_FAIL": fail} if fail else {}))
    for what, command in host_commands(tmp_path).items():
        shutil.rmtree(lock, ignore_errors=True)
        if what == "deploy's backup step":   # a deploy holds its lock; restore and migrate take it
            lock.mkdir()
            (lock / "owner.json").write_text('{"token": "t", "by": "test"}')
        p = run_script(command.script, **env)
        assert "@@result" in p.stdout and '"locked"' not in p.stdout and '"lock-lost"' not in p.stdout, p.stdout
        assert_nothing_of(password, p.stdout, p.stderr)
        if password not in USABLE:
            assert "percent-encode" in p.stdout, (what, p.stdout)
        elif fail == "pg_dump":
            assert "pg_dump exited 1" in p.stdout and "********" in p.stdout, (what, p.stdout)


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_host_reads_a_usable_password_exactly_and_refuses_the_rest_without_quoting(password):
    try:
        uri, got = rules.connection(url(password))
    except ValueError as exc:
        assert password not in USABLE
        assert_nothing_of(password, str(exc), repr(exc.__context__) if exc.__suppress_context__ is False else "")
        return
    assert got == USABLE[password]
    assert_nothing_of(password, uri)
    assert uri == "postgresql://app@localhost:5432/app"


@pytest.mark.parametrize("password", PASSWORDS)
def test_setup_checks_a_local_env_file_without_showing_the_password(tmp_path, password):
    env = tmp_path / "local.env"
    env.write_text(f"PROJECT_NAME=uavcrew\nDJANGO_SETTINGS_MODULE=config.settings\nSECRET_KEY=x\n"
                   f"DATABASE_URL={url(password)}\nREDIS_URL=redis://localhost\nWEB_PORT=8130\nAPI_PORT=8131\n")
    (tmp_path / "hosts.toml").write_text(
        f'[projects.uavcrew]\nsource = "{tmp_path}"\nenv = "production"\nenv_file = "{env}"\n'
        'create_database = true\n[hosts.h]\nhostname = "127.0.0.1"\nprojects = ["uavcrew"]\n')
    cfg = config.load(tmp_path / "hosts.toml")
    try:
        hostsetup.prepare(cfg, cfg.hosts["h"], cfg.projects["uavcrew"], False)
        assert password in ENCODED
        assert database.from_url(url(password)).password == USABLE[password]
    except UsageError as exc:
        assert password not in ENCODED
        assert_nothing_of(password, str(exc))
        assert "percent-encode" in str(exc)


def test_the_pieces_are_really_looked_for():
    with pytest.raises(AssertionError):
        assert_nothing_of("Kx9f#Lm2q", "Port could not be cast to integer value as 'Kx9f'")
