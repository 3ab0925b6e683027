"""The runner's parts that its operation tests pass through without asserting: the exact progress
lines, the flip batches, the reasons and the signal handling. Each test here was seen failing
with one of mutmut's one-line bugs in ops/runner.py (docs/mutation-report.md)."""

from __future__ import annotations

import signal
import threading

from ayna_fab.errors import OperationFailed
from ayna_fab.ops import runner


# --- progress lines ------------------------------------------------------------------------------

def test_a_step_line_is_the_host_the_step_padded_to_13_and_its_seconds():
    assert runner.step_line("h1", "install", 3.0) == "[h1] install         3.00s"
    assert runner.step_line("h1", "install", 3.0, ok=False) == "[h1] install         3.00s  FAILED"
    assert runner.step_line("h1", "backup", 0.5, note="db.dump (2.0 KiB)") == \
        "[h1] backup          0.50s  db.dump (2.0 KiB)"


def test_a_running_line_shows_whole_seconds():
    assert runner.running_line("h1", "install", 12.4) == "[h1] install           12s  running"


def test_a_step_describes_its_backup_its_skip_or_its_reused_venv():
    assert runner.describe_step({"backup": "v3.dump", "bytes": 2048}) == "v3.dump (2.0 KiB)"
    assert runner.describe_step({"skipped": "no migration pending, so no dump"}) == \
        "no migration pending, so no dump"
    assert runner.describe_step({"skipped": True}) == ""
    assert runner.describe_step({"venv": "reused", "from": "v2"}) == \
        "the lock is unchanged: v2's venv, hard-linked"
    assert runner.describe_step({"venv": "new"}) == ""
    assert runner.describe_step(None) == "" and runner.describe_step({}) == ""


def test_a_reason_names_an_interrupt_an_error_or_an_exceptions_type():
    assert runner.reason(KeyboardInterrupt()) == "interrupted (Ctrl-C)"
    assert runner.reason(KeyboardInterrupt("SIGTERM")) == "interrupted (SIGTERM)"
    assert runner.reason(OperationFailed("it broke", host="h1", step="x")) == "it broke"
    assert runner.reason(ValueError("bad")) == "ValueError: bad"


# --- flip batches --------------------------------------------------------------------------------

def test_batches_are_all_n_at_a_time_or_a_percentage_rounded_up():
    hosts = ["h1", "h2", "h3", "h4", "h5"]
    assert runner.batches([], "all") == []
    assert runner.batches(hosts, "all") == [hosts]
    assert runner.batches(hosts, "2") == [["h1", "h2"], ["h3", "h4"], ["h5"]]
    assert runner.batches(hosts, "1") == [[h] for h in hosts]
    assert runner.batches(hosts, "30%") == [["h1", "h2"], ["h3", "h4"], ["h5"]]   # 1.5 -> 2
    assert runner.batches(hosts, "20%") == [[h] for h in hosts]
    assert runner.batches(hosts, "100%") == [hosts]


def test_a_batch_is_at_least_one_host_and_at_most_all():
    hosts = ["h1", "h2", "h3"]
    assert runner.batches(hosts, "0") == [[h] for h in hosts]
    assert runner.batches(hosts, "1%") == [[h] for h in hosts]
    assert runner.batches(hosts, "9") == [hosts]


# --- signals -------------------------------------------------------------------------------------

def test_sigterm_raises_an_interrupt_named_sigterm_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with runner.signals_as_interrupts():
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and handler is not before
        try:
            handler(signal.SIGTERM, None)
        except KeyboardInterrupt as exc:
            assert exc.args == ("SIGTERM",)
        else:
            raise AssertionError("SIGTERM did not interrupt")
    assert signal.getsignal(signal.SIGTERM) is before


def test_no_interrupts_ignores_ctrl_c_and_sigterm_then_puts_their_handlers_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with runner.no_interrupts():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert {s: signal.getsignal(s) for s in before} == before


def test_off_the_main_thread_the_signal_handlers_are_left_alone():
    """signal.signal raises off the main thread: there both are no-ops."""
    seen = []

    def off_main():
        try:
            with runner.signals_as_interrupts():
                seen.append(signal.getsignal(signal.SIGTERM))
            with runner.no_interrupts():
                seen.append(signal.getsignal(signal.SIGINT))
        except BaseException as exc:   # noqa: BLE001 (reported below)
            seen.append(exc)

    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    worker = threading.Thread(target=off_main)
    worker.start()
    worker.join()
    assert seen == list(before)
