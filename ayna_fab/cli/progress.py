"""An operation's steps as they happen on its hosts: each step's line when it ends there, and a
step still running after FIRST_AFTER seconds shown with how long it has run.

On a terminal (`Live`) the running steps sit in one live region under the finished lines, redrawn
a few times a second; elsewhere (`Plain`: logs, CI) a running step gets a line of its own at
FIRST_AFTER seconds and every PLAIN_EVERY seconds after, so a log grows while a long install runs.
Events come from the hosts' answers as they arrive (ops/runner.HostRun.hear), per host, from
several threads in a fleet; every line names its host.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from ayna_fab.cli import output
from ayna_fab.ops.runner import running_line, step_line

FIRST_AFTER = 2.0    # a step shorter than this is only seen when it ends
PLAIN_EVERY = 10.0   # without a terminal: a line per running step this often
TICK = 0.5           # how often the clock is looked at


class Running:
    """The steps running on each host, when each began, and when a line last said so. Pure: the
    time is always given, so the rendering is tested without waiting."""

    def __init__(self) -> None:
        self._began: dict[tuple[str, str], float] = {}
        self._said: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def begin(self, host: str, step: str, now: float) -> None:
        with self._lock:
            self._began[(host, step)] = now
            self._said.pop((host, step), None)

    def end(self, host: str, step: str) -> None:
        with self._lock:
            self._began.pop((host, step), None)
            self._said.pop((host, step), None)

    def end_host(self, host: str) -> None:
        """Nothing more runs on host (its call has answered): its steps are no longer running."""
        with self._lock:
            for key in [k for k in self._began if k[0] == host]:
                self._began.pop(key)
                self._said.pop(key, None)

    def shown(self, now: float) -> list[tuple[str, str, float]]:
        """(host, step, seconds so far) of every step running for FIRST_AFTER or longer, oldest first."""
        with self._lock:
            return [(h, s, now - t) for (h, s), t in sorted(self._began.items(), key=lambda kv: kv[1])
                    if now - t >= FIRST_AFTER]

    def due(self, now: float, every: float = PLAIN_EVERY) -> list[tuple[str, str, float]]:
        """The running steps to mention now: at FIRST_AFTER seconds, then every `every` seconds."""
        out = []
        for host, step, seconds in self.shown(now):
            with self._lock:
                said = self._said.get((host, step))
                if said is not None and now - said < every:
                    continue
                self._said[(host, step)] = now
            out.append((host, step, seconds))
        return out


class _Ticking:
    """A thread that calls tick() every TICK seconds between __enter__ and __exit__."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.running = Running()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * TICK)

    def _loop(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.tick()
            except Exception:   # progress is for people: it never stops an operation
                pass

    def tick(self) -> None:
        raise NotImplementedError

    def begin(self, host: str, step: str) -> None:
        self.running.begin(host, step, self.clock())

    def idle(self, host: str) -> None:
        """host's call has answered: a step it began and never ended (one left behind by a failure) is over."""
        self.running.end_host(host)


class Plain(_Ticking):
    """Lines only: what logs and CI get."""

    def __init__(self, say: Callable[[str], None] = output.say, clock: Callable[[], float] = time.monotonic,
                 every: float = PLAIN_EVERY) -> None:
        super().__init__(clock)
        self.say = say
        self.every = every
        self._print = threading.RLock()

    def _out(self, text: str) -> None:
        with self._print:
            self.say(text)

    def step(self, host: str, step: str, seconds: float, ok: bool, note: str = "") -> None:
        self.running.end(host, step)
        self._out(step_line(host, step, seconds, ok, note))

    def text(self, host: str, line: str) -> None:
        self._out(f"[{host}] {line}")

    def message(self, text: str) -> None:
        self._out(text)

    def tick(self) -> None:
        for host, step, seconds in self.running.due(self.clock(), self.every):
            self._out(running_line(host, step, seconds))


class Live(_Ticking):
    """A terminal: finished lines print above a live region that shows each running step and its
    time, redrawn as the clock moves."""

    def __init__(self, console=None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.console = console or output._console(sys.stdout)
        self.live = None
        self._print = threading.RLock()

    def __enter__(self):
        from rich.live import Live as RichLive
        self.live = RichLive(self.render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.__enter__()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        with self._print:
            self.live.__exit__(*exc)

    def render(self):
        """The live region: one dim line per step running for FIRST_AFTER seconds or more."""
        from rich.text import Text
        lines = [running_line(output.visible(h), output.visible(s), secs) for h, s, secs in
                 self.running.shown(self.clock())]
        return Text("\n".join(lines), style="dim")

    def _out(self, text: str, style: str | None = None) -> None:
        from rich.text import Text
        with self._print:
            if self.live is not None:   # first: printing redraws the live region (as last drawn) under the line
                self.live.update(self.render(), refresh=True)
            self.console.print(Text(output.visible(text), style=style or ""), highlight=False)

    def step(self, host: str, step: str, seconds: float, ok: bool, note: str = "") -> None:
        self.running.end(host, step)
        self._out(step_line(host, step, seconds, ok, note), None if ok else "red")

    def text(self, host: str, line: str) -> None:
        self._out(f"[{host}] {line}", "dim")

    def message(self, text: str) -> None:
        self._out(text)

    def tick(self) -> None:
        with self._print:
            if self.live is not None:
                self.live.update(self.render(), refresh=True)


def for_operation(*, terminal: bool) -> Plain | Live:
    """What shows an operation's progress: live on a terminal, lines otherwise."""
    return Live() if terminal else Plain()
