"""The env writer setup installs (provision/envwriter.py): the deploy user's one way, through sudo,
to replace its env file. Run here as it runs on a host, on a temporary shared/ directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from ayna_fab.provision import envwriter, sudoers
from tests.prereqs import requires


@pytest.fixture
def writer(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o770)
    env = shared / ".env.production"
    env.write_text("A=old\n")
    program = tmp_path / "env-shop"
    program.write_text(envwriter.render("shop", str(env), "root"))
    program.chmod(0o755)

    def run(data: bytes, *args: str):
        p = subprocess.run([sys.executable, "-I", str(program), *args], input=data, capture_output=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    return run, env


pytestmark = requires(os.geteuid() == 0, "the env writer sets the file's owner to root")


def test_it_replaces_the_file_with_stdin_root_owned_0640_for_the_group(writer):
    run, env = writer
    text = 'A="new # $x"\nSECRET_KEY=s3cr3t-value\n'
    code, out = run(text.encode())
    assert code == 0, out
    assert env.read_text() == text and b"s3cr3t" not in out
    st = env.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
    assert [p.name for p in env.parent.iterdir()] == [".env.production"]   # no temporary file left


@pytest.mark.parametrize("data, why", [(b"A=1\0\n", "would not load"), (b"A=\xff\n", "would not load"),
                                      (b"A=" + b"x" * (envwriter.LIMIT + 1), "over")],
                         ids=["nul", "not utf-8", "too long"])
def test_a_text_systemd_would_refuse_leaves_the_file_as_it_was(writer, data, why):
    run, env = writer
    code, out = run(data)
    assert code == 2 and why.encode() in out
    assert env.read_text() == "A=old\n"


def test_it_takes_no_arguments(writer):
    run, env = writer
    code, out = run(b"A=1\n", "/etc/shadow")
    assert code == 2 and env.read_text() == "A=old\n"


def test_a_link_on_the_way_is_never_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "shared").symlink_to(real)
    program = tmp_path / "env-shop"
    program.write_text(envwriter.render("shop", str(tmp_path / "shared" / ".env.production"), "root"))
    p = subprocess.run([sys.executable, "-I", str(program)], input=b"A=1\n", capture_output=True, timeout=60)
    assert p.returncode == 2 and b"link" in p.stderr and list(real.iterdir()) == []


def test_the_sudo_rule_allows_the_writer_with_no_arguments_only():
    text = sudoers.render("shop", "adonis", ["shop-web.service"])
    assert f'{envwriter.path("shop")} ""' in text
