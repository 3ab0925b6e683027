"""The host program's health poll against a real local HTTP server answering a scripted sequence:
what counts as healthy (a 2xx that reports the expected release, or none), what a probe reports
(status, release, a bounded and decoded body, why nothing answered), and when the wait ends."""

from __future__ import annotations

import http.server
import os
import socketserver
import tempfile
import threading
import time

import pytest

from ayna_fab.hostprog import health
from tests.ports import reserved_port

FAR = 60   # a deadline no passing poll comes near: the verdicts below never depend on the clock


class Endpoint:
    """A health endpoint answering each (status, body) of `answers` in turn, the last one forever."""

    def __init__(self, *answers):
        self.answers, self.probes = list(answers), 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = endpoint.answers[min(endpoint.probes, len(endpoint.answers) - 1)]
                endpoint.probes += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/health"

    def checks(self):
        return [{"name": "web", "url": self.url}]


@pytest.fixture
def endpoint():
    made = []

    def make(*answers):
        made.append(Endpoint(*answers))
        return made[-1]

    yield make
    for e in made:
        e.server.shutdown()
        e.server.server_close()


def test_a_2xx_reporting_the_expected_release_passes_and_is_reported(endpoint):
    e = endpoint((200, b'{"release": "v3"}'))
    assert health.poll(e.checks(), "v3", time.monotonic() + FAR) == (
        True, {"web": {"status": 200, "release": "v3", "ok": True, "body": '{"release": "v3"}',
                       "asked": e.url}})


def test_a_2xx_reporting_another_release_fails_at_the_deadline(endpoint):
    e = endpoint((200, b'{"release": "v2"}'))
    ok, report = health.poll(e.checks(), "v3", time.monotonic() - 1)
    assert (ok, report["web"]["ok"], report["web"]["release"]) == (False, False, "v2")


def test_a_2xx_reporting_no_release_passes_whatever_release_is_expected(endpoint):
    e = endpoint((200, b"fine"))
    assert health.poll(e.checks(), "v3", time.monotonic() - 1)[0] is True


def test_with_no_release_expected_any_reported_release_passes(endpoint):
    e = endpoint((200, b'{"release": "v9"}'))
    assert health.poll(e.checks(), None, time.monotonic() - 1)[0] is True


@pytest.mark.parametrize("status", [300, 404])
def test_an_answer_outside_2xx_is_not_healthy(endpoint, status):
    e = endpoint((status, b"no"))
    ok, report = health.poll(e.checks(), None, time.monotonic() - 1)
    assert (ok, report["web"]["status"], report["web"]["ok"]) == (False, status, False)


def test_the_wait_ends_unhealthy_once_the_deadline_has_passed(endpoint):
    e = endpoint((503, b"starting"))
    ok, _ = health.poll(e.checks(), None, time.monotonic() - 1)
    assert (ok, e.probes) == (False, 1)


def test_by_default_a_5xx_is_waited_out(endpoint):
    e = endpoint((503, b"starting"), (200, b'{"release": "v3"}'))
    assert health.poll(e.checks(), "v3", time.monotonic() + FAR)[0] is True
    assert e.probes == 2


def test_the_report_keeps_the_first_300_characters_of_the_body(endpoint):
    e = endpoint((200, b"x" * 1000))
    assert health.poll(e.checks(), None, time.monotonic() + FAR)[1]["web"]["body"] == "x" * 300


@pytest.mark.parametrize("status", [200, 500])
def test_a_probe_reads_at_most_4096_bytes(endpoint, status):
    e = endpoint((status, b"y" * 5000))
    assert health.probe(e.url) == (status, "y" * 4096)


@pytest.mark.parametrize("status", [200, 500])
def test_a_probe_decodes_bytes_that_are_not_utf8_as_replacement_characters(endpoint, status):
    e = endpoint((status, b"ok \xff"))
    assert health.probe(e.url) == (status, "ok \ufffd")


def test_a_probe_that_reaches_nothing_says_why():
    status, body = health.probe(f"http://127.0.0.1:{reserved_port()}/health")
    assert status is None and "refused" in body


def test_a_probe_never_waits_without_a_bound(monkeypatch):
    seen = {}

    def open_(url, timeout=None):
        seen["timeout"] = timeout
        raise OSError("not reached")

    monkeypatch.setattr(health._OPENER, "open", open_)
    health.probe("http://127.0.0.1:1/health")
    assert seen["timeout"] is not None and 0 < seen["timeout"] <= 5


@pytest.fixture
def slot_socket():
    """A slot's own socket: an HTTP server on a Unix socket whose answer(path) gives (status,
    headers, body); make(answer) returns its path and the requests it saw (path, Host, proto)."""
    made = []

    def make(answer):
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers["Host"], self.headers["X-Forwarded-Proto"]))
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        path = tempfile.mktemp(dir="/tmp", prefix="slot", suffix=".sock")
        server = UnixServer(path, Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append((server, path))
        return path, seen

    yield make
    for server, path in made:
        server.shutdown()
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)


def test_a_slot_is_asked_on_its_own_unix_socket_as_its_url_would_be_asked(slot_socket):
    """The activation's probe of a new slot: HTTP over the slot's Unix socket, with the URL's path,
    query and Host (Django's ALLOWED_HOSTS sees what it sees on the port), never the URL's port."""
    path, seen = slot_socket(lambda _: (200, {}, b'{"release": "v3"}'))
    # the URL names a port nothing listens on: only the socket can answer
    port = reserved_port()
    checks = [{"name": "web", "url": f"http://127.0.0.1:{port}/health/?deep=1", "unix": path}]
    ok, report = health.poll(checks, "v3", time.monotonic() + FAR)
    assert ok and report["web"]["release"] == "v3" and report["web"]["asked"] == path
    assert seen == [("/health/?deep=1", f"127.0.0.1:{port}", "https")]
    os.unlink(path)
    status, body = health.probe("http://127.0.0.1:1/health/", path)   # gone: no answer, and why
    assert status is None and body


def test_a_redirect_on_the_slot_socket_is_followed_there_as_urllib_follows_it_on_the_port(slot_socket):
    """A health URL that redirects (a site whose / answers 301 to /catalog/) is judged where it
    lands, on the slot's socket as on the port: the same verdict either way."""
    pages = {"/": (301, {"Location": "/catalog/"}, b""), "/catalog/": (200, {}, b"catalog")}
    path, seen = slot_socket(lambda page: pages.get(page, (404, {}, b"elsewhere")))
    assert health.probe(f"http://127.0.0.1:{reserved_port()}/", path) == (200, "catalog")
    assert [page for page, _, _ in seen] == ["/", "/catalog/"]
