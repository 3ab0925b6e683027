"""Release calls: plan (with the lock), stage, finish, unlock, status, migrations."""

import os
import shutil
import tarfile
import time

from . import calls, lock, store, units, wire
from .health import poll
from .wire import Refused


def require_lock(root, token):
    """Every changing call of an operation first checks that its lock is still its own."""
    if not lock.holds(root, token):
        raise Refused("lock-lost", "this operation no longer holds the deploy lock (it was removed or "
                      "taken by another operation); stopping here", holder=lock.holder(root))


def plan(a: calls.Plan):
    root = a.root
    if not os.path.isdir(store.releases_dir(root)):
        raise Refused("no-layout", f"{store.releases_dir(root)} does not exist")
    if a.lock is not None:
        holder = lock.take(root, a.lock)
        if holder is not None:
            raise Refused("locked", "another operation holds the lock", holder=holder)
    rels = store.listing(root)
    st = os.statvfs(root)
    return {"releases": rels, "current": store.current_number(root), "next": store.next_number(root, rels),
            "env_file": os.path.exists(a.env_file), "uv": shutil.which("uv") is not None,
            "disk_free": st.f_bavail * st.f_frsize, "units": {u: units.state(u) for u in a.units}}


def _safe_member(m):
    name = m.name
    if name.startswith("/") or ".." in name.split("/"):
        return False
    if m.issym():
        target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        return not (m.linkname.startswith("/") or target.startswith(".."))
    return m.isfile() or m.isdir()


def stage(a: calls.Stage):
    """releases/vN: the uploaded files, hard links to the base release's unchanged ones, shared links."""
    require_lock(a.root, a.token)
    started = time.monotonic()
    try:
        store.claim(a.root, a.number)
    except ValueError as e:
        raise Refused("number-used", str(e))
    new = store.release_dir(a.root, a.number)
    os.mkdir(new, 0o755)
    store.write_json(os.path.join(new, store.META), dict(a.meta, state="building"))
    names = []
    if a.archive:
        with tarfile.open(a.archive, "r:gz") as tar:
            members = tar.getmembers()
            bad = [m.name for m in members if not _safe_member(m)]
            if bad:
                raise Refused("unsafe-upload", f"refusing unsafe paths in the upload: {bad[:5]}")
            tar.extractall(new, members=members)
            names = [m.name for m in members if not m.isdir()]
        os.unlink(a.archive)
    skip = set(names) | set(a.deleted)
    linked = 0
    manifest = list(names)
    if a.base is not None:
        base_dir = store.release_dir(a.root, a.base)
        with open(os.path.join(base_dir, store.MANIFEST)) as f:
            base_names = [line.rstrip("\n") for line in f if line.strip()]
        for name in base_names:
            if name in skip:
                continue
            src, dst = os.path.join(base_dir, name), os.path.join(new, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                os.link(src, dst)
            manifest.append(name)
            linked += 1
    with open(os.path.join(new, store.MANIFEST), "w") as f:
        f.write("".join(n + "\n" for n in sorted(manifest)))
    for link, target in a.links.items():
        path = os.path.join(new, link)
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        os.symlink(target, path)
    wire.step("upload", time.monotonic() - started)
    return {"linked": linked, "unpacked": len(names), "files": len(manifest)}


def finish(a: calls.Finish):
    """Record states and the log line, set old releases aside, release the lock."""
    require_lock(a.root, a.token)
    for number, state in a.states.items():
        store.set_state(a.root, int(number), state, a.meta.get(number))
    if a.log:
        store.append_log(a.root, a.log)
    removed = store.remove(a.root, a.remove)
    return {"removed": removed, "unlocked": lock.release(a.root, a.token)}


def unlock(a: calls.Unlock):
    holder = lock.holder(a.root)
    return {"holder": holder, "result": lock.release(a.root, a.token, a.force)}


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
            "lock": lock.holder(root), "releases": rels, "disk_free": free, "exists": os.path.isdir(root)}


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
