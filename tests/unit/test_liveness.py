"""A link that goes silent (a closed lid, a dropped NAT entry: no reset) frees the lock: the laptop
beats on its holder's stdin (remote/transport.Heartbeat) and keeps SSH alive (remote/ssh.KEEPALIVE);
the holder takes a silence as the laptop gone (hostprog/holder.hold_until_done)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from ayna_fab.hostprog import holder, wire
from ayna_fab.remote import ssh
from ayna_fab.remote.transport import Heartbeat, Remote
from tests.fakehost import FakeRemote, Fault, LaptopDied
from tests.unit.test_carried import held_token
from tests.unit.test_recovery import World, world  # noqa: F401  (the fixture)


@pytest.fixture
def held(world):
    """A deploy whose laptop stopped after prepare: the lock is held for its token."""
    with pytest.raises(LaptopDied):
        world.deploy(faults={"h1": [Fault("prepare", kind="die-after")]})
    previous = signal.getsignal(signal.SIGHUP)   # the holder ignores SIGHUP, as on a host
    r, w = os.pipe()
    yield world, held_token(world), r, w
    FakeRemote.laptop_dead = False   # the next test's laptop is a new one
    signal.signal(signal.SIGHUP, previous)
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_a_holder_that_hears_nothing_takes_the_laptop_for_gone_and_frees_the_lock(held):
    w, token, r, _keep_open = held   # the write end stays open: no end of file, no reset, only silence
    res = holder.hold_until_done(w.layout("h1").root, token, stdin=r, silent_after=0.3)
    assert res["abandoned"] is True and res["outcome"] is None
    assert not w.locked() and w.current() == 1 and w.state(2) == "failed"
    assert w.log()[-1]["result"] == "abandoned" and "fell silent" in w.log()[-1]["reason"]


def test_heartbeats_keep_the_holder_past_many_silences_until_the_laptop_says_done(held):
    w, token, r, wfd = held
    silent_after = 1.0

    def laptop():   # beats for three silences' worth, then ends its operation its own way
        for _ in range(15):
            os.write(wfd, wire.HEARTBEAT)
            time.sleep(silent_after / 5)
        os.write(wfd, wire.DONE)
        os.close(wfd)

    t = threading.Thread(target=laptop)
    t.start()
    res = holder.hold_until_done(w.layout("h1").root, token, stdin=r, silent_after=silent_after)
    t.join()
    assert res == {"abandoned": False}
    assert w.locked(), "a laptop that said done keeps its lock for its own calls"


def test_a_holder_whose_stdin_ends_between_heartbeats_settles_as_a_closed_connection(held):
    w, token, r, wfd = held
    os.write(wfd, wire.HEARTBEAT * 3)
    os.close(wfd)
    res = holder.hold_until_done(w.layout("h1").root, token, stdin=r, silent_after=30)
    assert res["abandoned"] is True and not w.locked()
    assert "connection to the laptop closed" in w.log()[-1]["reason"]


class Channel:
    """A held call's channel: records what the laptop sends."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail_after = fail_after
        self.shut = self.closed = False
        self.status_event = threading.Event()

    def sendall(self, data: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise OSError("channel closed")
        self.sent.append(data)

    def shutdown_write(self) -> None:
        self.shut = True
        self.status_event.set()

    def close(self) -> None:
        self.closed = True


def _until(predicate, within=10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def test_the_laptop_beats_on_its_holders_channel_until_the_operation_ends():
    chan = Channel()
    r = Remote("h1", None)
    r._held, r._heartbeat = chan, Heartbeat(chan, every=0.01)
    _until(lambda: len(chan.sent) >= 3)
    beat = r._heartbeat
    r.end_holder()
    assert set(chan.sent[:-1]) == {wire.HEARTBEAT} and chan.sent[-1] == wire.DONE
    assert chan.shut and chan.closed and r._heartbeat is None
    beats = len(chan.sent)
    _until(lambda: not beat._thread.is_alive())   # the only sender has ended ...
    assert len(chan.sent) == beats, "no beat after done"   # ... with nothing sent after done


def test_a_heartbeat_whose_channel_failed_stops_quietly():
    chan = Channel(fail_after=2)
    beat = Heartbeat(chan, every=0.01)
    _until(lambda: not beat._thread.is_alive())
    assert chan.sent == [wire.HEARTBEAT] * 2
    beat.stop()


def test_the_heartbeat_comes_well_inside_the_holders_silence():
    """The numbers the rule stands on: a silent partition frees the lock within 2 minutes, and a
    live link may be late by several beats before a holder gives up on it."""
    assert wire.SILENT_AFTER <= 90 and wire.SILENT_AFTER >= 5 * wire.HEARTBEAT_EVERY
    assert wire.HEARTBEAT.strip() == b"" and wire.DONE.strip() == b"done"


def test_every_ssh_connection_keeps_itself_alive(monkeypatch):
    keepalive = []
    conn = SimpleNamespace(open=lambda: None, close=lambda: None,
                           transport=SimpleNamespace(set_keepalive=keepalive.append))
    monkeypatch.setattr(ssh, "connection", lambda ep, gateway=None: conn)
    assert ssh.connect(ssh.Endpoint("h1", "127.0.0.1")) is conn
    assert keepalive == [ssh.KEEPALIVE] and 0 < ssh.KEEPALIVE < wire.SILENT_AFTER


def test_a_connection_sends_each_packet_at_once():
    """Nagle's algorithm would hold each small SSH packet for the host's delayed acknowledgement."""
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    try:
        ssh.no_delay(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ssh.no_delay(None)   # a bastion's channel is no socket: left alone
    finally:
        sock.close()
        listener.close()
