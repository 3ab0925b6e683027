"""The env file's writer (envfile.with_value / without): one key changes, every other value reads
back as before, over the table of tricky lines that tests/e2e/test_envfile.py proves on systemd."""

from __future__ import annotations

import pytest

from ayna_fab.hostprog import envfile
from tests.e2e.envfile_cases import concatenated

TRICKY_VALUES = ["plain", "", "with spaces  ", "  lead", "#hash", "a#b ; c", "'single'", '"double"',
                 "$HOME ${X} $(id) `id`", "back\\slash\\", "tab\there", "multi\nline\r\nvalue", "é ü 日本",
                 "p@ss:w/rd?x=1&y=%41", "\\n not a newline", "ends with backslash \\"]


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_a_quoted_value_reads_back_exactly(value):
    assert envfile.parse(f"K={envfile.quote(value)}\n") == {"K": value}


@pytest.mark.parametrize("value", ["a\0b", "bad \udc80 byte"])
def test_what_no_env_file_can_hold_is_refused(value):
    with pytest.raises(ValueError):
        envfile.quote(value)


def test_setting_each_key_of_the_tricky_file_changes_that_key_alone():
    text, _ = concatenated()
    before = envfile.parse(text)
    for key in before:
        for value in ("x", "v #$'\" \\ q"):
            after = envfile.with_value(text, key, value)
            assert envfile.parse(after) == {**before, key: value}, key


def test_removing_each_key_of_the_tricky_file_removes_that_key_alone():
    text, _ = concatenated()
    before = envfile.parse(text)
    for key in before:
        assert envfile.parse(envfile.without(text, key)) == {k: v for k, v in before.items() if k != key}, key


def test_a_repeated_key_becomes_one_line_where_its_last_one_was():
    text = "A=1\n# keep me\nB=2\nA=3\nC=4"
    assert envfile.with_value(text, "A", "new") == '# keep me\nB=2\nA="new"\nC=4'
    assert envfile.with_value(text, "D", "d") == 'A=1\n# keep me\nB=2\nA=3\nC=4\nD="d"\n'
    assert envfile.without(text, "A") == "# keep me\nB=2\nC=4"


def test_a_continued_line_goes_whole():
    text = 'A="x" \\\nB=2\nC=3\n'
    assert envfile.parse(text) == {"A": "xB=2", "C": "3"}
    assert envfile.without(text, "A") == "C=3\n"


@pytest.mark.parametrize("key", ["1X", "A-B", "export A", ""])
def test_a_key_that_is_no_name_is_refused(key):
    with pytest.raises(ValueError):
        envfile.with_value("A=1\n", key, "v")
