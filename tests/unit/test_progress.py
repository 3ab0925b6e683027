"""Live progress: the host's step events as they travel (framing), as they arrive on the laptop
(HostRun.hear, Remote.run's on_line), and as they are drawn (cli/progress.py), with a clock the
test moves by hand."""

from __future__ import annotations

import io
import types

import pytest
from rich.console import Console

from ayna_fab.cli import progress
from ayna_fab.hostprog import prepare, wire
from ayna_fab.ops import runner
from ayna_fab.ops.deploy import Deploy, Options, resolve
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Command, LineSink, Remote, Result
from tests.polling import wait_until
from tests.unit.test_recovery import World


# --- framing ----------------------------------------------------------------------------------------

def test_each_line_of_an_answer_is_one_event():
    assert hostcall.event("@@start install") == hostcall.Event(hostcall.BEGINS, name="install")
    ended = hostcall.event('@@step backup 1.250 ok {"backup": "x.dump", "bytes": 10}')
    assert (ended.kind, ended.name, ended.seconds, ended.ok, ended.detail) == (
        hostcall.ENDS, "backup", 1.25, True, {"backup": "x.dump", "bytes": 10})
    assert hostcall.event("@@step migrate 0.500 failed").ok is False
    assert hostcall.event("install: Resolved 40 packages in 3ms") == hostcall.Event(
        hostcall.TEXT, text="install: Resolved 40 packages in 3ms")
    assert hostcall.event('@@result {"ok": true}') is None and hostcall.event("") is None


def test_the_host_writes_a_start_and_an_end_per_step(capsys):
    wire.start("install")
    wire.text("Resolved 3 packages")
    wire.step("install", 1.5)
    lines = capsys.readouterr().out.splitlines()
    assert [hostcall.event(x).kind for x in lines] == [hostcall.BEGINS, hostcall.TEXT, hostcall.ENDS]


def test_a_line_sink_hands_on_whole_lines_across_chunks_and_split_characters():
    got = []
    sink = LineSink(got.append)
    sink.write("@@start inst")
    assert got == []
    sink.write("all\r\nhalf")
    sink.feed("é done\n".encode()[:1])    # half of a two-byte character
    sink.feed("é done\n".encode()[1:] + b"tail")
    sink.finish()
    assert got == ["@@start install", "halfé done", "tail"]


def test_a_display_that_fails_never_fails_the_command():
    def broken(line):
        raise RuntimeError("display")

    sink = LineSink(broken)
    sink.write("one\ntwo\n")    # nothing raised


class _Conn:
    """A Fabric connection whose command writes its answer to invoke's out_stream in pieces."""

    def __init__(self, chunks, log):
        self.chunks, self.log = chunks, log

    def run(self, script, **kw):
        assert kw["hide"] == "stderr"    # stdout goes to the sink as it comes
        for chunk in self.chunks:
            kw["out_stream"].write(chunk)
            self.log.append(("chunk", chunk))
        return types.SimpleNamespace(exited=0, stdout="".join(self.chunks), stderr="")


def test_remote_run_hands_on_each_line_while_the_command_runs():
    log = []
    remote = Remote("h1", _Conn(["@@start install\n@@step ins", "tall 2.000 ok\n", '@@result {"x": 1}\n'], log))
    res = remote.run(Command("true", "prepare"), on_line=lambda line: log.append(("line", line)))
    assert log == [("line", "@@start install"), ("chunk", "@@start install\n@@step ins"),
                   ("line", "@@step install 2.000 ok"), ("chunk", "tall 2.000 ok\n"),
                   ("line", '@@result {"x": 1}'), ("chunk", '@@result {"x": 1}\n')]
    assert res.stdout.endswith('@@result {"x": 1}\n')


# --- arriving -------------------------------------------------------------------------------------

class _Streaming(Remote):
    """A Remote that answers one call with step lines, each handed on before the call returns."""

    def __init__(self, lines, log):
        super().__init__("h1", None)
        self.lines, self.log, self.stream = lines, log, True

    def run(self, cmd, *, check=True, timeout=600, stdin=None, on_line=None):
        for line in self.lines:
            if on_line is not None and self.stream:
                on_line(line)
        self.log.append("returned")
        return Result(0, "\n".join(self.lines) + "\n", "")


def _run_of(remote, said, progress_=None):
    return runner.HostRun(config=None, host=types.SimpleNamespace(name="h1"), project=None, remote=remote,
                          owner={"token": "t"}, say=said.append, progress=progress_)


ANSWER = ["@@start install", "install: Resolved 2 packages", "@@step install 3.000 ok",
          '@@step backup 0.500 ok {"skipped": "no migration pending, so no dump"}', '@@result {"ok": true}']


def test_each_step_is_shown_as_it_ends_on_the_host_not_when_the_call_returns():
    log: list[str] = []
    t = _run_of(_Streaming(ANSWER, log), log)
    assert t.call(Command("x", "prepare")) == {"ok": True}
    assert log == ["[h1] install: Resolved 2 packages",
                   runner.step_line("h1", "install", 3.0),
                   runner.step_line("h1", "backup", 0.5, note="no migration pending, so no dump"),
                   "returned"]
    assert t.steps == {"install": 3.0, "backup": 0.5}


def test_a_transport_that_does_not_stream_still_shows_every_step_once():
    log: list[str] = []
    remote = _Streaming(ANSWER, log)
    remote.stream = False
    t = _run_of(remote, log)
    t.call(Command("x", "prepare"))
    assert log == ["returned", runner.step_line("h1", "install", 3.0),
                   runner.step_line("h1", "backup", 0.5, note="no migration pending, so no dump")]


def test_a_failed_step_is_the_runs_failed_step():
    log: list[str] = []
    t = _run_of(_Streaming(["@@step install 1.000 ok", "@@step migrate 2.000 failed", '@@result {"failed": "migrate"}'],
                           log), log)
    t.call(Command("x", "prepare"))
    assert t.failed_step == "migrate" and "FAILED" in log[1]


# --- drawing ----------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_running_step_is_mentioned_after_two_seconds_then_every_ten_without_a_terminal():
    clock, said = Clock(), []
    plain = progress.Plain(said.append, clock=clock)
    plain.begin("h1", "install")
    for now in (100.0, 101.9):
        clock.now = now
        plain.tick()
    assert said == []
    clock.now = 102.0
    plain.tick()
    assert said == [runner.running_line("h1", "install", 2.0)] and "running" in said[0]
    for now in (103.0, 111.9):
        clock.now = now
        plain.tick()
    assert len(said) == 1
    clock.now = 112.0
    plain.tick()
    assert said[-1] == runner.running_line("h1", "install", 12.0)
    plain.step("h1", "install", 12.5, True)
    clock.now = 140.0
    plain.tick()
    assert said[-1] == runner.step_line("h1", "install", 12.5)


def test_a_fleets_running_steps_are_named_by_host_and_a_short_step_is_only_seen_ending():
    clock, said = Clock(), []
    plain = progress.Plain(said.append, clock=clock)
    plain.begin("h1", "install")
    plain.begin("h2", "install")
    clock.now = 101.0
    plain.step("h2", "install", 1.0, True)
    plain.begin("h2", "backup")
    clock.now = 102.5
    plain.tick()
    assert said == [runner.step_line("h2", "install", 1.0), runner.running_line("h1", "install", 2.5)]
    plain.text("h2", "install: Installed 40 packages")
    assert said[-1] == "[h2] install: Installed 40 packages"


def test_a_step_left_running_by_a_call_that_answered_is_no_longer_shown():
    clock, said = Clock(), []
    plain = progress.Plain(said.append, clock=clock)
    plain.begin("h1", "backup")    # began beside an install that failed: it never reports an end
    plain.idle("h1")
    clock.now = 130.0
    plain.tick()
    assert said == []


def test_on_a_terminal_the_running_step_and_its_time_are_one_live_line():
    clock = Clock()
    buf = io.StringIO()
    live = progress.Live(Console(file=buf, force_terminal=True, width=100), clock=clock)
    live.begin("h1", "install")
    clock.now = 101.0
    assert live.render().plain == ""
    clock.now = 107.0
    assert live.render().plain == runner.running_line("h1", "install", 7.0)
    live.step("h1", "install", 7.2, True)
    assert live.render().plain == "" and runner.step_line("h1", "install", 7.2) in buf.getvalue()


def test_host_text_on_the_live_line_is_shown_never_obeyed():
    clock = Clock()
    live = progress.Live(Console(file=io.StringIO(), force_terminal=True, width=100), clock=clock)
    live.begin("h1", "evil\x1b]52;c;AAAA\x07")
    clock.now = 105.0
    assert "\x1b" not in live.render().plain and "\\x1b" in live.render().plain


def test_the_ticker_draws_without_being_asked(monkeypatch):
    monkeypatch.setattr(progress, "TICK", 0.01)
    clock, said = Clock(), []
    plain = progress.Plain(said.append, clock=clock)
    plain.begin("h1", "install")
    clock.now = 103.0
    with plain:
        wait_until(lambda: said, 10)
    assert said[0] == runner.running_line("h1", "install", 3.0)


# --- the host's side ----------------------------------------------------------------------------

def test_install_output_is_handed_on_line_by_line_as_it_comes(tmp_path):
    got = []
    p = prepare._streamed(["sh", "-c", "echo one; echo two >&2; exit 3"], got.append, cwd=tmp_path)
    assert got == ["one", "two"] and p.returncode == 3 and p.stdout == "one\ntwo\n"


def test_the_django_programs_steps_are_reported_as_they_begin_and_end(capsys):
    steps = prepare.Steps()
    for line in ("@@start check", "System check identified no issues", "@@step check 0.400 ok",
                 "@@start migrate", "@@step migrate 1.000 failed"):
        prepare._relay(line, steps)
    out = capsys.readouterr().out.splitlines()
    assert out == ["@@start check", "@@step check 0.400 ok", "@@start migrate"]
    assert steps.result["steps"] == {"check": 0.4}    # the failure is reported with its output, after


def test_a_prepare_call_begins_each_step_before_it_ends(tmp_path):
    """The fake host's prepare: every step that ends was announced first, in the answer's order."""
    w = World(tmp_path, hosts=("h1",))
    seen = []
    targets = w.targets(("h1",), {})
    source, revision = resolve(w.project, "HEAD")
    deploy = Deploy(w.cfg, w.project, source, revision, Options(), targets)

    class Record:
        def begin(self, host, step):
            seen.append(("begin", step))

        def step(self, host, step, seconds, ok, note=""):
            seen.append(("end", step))

        def text(self, host, line):
            seen.append(("text", line))

        def message(self, text):
            pass

        def idle(self, host):
            pass

    targets[0].progress = Record()
    runner.run(deploy, w.said.append)
    ends = [s for kind, s in seen if kind == "end"]
    assert {"upload", "install", "check", "migrate", "collectstatic"} <= set(ends)   # a first deploy: no backup
    for name in ("upload", "install", "check", "migrate", "collectstatic"):
        assert seen.index(("begin", name)) < seen.index(("end", name)), name


@pytest.mark.parametrize("kind", ["plain", "live"])
def test_for_operation_picks_live_only_on_a_terminal(kind):
    shown = progress.for_operation(terminal=kind == "live")
    assert isinstance(shown, progress.Live if kind == "live" else progress.Plain)


def test_install_script_lets_uv_say_what_it_installs():
    assert "uv pip sync --python" in prepare.install_script("/r/v2", None)   # not --quiet: its lines are the output


def test_on_a_terminal_a_step_that_ends_leaves_the_live_region_at_once():
    clock, buf = Clock(), io.StringIO()
    live = progress.Live(Console(file=buf, force_terminal=True, width=100), clock=clock)
    with live:
        live.begin("h1", "install")
        clock.now = 105.0
        live.tick()
        live.step("h1", "install", 5.5, True)
        live.message("next")
    drawn = buf.getvalue()
    assert runner.running_line("h1", "install", 5.0) in drawn
    assert "running" not in drawn.split(runner.step_line("h1", "install", 5.5))[1]


def test_an_activation_followed_on_the_host_says_when_health_begins(monkeypatch, capsys):
    from ayna_fab.hostprog import journal, switchover
    states = iter([{"phase": "flip", "steps": []},
                   {"phase": "health", "steps": [["flip", 0.01, True]]},
                   {"phase": "health", "steps": [["flip", 0.01, True]]},
                   {"phase": "done", "outcome": "live", "number": 2,
                    "steps": [["flip", 0.01, True], ["restart", 1.0, True], ["health", 9.0, True]]}])
    monkeypatch.setattr(journal, "of", lambda root, token: next(states))
    monkeypatch.setattr(switchover, "FOLLOW_POLL", 0)
    assert switchover.follow("/r", "t")["ok"]
    assert capsys.readouterr().out.splitlines() == [
        "@@step flip 0.010 ok", "@@start health", "@@step restart 1.000 ok", "@@step health 9.000 ok"]
