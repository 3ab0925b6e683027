"""Commands that bootstrap a host for a project. Each is idempotent and reports changes."""

from __future__ import annotations

import os
import re

from ayna_fab.provision import uvrelease
from ayna_fab.remote.transport import Command

from . import heredoc, q

UNIT_DIR = "/etc/systemd/system"
UV_HOME = "/usr/local/lib/ayna-fab/uv"


def host_facts() -> Command:
    """What the host is: checked before anything changes."""
    return Command("set -eu; . /etc/os-release; echo \"$ID $VERSION_ID\"; id -un; "
                   "command -v systemctl >/dev/null && echo systemd || echo no-systemd",
                   "inspect host", changes=False)


def ensure_user(user: str) -> Command:
    """The deploy user (the units' User=), not in systemd-journal (it reads every service's logs;
    its units' own come through sudoers.journal_reader). Its key goes in through the host program
    (commands.hostcalls.authorize_key), which follows no link in its home."""
    u = q(user)
    lines = [
        "set -eu",
        f"if ! id -u {u} >/dev/null 2>&1; then",
        f"  useradd --create-home --shell /bin/bash --user-group {u}",
        f"  echo {q(f'changed: created user {user}')}",
        "fi",
        f"if id -nG {u} | tr ' ' '\\n' | grep -qx systemd-journal; then",
        f"  gpasswd -d {u} systemd-journal >/dev/null",
        f"  echo {q(f'changed: removed {user} from systemd-journal (it reads its units logs through sudo)')}",
        "fi",
    ]
    return Command("\n".join(lines), "deploy user")


def install_uv(pip_args: list[str]) -> Command:
    """uv, the one pinned release with its wheels' hashes (ayna_fab/provision/uvrelease.py), if missing or if
    it is an older one setup installed. pip_args: packageindex.pip_args; with an index URL there,
    pip's own configuration is set aside (its extra indexes with it), else the host's index is used."""
    opts = " --no-deps --only-binary :all: --require-hashes" + "".join(f" {q(a)}" for a in pip_args)
    env = "PIP_CONFIG_FILE=/dev/null " if "--index-url" in pip_args else ""
    ours = f"[ \"$(readlink /usr/local/bin/uv || true)\" = {UV_HOME}/bin/uv ]"
    version = f"\"$({UV_HOME}/bin/uv --version 2>/dev/null | cut -d' ' -f2)\""
    return Command("\n".join([
        "set -eu",
        f"if ! command -v uv >/dev/null 2>&1 || {{ {ours} && [ {version} != {q(uvrelease.VERSION)} ]; }}; then",
        "  req=$(mktemp)",
        "  trap 'rm -f \"$req\"' EXIT",
        heredoc('"$req"', uvrelease.requirements()),
        f"  rm -rf {UV_HOME}",
        f"  python3 -m venv {UV_HOME}",
        f"  {env}{UV_HOME}/bin/pip install --quiet --disable-pip-version-check{opts} -r \"$req\"",
        f"  ln -sf {UV_HOME}/bin/uv /usr/local/bin/uv",
        "  echo \"changed: installed $(/usr/local/bin/uv --version)\"",
        "fi",
    ]), "uv", hint="the host needs a package index for pip (PyPI, a private index, or find-links) "
                   f"that has uv {uvrelease.VERSION}'s wheel for its platform")


def install_units(units: dict[str, str], venv_bins: list[str], legacy: list[str] = (), slot_link: str = "",
                  user: str = "", first_slot: list[str] = ()) -> Command:
    """Install unit files that differ, reload systemd once, enable all; verify the result.

    Units are not started here: there is no release to run yet, so the one thing
    `systemd-analyze verify` may report is that the venv's programs do not exist yet.
    A host set up before the slots still has one unit per service (legacy): each is stopped
    and removed, and when a release is live the first slot is pointed at it and started
    (connections wait in the socket meanwhile)."""
    names = sorted(units)
    pattern = "|".join(not_yet_deployed_re(b) for b in venv_bins)
    lines = ["set -eu", "stage=$(mktemp -d)", "trap 'rm -rf \"$stage\"' EXIT", "reload=0", "legacy=0"]
    for name in legacy:
        lines += remove_unit_lines(name, f"replaced {name} by its two slots", also="legacy=1")
    for name in names:
        staged = f'"$stage"/{q(name)}'
        lines.append(heredoc(staged, units[name]))
        dest = q(f"{UNIT_DIR}/{name}")
        lines += [
            f"if ! cmp -s {staged} {dest}; then",
            f"  install -m 644 {staged} {dest}; reload=1",
            f"  echo {q(f'changed: installed {name}')}",
            "fi",
        ]
    quoted = " ".join(q(n) for n in names)
    lines += [
        "if [ $reload = 1 ]; then systemctl daemon-reload; fi",
        f"for u in {quoted}; do",
        "  if [ \"$(systemctl is-enabled \"$u\" 2>/dev/null || true)\" != enabled ]; then",
        "    systemctl enable --quiet \"$u\"; echo \"changed: enabled $u\"",
        "  fi",
        "done",
    ]
    if first_slot:
        link, current = q(slot_link), q(f"{os.path.dirname(slot_link)}/current")
        lines += [
            f"if [ $legacy = 1 ] && [ -L {current} ]; then",
            f"  ln -sfn \"$(readlink {current})\" {link}.tmp && chown -h {q(user)}: {link}.tmp && mv -T {link}.tmp {link}",
            f"  systemctl start {' '.join(q(u) for u in first_slot)}",
            f"  echo {q('changed: started the live release in its first slot')}",
            "fi",
        ]
    lines += [
        f"out=$(cd {UNIT_DIR} && systemd-analyze verify {quoted} 2>&1) || true",
        f"rest=$(printf '%s\\n' \"$out\" | grep -v -E {q(pattern)} | grep -v '^$' || true)",
        "if [ -n \"$rest\" ]; then echo \"systemd-analyze verify:\" >&2; echo \"$rest\" >&2; exit 1; fi",
    ]
    return Command("\n".join(lines), "systemd units")


def remove_unit_lines(name: str, said: str, also: str = "") -> list[str]:
    """Shell lines: stop and disable a unit that is installed, remove its file, mark a reload due."""
    path = q(f"{UNIT_DIR}/{name}")
    return [
        f"if [ -e {path} ] || [ -L {path} ]; then",
        f"  systemctl disable --now --quiet {q(name)} 2>/dev/null || systemctl stop {q(name)} 2>/dev/null || true",
        f"  rm -f {path}; reload=1{'; ' + also if also else ''}",
        f"  echo {q(f'changed: {said}')}",
        "fi",
    ]


def not_yet_deployed_re(venv_bin: str) -> str:
    """grep -E pattern for the one complaint verify may make before the first deploy."""
    escaped = re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", venv_bin)
    return rf"^[A-Za-z0-9@_.-]+\.service: Command {escaped}/[A-Za-z0-9_.-]+ is not executable: No such file or directory$"


def install_program(path: str, text: str) -> Command:
    """A program of setup's, root's 0755 where only root writes (/usr/local/lib): the project's journal
    reader (sudoers.render_journal_reader) and env writer (provision/envwriter.py), installed before
    the sudoers rule that names them, and asgi-serve (provision/asgiserve.py), before the api unit."""
    return Command("\n".join([
        "set -eu",
        "stage=$(mktemp)",
        "trap 'rm -f \"$stage\"' EXIT",
        heredoc('"$stage"', text),
        f"if ! cmp -s \"$stage\" {q(path)}; then",
        f"  install -d -m 755 -o root -g root {q(path.rsplit('/', 1)[0])}",
        f"  install -m 755 -o root -g root \"$stage\" {q(path)}",
        f"  echo {q(f'changed: installed {path}')}",
        "fi",
    ]), "sudoers")


def install_sudoers(path: str, text: str) -> Command:
    """A sudoers drop-in, checked by visudo before it is put in place (a broken one locks sudo)."""
    return Command("\n".join([
        "set -eu",
        "stage=$(mktemp)",
        "trap 'rm -f \"$stage\"' EXIT",
        heredoc('"$stage"', text),
        "visudo -cq -f \"$stage\"",
        f"if ! cmp -s \"$stage\" {q(path)}; then",
        # keep what was there: if the whole configuration fails with the new drop-in (an alias
        # another drop-in defines too), it goes back at once, and sudo keeps working
        "  old=$(mktemp); trap 'rm -f \"$stage\" \"$old\"' EXIT",
        f"  had=0; if [ -f {q(path)} ]; then cp -p {q(path)} \"$old\"; had=1; fi",
        f"  install -m 440 -o root -g root \"$stage\" {q(path)}",
        "  if ! err=$(visudo -cq 2>&1); then",
        f"    if [ $had = 1 ]; then install -m 440 -o root -g root \"$old\" {q(path)}; else rm -f {q(path)}; fi",
        f"    echo {q(f'{path} was not installed: with it, sudo would refuse its whole configuration:')} >&2",
        "    echo \"$err\" >&2; exit 1",
        "  fi",
        f"  echo {q(f'changed: installed {path}')}",
        "fi",
        "visudo -cq",
    ]), "sudoers")


def env_file_state(path: str) -> Command:
    return Command(f"if [ -e {q(path)} ]; then stat -c '%U %a' {q(path)}; else echo missing; fi",
                   "env file", changes=False)


def create_database() -> Command:
    """Run SQL (given on stdin, never in argv: it holds a password) as the postgres superuser."""
    return Command("cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres -f -",
                   "database", hint="is PostgreSQL installed and running on the host?")
