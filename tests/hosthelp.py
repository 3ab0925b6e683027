"""Run host-program calls locally, the way a host runs them: the real bootstrap, through bash."""

from __future__ import annotations

import io
import subprocess
import tarfile

from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Command, Result


def run(command: Command, stdin: bytes | None = None) -> Result:
    """A held call (a plan taking the lock) is told at once that its laptop is done with it, so it
    ends with its answer and leaves the lock to the calls that follow. stdin: what the laptop
    would send on the call's stdin (a stage call's upload)."""
    data = stdin if stdin is not None else (b"done\n" if command.held else b"")
    p = subprocess.run(["bash", "-c", command.script], capture_output=True, timeout=120, input=data)
    return Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def call(command: Command | tuple[Command, bytes]) -> dict:
    """The call's answer, as the laptop reads it (a command built with its stdin: that sent too)."""
    command, stdin = command if isinstance(command, tuple) else (command, None)
    return hostcall.parse(run(command, stdin), host="local", step=command.step)


def tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
