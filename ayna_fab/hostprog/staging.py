"""The stage call: a new release from the uploaded changes and copies of the live release's other files."""

import fcntl
import hashlib
import io
import os
import shutil
import stat
import sys
import tarfile
import time

from . import calls, lock, store, wire
from .wire import Refused


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


def _upload(a: calls.Stage):
    """The call's stdin, read before anything else: exactly the bytes the call names, with the
    hash it names, or a refusal before anything is made (a link that dropped mid-upload)."""
    want = a.archive + a.deleted
    data = sys.stdin.buffer.read(want + 1) if want else b""
    if len(data) != want or hashlib.sha256(data).hexdigest() != a.sha256:
        raise Refused("upload-damaged", f"the upload did not arrive whole: {len(data)} bytes of {want}, "
                                        "or not the bytes sent")
    return data[:a.archive], data[a.archive:]


def stage(a: calls.Stage):
    """releases/vN: the uploaded files, copies of the base release's unchanged ones, shared links.

    Copies, never hard links: a file written in place in one release (an editor, the app,
    compilemessages) must not change the same file of another, the one a rollback goes back to
    (docs/ARCHITECTURE.md, "Releases are copies")."""
    archive, deleted_names = _upload(a)
    lock.require(a.root, a.token)
    started = time.monotonic()
    try:
        store.claim(a.root, a.number)
    except ValueError as e:
        raise Refused("number-used", str(e))
    new = store.release_dir(a.root, a.number)
    os.mkdir(new, 0o755)
    store.write_json(os.path.join(new, store.META), dict(a.meta, state="building"))
    names = []
    if archive:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = tar.getmembers()
            bad = [m.name for m in members if not _safe_member(m) or _own(m.name, a.links)]
            if bad:
                raise Refused("unsafe-upload", f"refusing unsafe paths in the upload: {bad[:5]}")
            for m in members:
                m.mode = release_mode(m.mode | (stat.S_IFDIR if m.isdir() else 0))
            tar.extractall(new, members=members)
            names = [m.name for m in members if not m.isdir()]
    # NUL-separated names: any number of them (never an argument)
    deleted = {os.fsdecode(n) for n in deleted_names.split(b"\0") if n}
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
