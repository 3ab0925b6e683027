"""envfile.parse gives exactly what systemd's EnvironmentFile= gives a unit, on a real host.

Steps outside units (migrate, manage, backup, ...) read shared/.env.{env} with envfile; the
units get it from systemd. If the two disagreed, a value would differ between a deploy's
migrate and the running app. So every case in envfile_cases.py is checked four ways: its
expectation, systemd on a sandbox host, envfile.parse here, and envfile.read run by the
host's own python3. Needs only a booted host (no setup, no deploy).
"""

from __future__ import annotations

import base64
import itertools
import json
import shlex
from pathlib import Path

import pytest

from ayna_fab.hostprog import envfile
from tests.e2e.envfile_cases import ACCEPTED, BYTES, CASES, REFUSED, concatenated

pytestmark = pytest.mark.e2e
DIR = "/root/envfile-cases"
UNSET, REFUSES = "(unset)", "(refuses the file)"
UNITS = (f"envfile-case-{i}.service" for i in itertools.count())
HOST_READ = """
import json, subprocess, sys, envfile
def read(name):
    try:
        return envfile.read(name)
    except OSError:
        return None
systemd = subprocess.run(["systemctl", "--version"], capture_output=True, text=True).stdout.split()[1]
versions = f"python {sys.version.split()[0]}, systemd {systemd}"
print(json.dumps({"versions": versions, "files": {n: read(n) for n in sys.argv[1:]}}))
"""


def file_name(case) -> str:
    return f"{CASES.index(case):02d}.env"


def show(value) -> str:
    return UNSET if value is None else repr(value)


@pytest.fixture(scope="module")
def host(sandbox):
    """Each case in its own file, the accepted ones together in whole.env, and envfile.py
    itself, written byte for byte (base64 survives quotes, CRs, NULs and non-UTF-8)."""
    files = {file_name(c): c.text.encode(*BYTES) for c in CASES}
    files["whole.env"] = concatenated()[0].encode(*BYTES)
    files["envfile.py"] = Path(envfile.__file__).read_bytes()
    steps = [f"rm -rf {DIR}", f"mkdir -p {DIR}"]
    steps += [f"echo {base64.b64encode(data).decode()} | base64 -d > {DIR}/{name}" for name, data in files.items()]
    sandbox.check(0, " && ".join(steps))
    return sandbox


def unit_env(sandbox, names: list[str]) -> dict[str, str] | None:
    """The environment of a transient service with these EnvironmentFile=s, minus what systemd
    gives a service without any (PATH, INVOCATION_ID, ...); None if the service cannot start
    because systemd refuses a file (result "resources": "Failed to load environment files")."""
    def run(props: str) -> dict[str, str] | None:
        unit = next(UNITS)
        code, out, _ = sandbox.run(0, f"systemd-run --wait --pipe --quiet --unit={unit} {props} /usr/bin/env -0"
                                      f" > {DIR}/out && base64 -w0 {DIR}/out")
        if code:
            result = sandbox.check(0, f"systemctl show --property=Result --value {unit}; "
                                      f"systemctl reset-failed {unit}").strip()
            assert result == "resources", f"{unit} failed with result {result!r}, not for its environment files"
            return None
        return dict(item.split("=", 1) for item in base64.b64decode(out).decode().split("\0") if item)
    base = run("")
    assert base is not None and not any(k.startswith("E_") for k in base), base
    env = run(" ".join(f"-p EnvironmentFile={DIR}/{n}" for n in names))
    return None if env is None else {k: v for k, v in env.items() if k not in base}


def host_read(sandbox, names: list[str]) -> tuple[str, dict[str, dict[str, str] | None]]:
    """(host's python and systemd versions, {file: envfile.read(file), None if it raised OSError}),
    computed by the host's python3 from this checkout's envfile.py source."""
    result = json.loads(sandbox.check(0, f"cd {DIR} && python3 -c {shlex.quote(HOST_READ)} {' '.join(names)}"))
    return result["versions"], result["files"]


def local_parse(text: str) -> dict[str, str] | None:
    try:
        return envfile.parse(text)
    except ValueError:
        return None


def assert_agree(rows: list[list[str]], versions: str) -> None:
    """rows: [key, case text, expected, systemd, parse, host]; fail with the whole table,
    disagreeing rows marked !!, unless the last four columns agree on every row."""
    print(f"host: {versions}")
    head = ["key", "case text", "expected", "systemd", "parse here", "envfile.read on the host"]
    rows = [["!!" if len(set(r[2:])) > 1 else "  ", *r] for r in rows]
    bad = sum(r[0] == "!!" for r in rows)
    widths = [max(len(r[i]) for r in rows + [["", *head]]) for i in range(len(head) + 1)]
    report = "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [["", *head], *rows])
    print(report)
    assert not bad, f"{bad} of {len(rows)} rows disagree:\n{report}"


def merge(results: list[dict | None]) -> dict | None:
    """The variables of several files' results, or None if any was refused."""
    return None if None in results else {k: v for d in results for k, v in d.items()}


def key_rows(expected: dict, systemd: dict | None, local: dict, host: dict | None) -> list[list[str]]:
    """One row for every key any of the four names."""
    assert systemd is not None and host is not None, "systemd or the host refused a file the table accepts"
    where = {k: c for c in CASES if c.expected is not REFUSED for k in c.expected}
    return [[key, repr(where[key].text) if key in where else "(no case names this key)",
             *(show(d.get(key)) for d in (expected, systemd, local, host))]
            for key in sorted(set(expected) | set(systemd) | set(local) | set(host))]


def test_each_accepted_case_gives_a_unit_exactly_what_parse_and_the_table_say(host):
    """One case a file, all in one unit: keys are unique, so each key's value is its case's."""
    names = [file_name(c) for c in ACCEPTED]
    versions, on_host = host_read(host, names)
    assert_agree(key_rows({k: v for c in ACCEPTED for k, v in c.expected.items()}, unit_env(host, names),
                          merge([local_parse(c.text) for c in ACCEPTED]), merge([on_host[n] for n in names])),
                 versions)


def test_the_accepted_cases_as_one_file_give_a_unit_the_same(host):
    """All accepted cases in one file: a case that leaked into the next line would show here."""
    text, expected = concatenated()
    versions, on_host = host_read(host, ["whole.env"])
    assert_agree(key_rows(expected, unit_env(host, ["whole.env"]), local_parse(text), on_host["whole.env"]),
                 versions)


def test_a_file_systemd_refuses_is_refused_by_parse_and_read(host):
    """NUL, bytes that are not UTF-8 and noncharacters in a key or value: systemd does not
    start the unit at all, so no step may run with values made up from such a file."""
    refused = [c for c in CASES if c.expected is REFUSED]
    versions, on_host = host_read(host, [file_name(c) for c in refused])
    rows = []
    for c in refused:
        results = [unit_env(host, [file_name(c)]), local_parse(c.text), on_host[file_name(c)]]
        rows.append(["(whole file)", repr(c.text), REFUSES, *(REFUSES if r is None else repr(r) for r in results)])
    assert_agree(rows, versions)
