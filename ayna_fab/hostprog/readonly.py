"""The calls that only read: a project's status on this host, and the migrations of its releases."""

import os

from . import calls, journal, lock, sitepage, store, units
from .health import poll


def status(a: calls.Status):
    root = a.root
    cur = store.current_number(root)
    rels = store.listing(root)
    meta = next((r["meta"] for r in rels if r["number"] == cur), {})
    _, hreport = poll(a.health, None, 0) if cur is not None else (False, {})
    try:
        st = os.statvfs(root)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    return {"current": cur, "meta": meta, "units": {u: units.state(u) for u in a.units}, "health": hreport,
            "lock": lock.inspect(root), "releases": rels, "disk_free": free, "exists": os.path.isdir(root),
            "activation": _activation(root), "maintenance": sitepage.is_on(root)}


def _activation(root):
    j = journal.read(root)
    return {k: j.get(k) for k in ("number", "phase", "outcome", "back")} if j else None


def migrations(a: calls.Migrations):
    """Migration files of each named release, so a rollback can say what it leaves applied."""
    result = {}
    for number in a.numbers:
        base = os.path.join(store.release_dir(a.root, number), a.django_dir)
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in (".venv", "node_modules", "staticfiles")]
            if os.path.basename(dirpath) == "migrations":
                app = os.path.basename(os.path.dirname(dirpath))
                found += [f"{app}.{f[:-3]}" for f in filenames if f.endswith(".py") and f[0].isdigit()]
        result[str(number)] = sorted(found)
    return result
