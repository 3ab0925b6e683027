"""Release calls: plan (with the lock), stage, finish, unlock, status, migrations."""

import hashlib
import fcntl
import os
import shutil
import stat
import tarfile
import time

from . import calls, dumps, journal, lock, store, units, wire
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
    took_over = None
    if a.lock is not None:
        holder = lock.take(root, a.lock)
        if holder is not None and lock.orphaned(root):
            # its laptop's connection is gone and nothing of it runs: the host settles it, and
            # this operation goes on (holder.py)
            from .holder import abandon
            took_over = abandon(root, holder.get("token"), why="its laptop's connection was gone")
            took_over["holder"] = holder
            holder = lock.take(root, a.lock)
        if holder is not None:
            raise Refused("locked", "another operation holds the lock", holder=holder)
        lock.mark_holding(root)   # this process: main.py keeps it as the holder (holder.py)
    rels = store.listing(root)
    st = os.statvfs(root)
    return {"releases": rels, "current": store.current_number(root), "next": store.next_number(root, rels),
            "env_file": os.path.exists(a.env_file), "uv": shutil.which("uv") is not None,
            "disk_free": st.f_bavail * st.f_frsize, "units": {u: units.state(u) for u in a.units},
            # for the laptop's plan-time refusals (ayna_fab/planchecks.py): the database's engine
            # (a backup must be possible before migrate) and setup's uv config (Layout.uv_config)
            "database": dumps.engine(a.env_file), "uv_config": _digest(os.path.join(root, UV_CONFIG)),
            "took_over": took_over}


UV_CONFIG = "uv.toml"   # in the project's directory; Layout.uv_config names the same file


def _digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def _safe_member(m):
    name = m.name
    if name.startswith("/") or ".." in name.split("/"):
        return False
    if m.issym():
        target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        return not (m.linkname.startswith("/") or target.startswith(".."))
    return m.isfile() or m.isdir()


FICLONE = 0x40049409  # linux/fs.h: share the blocks copy-on-write, where the file system can


def _copy(src, dst):
    """A new file (a new inode) with src's bytes, mode and modification time: a copy-on-write
    clone on XFS or btrfs (instant, no extra disk until one side is written), else a plain copy."""
    with open(src, "rb") as fi:
        st = os.fstat(fi.fileno())
        with open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fo:
            try:
                fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())
            except OSError:
                offset = 0
                while offset < st.st_size:
                    sent = os.sendfile(fo.fileno(), fi.fileno(), offset, st.st_size - offset)
                    if sent == 0:
                        break
                    offset += sent
            os.fchmod(fo.fileno(), release_mode(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def release_mode(mode):
    """A release's files are 644, or 755 for directories and executables: nobody but their owner
    writes them (git archive keeps 664/775), and no setuid or setgid bit comes from an upload."""
    return 0o755 if stat.S_ISDIR(mode) or mode & 0o111 else 0o644


def _own(name, links):
    """A path the release itself uses: its shared links, its venv, its .ayna-* records."""
    top = os.path.normpath(name).split("/", 1)[0]
    return top in links or top == ".venv" or top.startswith(".ayna-")


def stage(a: calls.Stage):
    """releases/vN: the uploaded files, copies of the base release's unchanged ones, shared links.

    Copies, never hard links: a file written in place in one release (an editor, the app,
    compilemessages) must not change the same file of another, the one a rollback goes back to
    (docs/ARCHITECTURE.md, "Releases are copies")."""
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
            bad = [m.name for m in members if not _safe_member(m) or _own(m.name, a.links)]
            if bad:
                raise Refused("unsafe-upload", f"refusing unsafe paths in the upload: {bad[:5]}")
            for m in members:
                m.mode = release_mode(m.mode | (stat.S_IFDIR if m.isdir() else 0))
            tar.extractall(new, members=members)
            names = [m.name for m in members if not m.isdir()]
        os.unlink(a.archive)
    deleted = set()
    if a.deleted_file:  # NUL-separated names, uploaded: any number of them (never an argument)
        with open(a.deleted_file, "rb") as f:
            deleted = {os.fsdecode(n) for n in f.read().split(b"\0") if n}
        os.unlink(a.deleted_file)
    skip = set(names) | deleted
    copied = 0
    manifest = list(names)
    if a.base is not None:
        base_dir = store.release_dir(a.root, a.base)
        with open(os.path.join(base_dir, store.MANIFEST)) as f:
            base_names = [line.rstrip("\n") for line in f if line.strip()]
        for name in base_names:
            if name in skip or _own(name, a.links):  # an older release may list media/...: never again
                continue
            src, dst = os.path.join(base_dir, name), os.path.join(new, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                _copy(src, dst)
            manifest.append(name)
            copied += 1
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
    return {"copied": copied, "unpacked": len(names), "files": len(manifest)}


def finish(a: calls.Finish):
    require_lock(a.root, a.token)
    return record(a.root, a.token, a.states, a.meta, a.log, a.remove, a.units)


def record(root, token, states, meta, log, remove, unit_names):
    """Record states and the log line, set old releases aside, release the lock."""
    for number, state in states.items():
        store.set_state(root, int(number), state, meta.get(number))
    if log:
        store.append_log(root, log)
    in_use = units.releases_in_use(unit_names, store.releases_dir(root)) if remove else {}
    removed = store.remove(root, [n for n in remove if n not in in_use])
    kept = {f"v{n}": pids for n, pids in in_use.items() if n in remove}
    return {"removed": removed, "kept_in_use": kept, "unlocked": lock.release(root, token)}


def unlock(a: calls.Unlock):
    holder = lock.inspect(a.root)
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
            "lock": lock.inspect(root), "releases": rels, "disk_free": free, "exists": os.path.isdir(root),
            "activation": _activation(root)}


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
