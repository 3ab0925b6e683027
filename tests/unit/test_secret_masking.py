"""Secrets of the env file never leave the host in what the tool shows or logs: the application's
own output (a traceback quoting a piece of a password it failed to parse), hooks' output, step
details and logs/deploys.jsonl are masked on the host, before any text travels. And a URL whose
password needs percent-encoding is refused by env-check and setup, naming the key, never the value."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Hook, Project
from ayna_fab.hostprog import envfile
from ayna_fab.provision import envcheck as laptop_envfile
from tests.hosthelp import call, run, tgz

PROJECT = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")
PASSWORD = "Xy7Secret#Q/zz"
TOKEN = "tok-4f9a8b7c6d5e"
SECRET_KEY = "django-insecure-k3y-v4lue"
ENV = (f"DATABASE_URL=postgresql://app:{PASSWORD}@db.internal:5432/demo\n"
       f"SECRET_KEY={SECRET_KEY}\nCHAT_TOKEN={TOKEN}\nDEBUG=true\nWEB_PORT=8130\n")
# What the app printed: the parse of the unencoded URL failed at '#', quoting what came before it.
APP_SAYS = (f"ValueError: Port could not be cast to integer value as 'Xy7Secret'\n"
            f"fragment 'Q/zz@db.internal:5432/demo'; key {SECRET_KEY}; token {TOKEN}; url {PASSWORD}")
FRAGMENTS = [PASSWORD, "Xy7Secret", SECRET_KEY, TOKEN]


@pytest.fixture
def lay(tmp_path):
    layout = Layout(str(tmp_path), "demo", "production")
    for d in ("releases", "shared"):
        os.makedirs(os.path.join(layout.root, d))
    with open(layout.env_file, "w") as f:
        f.write(ENV)
    return layout


def assert_masked(text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"{fragment!r} left the host: {text!r}"


def test_the_secret_fragments_of_an_env_file():
    got = envfile.secrets(envfile.parse(ENV))
    assert {PASSWORD, "Xy7Secret", SECRET_KEY, TOKEN} <= got
    assert "Q" not in got and "zz" not in got and "true" not in got and "8130" not in got


def test_masking_replaces_every_fragment_and_leaves_the_rest():
    mask = envfile.Mask(envfile.secrets(envfile.parse(ENV)))
    text = mask.text(APP_SAYS)
    assert_masked(text)
    assert "Port could not be cast to integer value as '***'" in text and "db.internal:5432" in text
    assert mask.data({"a": [APP_SAYS, 3, None], "b": {"c": TOKEN}, TOKEN: 1}) == {"a": [text, 3, None], "b": {"c": "***"}, TOKEN: 1}


def test_an_apps_output_leaves_the_host_masked(lay):
    """`fab migrate`: manage.py's own output, as the real host program relays it, carries no secret."""
    rel = os.path.join(lay.releases, "v1")
    os.makedirs(os.path.join(rel, PROJECT.django_dir, ".venv", "bin"), exist_ok=True)
    os.makedirs(os.path.join(rel, ".venv", "bin"), exist_ok=True)
    os.symlink(sys.executable, os.path.join(rel, ".venv", "bin", "python"))
    with open(os.path.join(rel, PROJECT.django_dir, "manage.py"), "w") as f:
        f.write(f"import sys\nprint({APP_SAYS!r})\nsys.stderr.write({APP_SAYS!r})\nsys.exit(1)\n")
    os.symlink(rel, os.path.join(lay.releases, "current"))
    res = run(cmd.migrate(lay, PROJECT, [], backup=False, keep=3, lock={"token": "t1", "by": "me"}))
    assert (res.stdout + res.stderr).count("Port could not be cast") == 2 and '"code": 1' in res.stdout
    assert_masked(res.stdout + res.stderr)


def test_the_deploy_log_on_the_host_is_masked(lay):
    """logs/deploys.jsonl: a call that does not read the env file (finish) masks it all the same."""
    call(cmd.plan(lay, PROJECT, {"token": "t1", "by": "me"}))
    call(cmd.finish(lay, PROJECT, "t1", {}, {}, {"event": "deploy", "result": "failed", "reason": APP_SAYS}, []))
    with open(os.path.join(lay.root, "logs", "deploys.jsonl")) as f:
        logged = f.read()
    assert "Port could not be cast" in logged
    assert_masked(logged)
    assert_masked(json.dumps(json.loads(logged.splitlines()[-1]), ensure_ascii=False))


VALUES = {"PROJECT_NAME": "demo", "DJANGO_SETTINGS_MODULE": "s", "SECRET_KEY": "k" * 40,
          "REDIS_URL": "redis://localhost:6379/0", "WEB_PORT": "8130", "API_PORT": "8131"}


@pytest.mark.parametrize("password", [PASSWORD, "a?b", "we@ther", "pa ss", "100%", "x:y"])
def test_a_url_whose_password_needs_encoding_is_refused_naming_the_key_only(password):
    problems = laptop_envfile.problems({**VALUES, "DATABASE_URL": f"postgresql://app:{password}@db/demo"},
                                       "demo", 8130, 8131)
    assert len(problems) == 1 and problems[0].startswith("DATABASE_URL")
    assert password not in problems[0] and "quote" in problems[0]


@pytest.mark.parametrize("password", ["plain", "Xy7Secret%23Q%2Fzz", "a-b_c.d~e!$&'()*+,;="])
def test_an_encoded_or_plain_password_is_accepted(password):
    assert laptop_envfile.problems({**VALUES, "DATABASE_URL": f"postgresql://app:{password}@db/demo"},
                                   "demo", 8130, 8131) == []


def test_a_url_with_an_at_sign_after_its_port_is_no_password():
    assert laptop_envfile.problems({**VALUES, "DATABASE_URL": "postgresql://app:pw@db/demo",
                                    "PROFILE_URL": "http://localhost:8000/users/@me"}, "demo", 8130, 8131) == []
