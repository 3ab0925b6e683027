"""Steady HTTP load, run on a sandbox host itself (its services bind 127.0.0.1 in its own network
namespace): CLIENTS clients per URL, each sending one request at a time on a new connection,
until a stop file appears, SECONDS pass or MAX requests were sent. Writes what it saw as JSON.

    python3 loadgen.py '{"urls": [...], "clients": 3, "seconds": 600, "max": 200000,
                         "stop": PATH, "out": PATH, "pause": 0.02, "cafile": PATH}'

https:// URLs (through Caddy: their names resolve to the host itself) are checked against
`cafile` (Caddy's internal root certificate), so a user's failure is any certificate error too.

Standard library only: the host's python3 runs it.
"""

import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse


def client(url, cfg, stats, lock, budget):
    parts = urllib.parse.urlsplit(url)
    while not os.path.exists(cfg["stop"]) and time.monotonic() < cfg["deadline"]:
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        started = time.time()
        try:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=60,
                                                   context=ssl.create_default_context(cafile=cfg.get("cafile")))
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.request("GET", parts.path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            status, error = resp.status, None
        except Exception as e:  # refused, reset, timed out: each one a request a user lost
            status, error, body = None, type(e).__name__, b""
        release = None
        try:
            release = json.loads(body).get("release")
        except (ValueError, AttributeError):
            pass
        with lock:
            s = stats[url]
            ok = status is not None and 200 <= status < 300
            s["ok" if ok else "failed"] += 1
            if status is not None:
                s["statuses"][str(status)] = s["statuses"].get(str(status), 0) + 1
            if error:
                s["errors"][error] = s["errors"].get(error, 0) + 1
            if release:
                s["releases"][release] = s["releases"].get(release, 0) + 1
            if not ok and len(stats["failures"]) < 50:
                stats["failures"].append({"at": started, "url": url, "status": status, "error": error,
                                          "body": body[:200].decode(errors="replace")})
        time.sleep(cfg["pause"])


def main():
    cfg = json.loads(sys.argv[1])
    cfg["deadline"] = time.monotonic() + cfg["seconds"]
    stats = {u: {"ok": 0, "failed": 0, "statuses": {}, "errors": {}, "releases": {}} for u in cfg["urls"]}
    stats["failures"] = []
    lock = threading.Lock()
    budget = [cfg["max"]]
    threads = [threading.Thread(target=client, args=(u, cfg, stats, lock, budget), daemon=True)
               for u in cfg["urls"] for _ in range(cfg["clients"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, cfg["out"])


if __name__ == "__main__":
    main()
