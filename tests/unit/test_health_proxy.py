"""Health checks never go through a proxy from the host's environment: with http_proxy set to a
proxy that answers 200 to anything, a dead service must still fail its check (issue: a dead
service passed behind a proxy)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.ports import reserved_port

REPO = Path(__file__).resolve().parents[2]


def serve(status: int) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"release": "v1"}')

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def closed_port() -> int:
    return reserved_port()   # refuses connections, and no one else can listen there meanwhile


def poll_with_proxy(url: str, proxy: str) -> dict:
    """health.poll in a fresh interpreter whose environment names the proxy from the start."""
    code = ("import json, sys, time; sys.path.insert(0, sys.argv[1]); from ayna_fab.hostprog import health; "
            "ok, rep = health.poll([{'name': 'web', 'url': sys.argv[2]}], None, time.monotonic() + 1); "
            "print(json.dumps({'ok': ok, 'status': rep['web']['status']}))")
    env = {"PATH": "/usr/bin:/bin", "http_proxy": proxy, "HTTP_PROXY": proxy, "all_proxy": proxy}
    out = subprocess.run([sys.executable, "-c", code, str(REPO), url], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def test_a_dead_service_fails_its_check_even_behind_a_proxy_that_answers_everything():
    proxy = serve(200)
    try:
        dead = f"http://127.0.0.1:{closed_port()}/health"
        assert poll_with_proxy(dead, f"http://127.0.0.1:{proxy.server_port}") == {"ok": False, "status": None}
    finally:
        proxy.shutdown()


def test_a_live_service_is_reached_directly_not_through_the_proxy():
    app, proxy = serve(200), serve(502)
    try:
        url = f"http://127.0.0.1:{app.server_port}/health"
        assert poll_with_proxy(url, f"http://127.0.0.1:{proxy.server_port}") == {"ok": True, "status": 200}
    finally:
        app.shutdown()
        proxy.shutdown()


def test_a_probe_says_https_as_the_proxy_in_front_does():
    """Production settings redirect plain HTTP to https:// (SECURE_SSL_REDIRECT behind a trusted
    X-Forwarded-Proto): a probe is answered as users are, not sent to a port nothing listens on."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("X-Forwarded-Proto") != "https":
                self.send_response(301)
                self.send_header("Location", f"https://127.0.0.1:{self.server.server_port}/health/")
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"release": "v1"}')

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from ayna_fab.hostprog import health
        assert health.probe(f"http://127.0.0.1:{server.server_port}/health/") == (200, '{"release": "v1"}')
    finally:
        server.shutdown()
