"""Health endpoints, polled from the host itself (services bind 127.0.0.1)."""

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

# Health checks go straight to 127.0.0.1, never through a proxy from the host's environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# ... but say what the HTTPS proxy in front says of every request it forwards: production settings
# that redirect plain HTTP (SECURE_SSL_REDIRECT, trusting SECURE_PROXY_SSL_HEADER) answer a probe
# as they answer users, not with a redirect to an https:// the services never listen on.
HEADERS = {"X-Forwarded-Proto": "https"}


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: a slot's own socket (provision/unitfiles.py, PROBE_DIR)."""

    def __init__(self, path, host, timeout):
        super().__init__(host, timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def probe(url, unix=None):
    """(status or None, body) of one GET; unix: ask through that socket, as url's host would be asked."""
    if unix:
        return probe_unix(url, unix)
    try:
        with _OPENER.open(urllib.request.Request(url, headers=HEADERS), timeout=5) as resp:
            return resp.status, resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(4096).decode(errors="replace")
    except (OSError, ValueError) as e:
        return None, str(e)


USER_AGENT = dict(_OPENER.addheaders).get("User-agent", "")   # what the port is asked with
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10   # as urllib follows them: a health URL that redirects is judged where it lands


def probe_unix(url, path, hops=MAX_REDIRECTS):
    """probe(url) asked through the Unix socket at path, following redirects as urllib does for the
    URL itself: on the same host through the same socket, elsewhere as the URL would be."""
    parts = urllib.parse.urlsplit(url)
    conn = UnixConnection(path, parts.netloc, timeout=5)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers={"Host": parts.netloc, "User-Agent": USER_AGENT, **HEADERS})
        resp = conn.getresponse()
        status, location = resp.status, resp.getheader("Location")
        body = resp.read(4096).decode(errors="replace")
    except (OSError, http.client.HTTPException, ValueError) as e:
        return None, str(e)
    finally:
        conn.close()
    if status in REDIRECTS and location and hops:
        target = urllib.parse.urljoin(url, location)
        there = urllib.parse.urlsplit(target)
        if (there.scheme, there.netloc) == (parts.scheme, parts.netloc):
            return probe_unix(target, path, hops - 1)
        return probe(target)
    return status, body


def release_of(body):
    """The release a health answer reports, if it is JSON with one."""
    try:
        return json.loads(body).get("release")
    except (ValueError, AttributeError):
        return None


# How long one 4xx must repeat before a wait takes it as the answer: a server still starting
# refuses connections or answers 5xx, while a health URL that is missing or forbidden answers
# the same 4xx every time, and waiting out a 60 s timeout on it only delays the verdict.
CLIENT_ERROR_SETTLED = 3.0


class ClientErrors:
    """When each endpoint began answering 4xx without a break in between."""

    def __init__(self):
        self.since = {}

    def settled(self, name, status, now):
        """Whether name's 4xx has now repeated for CLIENT_ERROR_SETTLED seconds (any other answer
        starts the count again)."""
        if status is None or not 400 <= status < 500:
            self.since.pop(name, None)
            return False
        return now - self.since.setdefault(name, now) >= CLIENT_ERROR_SETTLED


def client_error_said(status, url):
    """The report's body for a settled 4xx: what it means and where the path is set."""
    return (f"{url} answered {status} every time for {CLIENT_ERROR_SETTLED:.0f} s: the health path is missing "
            "or refused there. Give the service a path that answers 200 without a login (a health view), "
            "or set it in hosts.toml: [projects.NAME.health] web = \"/path/\" (api likewise)")


def poll(checks, expect, deadline, fail_fast=False):
    """Poll each endpoint until it answers 2xx and, if it reports a release, the expected one.
    fail_fast: a 5xx ends the wait at once, and so does a 4xx that keeps coming back (the
    processes answering are the new ones)."""
    report = {}
    pending = list(checks)
    client_errors = ClientErrors()
    while pending:
        still = []
        for c in pending:
            status, body = probe(c["url"], c.get("unix"))
            served = release_of(body)
            ok = (status is not None and 200 <= status < 300
                  and (expect is None or served is None or served == expect))
            report[c["name"]] = {"status": status, "release": served, "ok": ok, "body": body[:300],
                                 "asked": c.get("unix") or c["url"]}
            if not ok and fail_fast and status is not None and status >= 500:
                return False, report
            if not ok and fail_fast and client_errors.settled(c["name"], status, time.monotonic()):
                report[c["name"]]["body"] = client_error_said(status, c["url"])
                return False, report
            if not ok:
                still.append(c)
        pending = still
        if pending and time.monotonic() > deadline:
            return False, report
        if pending:
            time.sleep(0.25)
    return True, report
