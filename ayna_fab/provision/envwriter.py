"""The project's env writer: the one way the deploy user replaces its env file, through sudo.

The env file is root:DEPLOY 0640 in root's shared/ (docs/security.md), so the deploy user reads it
but cannot replace it. `fab env push` / `set` / `unset` must, without the admin's login: setup
installs this program, root's 0755 where only root writes, and the sudoers rule allows it with no
arguments. It takes the new text on stdin (never in argv), refuses a text systemd would refuse
(the reader is embedded: hostprog/envfile.py, the same code) or one over LIMIT bytes, and puts it in
place the way setup does: a new file of root's, 0640 for the group, renamed over the old name, in a
directory reached without following any link. The path and group are fixed when it is rendered.
"""

from __future__ import annotations

import inspect
import json

from ayna_fab.hostprog import envfile

LIMIT = 1 << 20   # bytes: an env file, not a data store


def path(project: str) -> str:
    return f"/usr/local/lib/ayna-fab/env-{project}"


def render(project: str, env_file: str, group: str) -> str:
    """The program, with the reader's code and the project's path and group written in."""
    return f'''#!/usr/bin/python3 -I
# Managed by ayna-fab for {project}: replaces {env_file} with the text on stdin, for its deploy user
# through sudo. The text must load in systemd; nothing of it is ever printed.
{inspect.getsource(envfile)}

import grp as _grp
import sys as _sys

_ENV_FILE = {json.dumps(env_file)}
_GROUP = {json.dumps(group)}
_LIMIT = {LIMIT}


def _refuse(why):
    _sys.stderr.write(f"refused: {{why}}\\n")
    _sys.exit(2)


def _main():
    if _sys.argv[1:]:
        _refuse("no arguments: the new text comes on stdin")
    data = _sys.stdin.buffer.read(_LIMIT + 1)
    if len(data) > _LIMIT:
        _refuse(f"over {{_LIMIT}} bytes")
    try:
        parse(data.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        _refuse(f"systemd would not load it: {{exc}}")
    parent, name = os.path.split(_ENV_FILE)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    for part in [p for p in parent.split("/") if p]:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            _refuse(f"{{parent}}: {{exc.strerror}} at {{part!r}} (a link is never followed)")
        os.close(fd)
        fd = child
    st = os.fstat(fd)
    if st.st_uid != 0 or st.st_mode & 0o002:
        _refuse(f"{{parent}} is not root's: run setup")
    tmp = f".{{name}}.ayna-{{os.urandom(8).hex()}}"
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
    try:
        try:
            os.fchown(out, 0, _grp.getgrnam(_GROUP).gr_gid)
            os.fchmod(out, 0o640)
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
            os.fsync(out)
        finally:
            os.close(out)
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=fd)
        except OSError:
            pass
        raise
    os.fsync(fd)


if __name__ == "__main__":
    _main()
'''
