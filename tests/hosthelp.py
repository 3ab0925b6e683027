"""Run host-program calls locally, the way a host runs them: the real bootstrap, through bash."""

from __future__ import annotations

import io
import subprocess
import tarfile

from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Command, Result


def run(command: Command) -> Result:
    """A held call (a plan taking the lock) is told at once that its laptop is done with it, so it
    ends with its answer and leaves the lock to the calls that follow."""
    p = subprocess.run(["bash", "-c", command.script], capture_output=True, text=True, timeout=120,
                       input="done\n" if command.held else "")
    return Result(p.returncode, p.stdout, p.stderr)


def call(command: Command) -> dict:
    """The call's answer, as the laptop reads it."""
    return hostcall.parse(run(command), host="local", step=command.step)


def tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
