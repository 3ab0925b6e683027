"""envfile.parse against the table that tests/e2e/test_envfile.py proves on systemd itself."""

from __future__ import annotations

import pytest

from ayna_fab.hostprog import envfile
from tests.e2e.envfile_cases import ACCEPTED, BYTES, CASES, REFUSED, concatenated, expected_values


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_alone_parses_to_exactly_the_expected_variables(case):
    if case.expected is REFUSED:
        with pytest.raises(ValueError, match="systemd refuses the whole file"):
            envfile.parse(case.text)
    else:
        assert envfile.parse(case.text) == expected_values([case]), repr(case.text)


def test_the_cases_together_parse_as_one_file():
    """No case may leak into the next line (an unclosed state would swallow it)."""
    text, expected = concatenated()
    assert envfile.parse(text) == expected


def test_the_table_is_sound():
    """Unique keys, so the e2e test can run every case in one unit and still tell them apart."""
    keys = [k for c in ACCEPTED for k in c.expected if c.expected[k] is not None]
    assert len(keys) == len(set(keys)) and len(ACCEPTED) >= 20
    assert all(k.startswith("E_") for k in keys)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_read_gives_the_file_what_parse_gives_its_text(case, tmp_path):
    """read() must not translate CRs (Python's default newline handling would) nor choke on
    bytes that are not UTF-8; a file systemd refuses is an OSError, like one it cannot read."""
    path = tmp_path / ".env.production"
    path.write_bytes(case.text.encode(*BYTES))
    if case.expected is REFUSED:
        with pytest.raises(OSError, match="systemd refuses the whole file"):
            envfile.read(path)
    else:
        assert envfile.read(path) == expected_values([case])


def test_for_app_layers_the_file_over_the_hosts_environment(tmp_path, monkeypatch):
    """Minus the variables that would change which Python runs, with the release's venv
    first on the file's PATH."""
    env_file = tmp_path / ".env.production"
    env_file.write_bytes("E_UNI=héllo\r\nPATH=/from/file\nPYTHONPATH=/from/file\n".encode())
    monkeypatch.setenv("PYTHONPATH", "/from/host")
    monkeypatch.setenv("PYTHONHOME", "/from/host")
    monkeypatch.setenv("VIRTUAL_ENV", "/other/venv")
    monkeypatch.setenv("KEEP", "1")
    env = envfile.for_app(env_file, "/opt/p/releases/v3")
    assert env["E_UNI"] == "héllo" and env["KEEP"] == "1" and "PYTHONHOME" not in env
    assert env["PYTHONPATH"] == "/from/file"
    assert env["VIRTUAL_ENV"] == "/opt/p/releases/v3/.venv"
    assert env["PATH"] == "/opt/p/releases/v3/.venv/bin:/from/file"
