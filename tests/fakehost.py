"""A host that answers host-program calls as a real one does, without root, SSH or systemd.

The real host package (ayna_fab/hostprog/) runs in this process against a temporary
base_dir: locks, release directories, records, the flip and the deploy log are real
files. What needs a server is faked: systemd units (a dict), uv and Django (steps
that succeed unless told to fail), health (a release is healthy unless marked broken).
Faults are injected by call name and count: the link lost before a call reaches the
host, or after the host did it but before the answer came back; a Ctrl-C; a step
that fails. Hooks run for real (as processes in the release directories).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import types
from datetime import datetime, timedelta, timezone
from dataclasses import asdict, dataclass, field

from ayna_fab.errors import OperationFailed
import shutil

from ayna_fab.hostprog import switchover as activate, dumps, envwrite, health, holder, hookrunner as hooks, main, preflipcheck as preflight, plan, ports, prepare, store, units
from ayna_fab.remote.transport import Command, LineSink, Remote, Result


@dataclass
class Fault:
    call: str                     # host call name (plan, stage, ...), or "upload" (the stage call's stdin)
    nth: int = 1                  # the nth such call on this host
    kind: str = "link-before"     # link-before | link-after | interrupt | interrupt-raised | fail-step | die-before | die-after
    step: str | None = None       # fail-step: which prepare step fails


@dataclass
class HostState:
    """What a fake host's systemd and apps do."""

    broken: set[int] = field(default_factory=set)       # releases whose health endpoint returns 500
    broken_live: set[int] = field(default_factory=set)  # ... only once live (under their units)
    fail_steps: set[str] = field(default_factory=set)   # prepare steps that fail on this host
    units: dict[str, str] = field(default_factory=dict)  # unit -> active/inactive
    restarts: list[tuple[str, str]] = field(default_factory=list)
    preflights: list[int] = field(default_factory=list)   # releases checked privately before a flip
    kill_worker: bool = False     # the activation's worker is killed when it starts polling health
    late_worker: bool = False     # the activate call dies after its journal, before its worker begins
    late: list = field(default_factory=list)   # ... (its host, that worker), run when the test says
    pending: int = 1              # migrations the database lacks, as Django's migration plan counts them
    clock: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)   # the host's time; a dump moves it a day on
    env_writes: int = 0           # texts the project's env writer (sudo) put in place
    compiler: bool = True         # the host has a C compiler (cc) to build packages without a wheel


class LaptopDied(BaseException):
    """The laptop is gone (SIGKILL, a closed lid): nothing of it runs on, no recovery, no finally."""


class WorkerKilled(BaseException):
    """The host's activation worker was killed: its journal stays as it was."""


class FakeRemote(Remote):
    """A Remote whose commands are answered by the real host program, in this process."""

    laptop_dead = False   # set by a die fault: every later call of any host raises LaptopDied

    def __init__(self, name: str, root: str, state: HostState, faults: list[Fault] | None = None, *,
                 dry_run=False, echo=None) -> None:
        super().__init__(name, None, dry_run=dry_run, echo=echo)
        self.root = root
        self.state = state
        self.faults = list(faults or [])
        self.counts: dict[str, int] = {}
        self.log: list[str] = []
        self.on_line = None                     # where run() hands the answer's lines as they come
        self.stdin: str | bytes | None = None   # the stdin of the command being answered

    def _fault(self, name: str) -> Fault | None:
        self.counts[name] = self.counts.get(name, 0) + 1
        for f in self.faults:
            if f.call == name and f.nth == self.counts[name]:
                self.faults.remove(f)
                return f
        return None

    def run(self, cmd: Command, *, check: bool = True, timeout: float | None = 600, stdin=None,
            on_line=None) -> Result:
        if self.dry_run and cmd.changes:
            self.echo(f"[{self.name}] {cmd.step}:\n    {cmd.display or cmd.script}")
            return Result(0, "", "")
        assert cmd.call is not None, f"not a host call: {cmd.script[:80]}"
        name = type(cmd.call).__name__.lower()
        if name == "stage" and stdin and self._fault("upload"):   # the link drops while the upload travels
            self.round_trips += 1
            raise OperationFailed("cannot upload: injected", host=self.name, step=cmd.step)
        fault = self._fault(name)
        self.round_trips += 1
        if FakeRemote.laptop_dead or (fault and fault.kind == "die-before"):
            FakeRemote.laptop_dead = True   # nothing more reaches any host from a dead laptop
            raise LaptopDied(name)
        if fault and fault.kind == "link-before":
            raise OperationFailed("lost the connection or timed out: injected", host=self.name, step=cmd.step)
        if fault and fault.kind == "fail-step":
            self.state.fail_steps.add(fault.step)
        self.log.append(name)
        self.on_line = on_line   # answer() hands its lines on as they are written
        self.stdin = stdin
        code, out = self.answer(name, cmd.call)
        if fault and fault.kind == "fail-step":
            self.state.fail_steps.discard(fault.step)
        if fault and fault.kind == "die-after":
            FakeRemote.laptop_dead = True
            raise LaptopDied(name)
        if fault and fault.kind == "link-after":
            raise OperationFailed("lost the connection or timed out: injected", host=self.name, step=cmd.step)
        if fault and fault.kind == "interrupt-raised":   # a signal that escaped the command in flight
            raise KeyboardInterrupt()
        if fault and fault.kind == "interrupt":   # as Remote.run: the answer counts, the operation stops next
            self.interrupted = "Ctrl-C"
        return Result(code, out, "")

    def put_bytes(self, data: bytes, path: str, *, step: str) -> None:
        if self.dry_run:
            return
        fault = self._fault("upload")
        if fault:
            raise OperationFailed("cannot upload: injected", host=self.name, step=step)
        with open(path, "wb") as f:
            f.write(data)

    def answer(self, name: str, call) -> tuple[int, str]:
        """The host program's answer to the call; self.stdin (the command's stdin) is its stdin."""
        out = _Relayed(self.on_line)
        with _ONE_AT_A_TIME, contextlib.redirect_stdout(out), self.fakes():
            saved_stdin = sys.stdin   # the call's stdin (a secret travels there), one host at a time
            data = self.stdin if isinstance(self.stdin, bytes) else (self.stdin or "").encode()
            sys.stdin = io.TextIOWrapper(io.BytesIO(data))
            try:
                code = main.run([name, json.dumps(asdict(call))])
            finally:
                sys.stdin = saved_stdin
        return code, out.getvalue()

    def read_text(self, path: str, *, step: str) -> str | None:
        self.round_trips += 1
        try:
            with open(path, newline="") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def on_host(self, work):
        """Run work as a process of this host would (its systemd, uv and apps faked as for calls)."""
        with _ONE_AT_A_TIME, self.fakes():
            return work()

    @contextlib.contextmanager
    def fakes(self):
        st = self.state
        saved = {}

        def patch(module, attr, value):
            saved[(module, attr)] = getattr(module, attr)
            setattr(module, attr, value)

        def control(verb, unit):
            st.restarts.append((verb, unit))
            st.units[unit] = "inactive" if verb == "stop" else "active"
            return None

        class Done:
            returncode = 0

            def __init__(self, unit, verb):
                control(verb, unit)

            def communicate(self):
                return ("", None)

        def poll(checks, expect, deadline, fail_fast=False):
            if st.kill_worker:   # the worker dies: its mark in the lock dies with it
                st.kill_worker = False
                with contextlib.suppress(OSError):
                    os.unlink(f"{self.root}/.deploy-lock/worker-{os.getpid()}.json")
                raise WorkerKilled()
            live = store.current_number(self.root)
            ok = live not in st.broken | st.broken_live
            report = {c["name"]: {"status": 200 if ok else 500, "release": f"v{live}", "ok": ok,
                                  "body": "" if ok else "Server Error"} for c in checks}
            return ok, report

        def run(argv, **kw):
            """uv and the Django program: done, unless the step is to fail."""
            if argv[0] == "sh":
                if "install" in st.fail_steps:
                    return subprocess.CompletedProcess(argv, 1, "", "uv: no matching distribution")
                venv = os.path.join(kw["cwd"], ".venv", "bin")
                os.makedirs(venv, exist_ok=True)
                open(os.path.join(venv, "python"), "w").close()
                return subprocess.CompletedProcess(argv, 0, "", "")
            steps = json.loads(argv[-1])["steps"]
            if steps == ["pending"]:
                return subprocess.CompletedProcess(argv, 0, f"@@step pending 0.010 ok\n@@pending {st.pending}", "")
            lines = []
            for s in steps:
                lines.append(f"@@start {s}")   # as django_steps.step begins each
                ok = s not in st.fail_steps
                lines.append(f"@@step {s} 0.010 {'ok' if ok else 'failed'}")
                if not ok:
                    return subprocess.CompletedProcess(argv, 1, "\n".join(lines), f"{s} exploded")
            return subprocess.CompletedProcess(argv, 0, "\n".join(lines), "")

        def streamed(argv, each_line, **kw):
            """The same, its output handed on line by line as prepare's own does (stderr joined)."""
            p = run(argv, **kw)
            said = p.stdout + ("\n" + p.stderr if p.stderr else "")
            for line in said.splitlines():
                each_line(line)
            return subprocess.CompletedProcess(argv, p.returncode, said, "")

        def dump(kind, where, partial):
            """pg_dump, faked: a file with the host's clock in its name, then a day passes."""
            if "backup" in st.fail_steps:
                raise main.wire.Refused("pg_dump", "pg_dump exited 1: connection refused")
            with open(partial, "w") as f:
                f.write("dump\n")
            st.clock += timedelta(days=1)

        def check(servers, env, cwd, expect, timeout, started=None):
            number = int(expect[1:])
            ok = number not in st.broken
            st.preflights.append(number)
            return ok, {s["name"]: {"status": 200 if ok else 500, "release": expect, "ok": ok,
                                    "body": "" if ok else "Server Error"} for s in servers}

        def verify(unit_names, rel, deadline, restarts_before=None, settle_units=()):
            return True, {u: {"pids": 1, "stale": [], "active": "active"} for u in unit_names}

        patch(units, "state", lambda unit: st.units.get(unit, "inactive"))
        patch(units, "restarts", lambda unit: 0)
        patch(units, "states", lambda names: {u: {"state": st.units.get(u, "inactive"), "restarts": 0, "cgroup": "", "up": None}
                                              for u in names})
        patch(units, "control", control)
        patch(units, "control_async", lambda verb, unit: Done(unit, verb))
        patch(health, "poll", poll)
        patch(activate, "verify", verify)
        def detach(root, work):   # the worker, carried out in this call
            if not st.late_worker:
                return work()
            st.late_worker = False
            st.late.append((self, work))
            FakeRemote.laptop_dead = True
            raise LaptopDied("activate")

        def sudo_writer(argv, input, **kw):
            """The project's env writer through sudo: the text in place, as it would put it."""
            with open(os.path.join(self.root, "shared", ".env.production"), "wb") as f:
                f.write(input)
            st.env_writes += 1
            return subprocess.CompletedProcess(argv, 0, b"", b"")

        patch(activate, "detach", detach)
        patch(envwrite, "subprocess", types.SimpleNamespace(run=sudo_writer, PIPE=subprocess.PIPE,
                                                             STDOUT=subprocess.STDOUT))
        patch(holder, "hold_until_done", lambda root, token: None)       # a holder lives as long as a connection
        patch(preflight, "check", check)
        patch(preflight, "start", lambda servers, env, cwd: None)   # nothing started ahead here
        patch(prepare, "subprocess", types.SimpleNamespace(run=run, CompletedProcess=subprocess.CompletedProcess))
        patch(prepare, "_streamed", streamed)
        patch(dumps, "_dump", dump)
        patch(dumps, "now", lambda: st.clock)
        patch(hooks, "as_root", lambda: False)   # tests may run as root; hooks really run, in the temp dirs
        patch(plan, "shutil", types.SimpleNamespace(
            which=lambda name: None if name == "cc" and not st.compiler else f"/usr/bin/{name}", rmtree=shutil.rmtree))
        patch(plan, "platform", types.SimpleNamespace(machine=lambda: "x86_64"))
        patch(plan, "python_version", lambda: "3.11.2")                  # a Debian 12 host's python3
        patch(ports, "listeners", lambda a: {"listeners": [], "sockets": {}})   # nothing else runs here
        try:
            yield
        finally:
            for (module, attr), value in saved.items():
                setattr(module, attr, value)


class _Relayed(io.StringIO):
    """The host program's stdout, kept whole and handed on line by line as it is written (Remote.run's on_line)."""

    def __init__(self, on_line=None) -> None:
        super().__init__()
        self.sink = LineSink(on_line)
        self.laptop = sys.stdout   # the laptop's stdout: the host's is this object only while it answers

    def write(self, text: str) -> int:
        inner, sys.stdout = sys.stdout, self.laptop   # what the laptop prints of a line is the laptop's
        try:
            self.sink.write(text)
        finally:
            sys.stdout = inner
        return super().write(text)


_ONE_AT_A_TIME = threading.Lock()  # the fakes patch shared modules: one host answers at a time
