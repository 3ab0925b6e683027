"""Every path that runs project code outside a unit sees the env file as the units do.

tests/e2e/test_envfile.py proves ayna_fab.hostprog.envfile.parse gives what systemd gives a unit.
Here, against a fake release (a `django` stand-in that records the environment it ran in),
the deploy's Django steps (check, migrate, collectstatic), `fab manage` and `fab migrate`
all get exactly parse()'s values for the same file: one reader, so no second opinion.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Project
from ayna_fab.hostprog import envfile
from tests.e2e.envfile_cases import concatenated
from tests.hosthelp import call

PROJECT = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")
RECORDER = """import json, os, sys
def dump(label):
    with open(os.environ["DUMP_TO"] + "." + label, "w") as f:
        json.dump({k: v for k, v in os.environ.items() if k.startswith("E_")}, f)
"""


@pytest.fixture
def release(tmp_path, monkeypatch):
    lay = Layout(str(tmp_path), "demo", "production")
    rel = Path(lay.release(1))
    web = rel / "src" / "web"
    (rel / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, rel / ".venv" / "bin" / "python")
    (web / "django" / "core" / "management").mkdir(parents=True)
    (web / "recorder.py").write_text(RECORDER)
    (web / "django" / "__init__.py").write_text("def setup():\n    import recorder; recorder.dump('django')\n")
    (web / "django" / "core" / "__init__.py").write_text("")
    (web / "django" / "conf").mkdir()
    (web / "django" / "conf" / "__init__.py").write_text(   # check reads DEBUG, and where uploads go
        "class settings:\n    DEBUG = False\n    MEDIA_ROOT = ''\n")
    (web / "django" / "core" / "management" / "__init__.py").write_text("def call_command(*a, **k):\n    pass\n")
    (web / "django" / "apps.py").write_text("class apps:\n    get_models = staticmethod(lambda: [])\n")
    (web / "django" / "db" / "models.py").parent.mkdir()
    (web / "django" / "db" / "__init__.py").write_text("")
    (web / "django" / "db" / "models.py").write_text("class FileField:\n    pass\n")
    (web / "django" / "core" / "files").mkdir()
    (web / "django" / "core" / "files" / "__init__.py").write_text("")
    (web / "django" / "core" / "files" / "storage.py").write_text(
        "class FileSystemStorage:\n    location = ''\n\ndefault_storage = FileSystemStorage()\n")
    (web / "manage.py").write_text("import recorder, sys\nrecorder.dump('manage-' + sys.argv[1])\n")
    os.makedirs(lay.shared)
    text, expected = concatenated()
    with open(lay.env_file, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text)
    os.symlink("v1", lay.current)
    monkeypatch.setenv("DUMP_TO", str(tmp_path / "env"))
    return lay, tmp_path / "env", expected


def seen(dump: Path, label: str) -> dict:
    return json.loads(Path(f"{dump}.{label}").read_text())


def test_the_table_is_what_parse_gives(release):
    lay, _, expected = release
    assert envfile.read(lay.env_file) == {**envfile.read(lay.env_file), **expected}


def test_deploy_manage_and_migrate_see_the_same_values(release):
    lay, dump, _ = release
    want = {k: v for k, v in envfile.read(lay.env_file).items() if k.startswith("E_")}
    assert len(want) >= 40

    owner = {"token": "t1", "by": "test"}
    assert "error" not in call(cmd.plan(lay, PROJECT, owner))
    res = call(cmd.prepare(lay, PROJECT, "t1", 1, ["check", "migrate", "collectstatic"], None, None, 1))
    assert res["failed"] is None, res
    assert seen(dump, "django") == want                       # the deploy's check, migrate, collectstatic

    call(cmd.finish(lay, PROJECT, "t1", {}, {}, None, []))
    from tests.hosthelp import run
    assert run(cmd.manage(lay, PROJECT, ["shell"])).code == 0
    assert seen(dump, "manage-shell") == want                 # fab manage, fab shell

    res = call(cmd.migrate(lay, PROJECT, [], backup=False, keep=1, lock=owner))
    assert res["code"] == 0
    assert seen(dump, "manage-migrate") == want               # fab migrate
