"""The env-file reader's mechanisms, each pinned where a one-line bug in it went unnoticed by the
rest of the suite (docs/mutation-report.md): which fragments count as secrets, how the mask
replaces them, learning secrets without ever raising or waiting, and the environment project
code runs with."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading

import pytest

from ayna_fab.hostprog import envfile
from tests.polling import wait_until


# --- secrets: which fragments must never leave the host --------------------------------------------

@pytest.mark.parametrize("key", ["DB_PASSWORD", "db_passwd", "Api_Token", "AWS_CREDENTIALS", "PRIVATE_PEM",
                                 "SECRET", "STRIPE_KEY"])
def test_the_whole_value_of_a_key_named_like_a_secret_is_one(key):
    assert envfile.secrets({key: "  s3cr3tvalue  "}) == {"s3cr3tvalue"}


def test_a_value_under_an_ordinary_name_is_no_secret():
    assert envfile.secrets({"GREETING": "hello world", "ALLOWED_HOSTS": "example.com"}) == set()


def test_a_fragment_of_four_characters_is_a_secret_and_one_of_three_is_not():
    assert envfile.secrets({"API_KEY": "abcd", "OTHER_KEY": "xyz"}) == {"abcd"}


@pytest.mark.parametrize("word", sorted(envfile.NOT_SECRET))
def test_a_yes_or_no_word_is_no_secret_even_under_a_secret_name(word):
    assert envfile.secrets({"SECRET_FLAG": word.upper()}) == set()


def test_a_urls_password_is_a_secret_as_typed_decoded_and_in_every_piece():
    got = envfile.secrets({"DATABASE_URL": "postgresql://app:Abcd%23Efgh/Ijkl@db:5432/demo"})
    assert got == {"Abcd%23Efgh/Ijkl", "Abcd#Efgh/Ijkl", "Abcd", "23Efgh", "Efgh", "Ijkl"}


def test_a_query_parameter_named_like_a_secret_is_a_secret_and_others_are_not():
    got = envfile.secrets({"SENTRY": "https://sentry.example/1?api_key=K3y%2Fpart&region=europe&X-Token=tok9"})
    assert got == {"K3y%2Fpart", "K3y/part", "2Fpart", "part", "tok9"}   # "K3y" is too short


def test_a_url_without_a_password_gives_no_secret():
    assert envfile.secrets({"REDIS_URL": "redis://localhost:6379/0", "SITE": "https://user@example.com/x"}) == set()


# --- Mask: every fragment replaced, longest first, as text -----------------------------------------

def test_a_longer_fragment_is_masked_whole_before_a_shorter_one_inside_it():
    assert envfile.Mask({"abcd", "abcdefgh"}).text("x abcdefgh y abcd") == "x *** y ***"


def test_fragments_added_later_are_masked_along_with_the_first_ones():
    mask = envfile.Mask({"abcd"})
    mask.add({"abcdefgh"})
    mask.add({"abcd"})   # nothing new: the pattern stays as it was
    assert mask.text("abcdefgh abcd wxyz") == "*** *** wxyz"
    assert mask.fragments == {"abcd", "abcdefgh"}


def test_a_fragment_is_masked_as_written_not_as_a_pattern():
    mask = envfile.Mask({"a.b+c"})
    assert mask.text("aXbbc a.b+c") == "aXbbc ***"


def test_a_mask_that_knows_no_secret_leaves_everything_as_it_is():
    mask = envfile.Mask()
    data = {"a": ["x", 1]}
    assert mask.text("plain") == "plain" and mask.data(data) is data


def test_masking_data_goes_through_tuples_and_leaves_other_values():
    mask = envfile.Mask({"s3cret"})
    assert mask.data(("s3cret", 4, 2.5, None, True)) == ["***", 4, 2.5, None, True]
    assert mask.data({"s3cret": {"k": "a s3cret"}}) == {"s3cret": {"k": "a ***"}}   # keys are names: kept


# --- learn: never raises, never waits ----------------------------------------------------------------

@pytest.fixture
def fresh_mask(monkeypatch):
    mask = envfile.Mask()
    monkeypatch.setattr(envfile, "MASK", mask)
    return mask


def test_learning_a_readable_file_teaches_the_mask_its_secrets(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_bytes("SECRET_KEY=k3yvalue\r\nNAME=café\n".encode())
    envfile.learn(path)
    assert fresh_mask.fragments == {"k3yvalue"}


@pytest.mark.parametrize("text", [b"SECRET_KEY=k3yvalue\n\0", b"SECRET_KEY=caf\xe9 k3yvalue\n"])
def test_learning_a_file_systemd_refuses_teaches_nothing_and_raises_nothing(tmp_path, fresh_mask, text):
    path = tmp_path / ".env.production"
    path.write_bytes(text)
    envfile.learn(path)
    assert fresh_mask.fragments == set()


def test_learning_a_missing_file_or_a_directory_raises_nothing(tmp_path, fresh_mask):
    envfile.learn(tmp_path / "missing")
    envfile.learn(tmp_path)
    assert fresh_mask.fragments == set()


def test_learning_a_fifo_put_in_the_files_place_neither_waits_nor_reads_it(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    os.mkfifo(path)
    learning = threading.Thread(target=envfile.learn, args=(path,), daemon=True)
    learning.start()
    returned = wait_until(lambda: not learning.is_alive(), 30)
    if not returned:   # a blocking open waits for a writer: be one, so the thread ends
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert returned, "learn() waited on a FIFO with no writer"
    assert fresh_mask.fragments == set()


def test_learning_a_file_with_bytes_that_are_not_utf8_in_a_comment_teaches_its_secrets(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_bytes(b"# caf\xe9\nSECRET_KEY=k3yvalue\n")
    envfile.learn(path)
    assert fresh_mask.fragments == {"k3yvalue"}


@pytest.mark.parametrize("how", ["envfile.learn(p)", "print(envfile.read(p))"])
def test_reading_and_learning_are_utf8_whatever_the_hosts_locale(tmp_path, how):
    """A host program run over SSH may get the C locale: its default encoding is then ASCII."""
    path = tmp_path / ".env.production"
    path.write_bytes("SECRET_KEY=clé-secrète\n".encode())
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run([sys.executable, "-c", "import sys; from ayna_fab.hostprog import envfile; "
                          f"p = sys.argv[1]; {how}; print(sorted(envfile.MASK.fragments))", str(path)],
                         env=env, capture_output=True, text=True, encoding="utf-8", check=True).stdout
    assert out.strip().splitlines()[-1] == "['clé-secrète']"


def test_learning_closes_the_file_it_opened(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_text("SECRET_KEY=k3yvalue\n")
    before = set(os.listdir("/proc/self/fd"))
    envfile.learn(path)
    envfile.learn(tmp_path)
    assert set(os.listdir("/proc/self/fd")) == before


# --- the environment project code runs with ------------------------------------------------------------

def test_for_app_drops_the_hosts_python_variables_and_puts_the_venv_before_a_default_path(tmp_path, monkeypatch):
    env_file = tmp_path / ".env.production"
    env_file.write_text("A=1\n")
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        monkeypatch.setenv(name, "/from/host")
    monkeypatch.delenv("PATH")
    env = envfile.for_app(env_file, "/opt/p/releases/v3")
    assert env["A"] == "1" and not {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"} & set(env)
    assert env["VIRTUAL_ENV"] == "/opt/p/releases/v3/.venv"
    assert env["PATH"] == "/opt/p/releases/v3/.venv/bin:/usr/bin:/bin"


def test_a_file_systemd_refuses_is_an_oserror_naming_the_file_and_teaches_nothing(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_bytes(b"SECRET_KEY=k3yvalue\nE=caf\xe9\n")
    with pytest.raises(OSError) as caught:
        envfile.read(path)
    assert caught.value.errno == errno.EINVAL and caught.value.filename == str(path)
    assert caught.value.strerror.startswith("invalid UTF-8 or a noncharacter in 'E'")
    assert fresh_mask.fragments == set()


def test_reading_a_file_teaches_the_mask_its_secrets(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_text("SECRET_KEY=k3yvalue\nNAME=x\n")
    assert envfile.read(path) == {"SECRET_KEY": "k3yvalue", "NAME": "x"}
    assert fresh_mask.fragments == {"k3yvalue"}


# --- the writer at a file's edges ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("A=1", 'A="2"'),                 # the last line, with no line end: none added
    ("A=1\n", 'A="2"\n'),
    ("A=1\r", 'A="2"\n'),             # a CR ends it: a line end stays
    ("B=1\nA=1", 'B=1\nA="2"'),
])
def test_the_last_assignment_rewritten_keeps_the_files_ending(text, expected):
    assert envfile.with_value(text, "A", "2") == expected


@pytest.mark.parametrize("text, expected", [
    ("", 'D="d"\n'),
    ("A=1", 'A=1\nD="d"\n'),
    ("A=1\r", 'A=1\rD="d"\n'),
    ("A=1\n", 'A=1\nD="d"\n'),
])
def test_a_new_key_is_appended_on_a_line_of_its_own(text, expected):
    assert envfile.with_value(text, "D", "d") == expected


def test_learning_keeps_a_cr_inside_quotes_as_systemd_does(tmp_path, fresh_mask):
    path = tmp_path / ".env.production"
    path.write_bytes(b'SECRET_KEY="k3y\rvalue"\r\n')
    envfile.learn(path)
    assert fresh_mask.fragments == {"k3y\rvalue"}


# --- parse at the end of a file ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("K=abc\\", {"K": "abc"}),        # a backslash ending the file escapes nothing: the value stands
    ("K=ab  \\", {"K": "ab  "}),      # ... and the blanks before it were escaped into the value
    ("K=\\", {"K": ""}),
    ("K='open", {"K": "open"}),       # inside quotes: the value so far
    ('K="ab\\', {"K": "ab"}),
])
def test_a_file_ending_mid_value_keeps_its_last_assignment(text, expected):
    assert envfile.parse(text) == expected
