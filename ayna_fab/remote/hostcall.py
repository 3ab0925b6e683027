"""The laptop side of the host protocol: how a call travels to the host and how its answer is read.

A call is one shell command: `python3 -c BOOTSTRAP CALL ARGS_JSON`. BOOTSTRAP carries the
whole host package (ayna_fab/hostprog/, compressed) and imports it from memory, so a host
needs nothing of ayna-fab installed, stdin stays free (manage and shell are interactive),
and every round trip is self-contained. It leaves a copy in the host's cache, which the
short form of later calls (CACHED, about 1 kB) runs if its hash is the one meant. The answer is what hostprog/wire.py writes:
program output, `@@step` lines, then one `@@result` line, read by `parse` and only there.
docs/ARCHITECTURE.md has the whole protocol.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import threading
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import calls
from ayna_fab.hostprog.wire import MISSING, MISSING_EXIT, RESULT, START, STEP
from ayna_fab.remote.transport import Command, Result

PACKAGE = Path(__file__).parent.parent / "hostprog"
HOST_NAME = "ayna_host"   # the package's name on the host

# The host package, compressed, becomes S (module name -> source); RUN imports it from there.
RUN = """class F(importlib.abc.MetaPathFinder,importlib.abc.Loader):
 def find_spec(self,name,path,target=None):
  m=name[{n}:] or "__init__"
  if (name=="{p}" or name.startswith("{p}.")) and m in S:
   return importlib.util.spec_from_loader(name,self,is_package=name=="{p}")
 def create_module(self,spec):return None
 def exec_module(self,mod):
  m=mod.__name__[{n}:] or "__init__"
  exec(compile(S[m],"{p}/"+m+".py","exec"),mod.__dict__)
sys.meta_path.insert(0,F())
import {p}
{p}.SOURCES=S
from {p} import main
sys.exit(main.run(sys.argv[1:]))
"""

# The program travels whole, and leaves a copy in the SSH user's cache on the host for the
# calls after it (kept 30 days from its writing, as are pieces of interrupted writes; a failed
# write only costs the next call a resend).
BOOTSTRAP = """import base64,hashlib,importlib.abc,importlib.util,json,os,sys,time,zlib
Z=base64.b64decode("{blob}")
S=json.loads(zlib.decompress(Z))
try:
 d=os.path.expanduser("{cache}");os.makedirs(d,mode=0o700,exist_ok=True)
 t=f"{{d}}/.program-{h}.{{os.getpid()}}"
 with open(t,"wb") as f:f.write(Z)
 os.replace(t,f"{{d}}/program-{h}.z")
 for x in os.listdir(d):
  if x.startswith(("program-",".program-")) and os.stat(f"{{d}}/{{x}}").st_mtime<time.time()-30*86400:os.unlink(f"{{d}}/{{x}}")
except OSError:pass
""" + RUN

# The program from that cache, if there and exactly the one meant (its hash); else exit MISSING.
CACHED = """import hashlib,importlib.abc,importlib.util,json,os,sys,zlib
try:
 with open(os.path.expanduser("{cache}/program-{h}.z"),"rb") as f:Z=f.read()
 if hashlib.sha256(Z).hexdigest()!="{h}":raise OSError
except OSError:
 sys.stderr.write("{missing}\\n");sys.exit({code})
S=json.loads(zlib.decompress(Z))
""" + RUN

CACHE_DIR = "~/.cache/ayna-fab"


_PROGRAM_LOCK = threading.Lock()


def _program() -> tuple[bytes, str]:
    """The compressed program and its hash, made once: a fleet's first hosts all ask at the same
    moment, and lru_cache alone would let each of them compress it (13 ms each)."""
    with _PROGRAM_LOCK:
        return _compressed()


@lru_cache(maxsize=1)
def _compressed() -> tuple[bytes, str]:
    sources = {p.stem: p.read_text() for p in sorted(PACKAGE.glob("*.py"))}
    data = zlib.compress(json.dumps(sources).encode(), 9)
    return data, hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=1)
def bootstrap() -> str:
    """The whole host program, as the text of `python3 -c` (it also leaves itself in the cache)."""
    data, digest = _program()
    return BOOTSTRAP.format(blob=base64.b64encode(data).decode(), h=digest, cache=CACHE_DIR,
                            p=HOST_NAME, n=len(HOST_NAME) + 1)


@lru_cache(maxsize=1)
def cached_bootstrap() -> str:
    """About a kilobyte that runs the host program from the host's cache (Remote.run falls back)."""
    _, digest = _program()
    return CACHED.format(h=digest, cache=CACHE_DIR, missing=MISSING, code=MISSING_EXIT,
                         p=HOST_NAME, n=len(HOST_NAME) + 1)


def command(call, step: str, *, changes: bool = True, hint: str | None = None, held: bool = False) -> Command:
    """The one way to run a host call: the call travels as data too, so a test host can answer it.
    held: the call stays on after its answer, as the operation's holder (Remote.run)."""
    name = calls.name_of(call)
    payload = json.dumps(asdict(call), sort_keys=True)
    script = f"python3 -c {shlex.quote(bootstrap())} {name} {shlex.quote(payload)}"
    cached = f"python3 -c {shlex.quote(cached_bootstrap())} {name} {shlex.quote(payload)}"
    display = f"ayna-host {name} {shlex.quote(payload)}"
    return Command(script, step, changes, hint, display, call=call, held=held, cached=cached)


def step(line: str) -> tuple[str, float, bool, dict | None] | None:
    """One `@@step NAME SECONDS ok|failed [JSON]` line: (name, seconds, ok, detail), else None."""
    if not line.startswith(STEP):
        return None
    name, seconds, status, *rest = line[len(STEP):].split(" ", 3)
    return name, float(seconds), status == "ok", (json.loads(rest[0]) if rest else None)


@dataclass(frozen=True)
class Event:
    """One line of an answer as it arrives: a step begins (START), ends (STEP), or a program says
    something for people (TEXT)."""

    kind: str
    name: str = ""
    seconds: float = 0.0
    ok: bool = True
    detail: dict | None = None
    text: str = ""


BEGINS, ENDS, TEXT = "begins", "ends", "text"


def event(line: str) -> Event | None:
    """What one line of an answer says while the call runs; None for the answer itself (and blanks)."""
    if line.startswith(START):
        return Event(BEGINS, name=line[len(START):].strip())
    ended = step(line)
    if ended is not None:
        name, seconds, ok, detail = ended
        return Event(ENDS, name=name, seconds=seconds, ok=ok, detail=detail)
    if line.startswith(RESULT) or not line.strip():
        return None
    return Event(TEXT, text=line)


def steps(stdout: str) -> list[tuple[str, float, bool, dict | None]]:
    """The `@@step` lines of an answer."""
    return [s for s in map(step, stdout.split("\n")) if s is not None]


def parse(result: Result, *, host: str, step: str) -> dict:
    """The `@@result` object of a host call's answer. A crash or a missing result is an
    OperationFailed naming host and step; a refusal is returned ({"error": ...}) for the caller."""
    for line in reversed(result.stdout.split("\n")):
        if line.startswith(RESULT):
            data = json.loads(line[len(RESULT):])
            if data.get("error") == "crash":
                raise OperationFailed("the host program failed:\n" + _indent(data.get("detail", "")),
                                      host=host, step=step)
            return data
    tail = (result.stderr.strip() or result.stdout.strip())[-2000:]
    raise OperationFailed(f"the host program gave no answer (exit {result.code}):\n{_indent(tail)}",
                          host=host, step=step)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().split("\n"))
