"""Health endpoints, polled from the host itself (services bind 127.0.0.1)."""

import json
import time
import urllib.error
import urllib.request

# Health checks go straight to 127.0.0.1, never through a proxy from the host's environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe(url):
    """(status or None, body) of one GET."""
    try:
        with _OPENER.open(url, timeout=5) as resp:
            return resp.status, resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(4096).decode(errors="replace")
    except (OSError, ValueError) as e:
        return None, str(e)


def release_of(body):
    """The release a health answer reports, if it is JSON with one."""
    try:
        return json.loads(body).get("release")
    except (ValueError, AttributeError):
        return None


def poll(checks, expect, deadline, fail_fast=False):
    """Poll each endpoint until it answers 2xx and, if it reports a release, the expected one.
    fail_fast: a 5xx ends the wait at once (the processes answering are the new ones)."""
    report = {}
    pending = list(checks)
    while pending:
        still = []
        for c in pending:
            status, body = probe(c["url"])
            served = release_of(body)
            ok = (status is not None and 200 <= status < 300
                  and (expect is None or served is None or served == expect))
            report[c["name"]] = {"status": status, "release": served, "ok": ok, "body": body[:300]}
            if not ok and fail_fast and status is not None and status >= 500:
                return False, report
            if not ok:
                still.append(c)
        pending = still
        if pending and time.monotonic() > deadline:
            return False, report
        if pending:
            time.sleep(0.25)
    return True, report
