"""The hosts.toml reference (docs/hosts-toml.md) documents every key hosts.toml accepts: a key the
loader takes and the page never shows (as `key = ...`, `key`, or a table header) is a setting
nobody can find."""

from __future__ import annotations

import re
from pathlib import Path

from ayna_fab.config import BUILD_KEYS, DEFAULTS_KEYS, HOOK_KEYS, HOST_KEYS, PROJECT_KEYS, TOP_KEYS

README = (Path(__file__).resolve().parents[2] / "docs" / "hosts-toml.md").read_text()


def shown(key: str) -> bool:
    k = re.escape(key)
    return bool(re.search(rf"(^|[\s\[{{,]){k}\s*=", README, re.M) or f"`{key}`" in README
                or re.search(rf"^\[\[?[^\]\n]*\b{k}\b[^\]\n]*\]", README, re.M))


def test_every_hosts_toml_key_is_shown_in_the_reference():
    tables = {"top": TOP_KEYS, "defaults": DEFAULTS_KEYS, "hosts": HOST_KEYS, "projects": PROJECT_KEYS,
              "build": BUILD_KEYS, "hooks": HOOK_KEYS}
    missing = {table: [k for k in keys if not shown(k)] for table, keys in tables.items()}
    assert {t: ks for t, ks in missing.items() if ks} == {}


def test_the_check_finds_a_key_the_readme_lacks():
    assert not shown("no_such_setting") and shown("admin_identity_file")
