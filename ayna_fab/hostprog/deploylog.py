"""The history call: the newest entries of a project's deploy log, as the operations wrote them
(store.append_log, already masked). Read from the end, so a long log costs no more than a short one."""

import json
import os

from . import calls

CHUNK = 65536


def _tail(path, limit):
    """The last `limit` lines of the file (fewer if it has fewer), oldest first."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        data = b""
        while end > 0 and data.count(b"\n") <= limit:
            start = max(0, end - CHUNK)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()][-limit:]


def read(a: calls.History):
    path = os.path.join(a.root, "logs", "deploys.jsonl")
    try:
        lines = _tail(path, max(1, a.limit))
    except FileNotFoundError:
        return {"entries": [], "unreadable": 0, "exists": os.path.isdir(a.root)}
    entries, unreadable = [], 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            unreadable += 1
    return {"entries": entries, "unreadable": unreadable, "exists": True}
