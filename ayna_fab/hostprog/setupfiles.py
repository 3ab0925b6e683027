"""Setup's file work on a host, done as root inside directories the deploy user can write.

Setup runs as root, but the deploy user owns /opt/ayna/{project} and its home, so it can put a
symbolic link, a hard link or a FIFO anywhere in there: `ln -s /etc/shadow shared/.env.production`
would otherwise have root hand /etc/shadow to it at the next setup. So every path here is walked
one component at a time from an open directory; a symbolic link is followed only where only root
could have made it (a directory owned by root that nobody else may write), and refused anywhere
else, naming it. Owners and modes are set through open file descriptors and files are replaced by
rename from a new file of our own, so a path swapped after a check changes nothing but itself.
"""

import os
import pwd
import grp
import secrets
import stat
import sys

from . import calls, envfile
from .wire import Refused


def _trusted(st):
    """A directory only root can change: a link in it was made by root."""
    return st.st_uid == 0 and not st.st_mode & 0o022


def _refuse(path, why):
    raise Refused("unsafe-path", f"{path} {why}; setup follows no link and touches no file there that it "
                  "did not make, in a directory another user can write", path=path)


def _kind(dir_fd, name):
    """What `name` in dir_fd is, without following it: None if it does not exist."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link (to {os.readlink(name, dir_fd=dir_fd)!r})"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    return "a regular file" if stat.S_ISREG(st.st_mode) else "a special file (a FIFO, a socket...)"


def _open_in(dir_fd, name, path, flags, mode=0o600):
    """os.open(name) in dir_fd, following a link only where root alone could have made it."""
    if not _trusted(os.fstat(dir_fd)):
        flags |= os.O_NOFOLLOW
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError:
        kind = _kind(dir_fd, name)
        if kind is None:
            raise
        want = "a directory" if flags & os.O_DIRECTORY else "a regular file"
        _refuse(path, f"is {kind}, where {want} belongs")


def open_dir(path, make_missing=False):
    """An fd of the directory `path`, reached from / one component at a time (see above). With
    make_missing, missing components are made, owned by root, mode 755 (as `install -d` does)."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    here = ""
    try:
        for name in [p for p in path.split("/") if p]:
            here += "/" + name
            try:
                child = _open_in(fd, name, here, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                if not make_missing:
                    raise Refused("missing", f"{here} does not exist", path=here)
                os.mkdir(name, 0o755, dir_fd=fd)
                child = _open_in(fd, name, here, os.O_RDONLY | os.O_DIRECTORY)
                os.fchmod(child, 0o755)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _ids(user):
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid


def _settle(fd, uid, gid, mode):
    """Owner and mode through the open fd; True if anything changed."""
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode):
        return False
    os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)
    return True


def _own_file(fd, path, uid):
    """A file we may read, rewrite or hand to the deploy user: a regular file with no other name
    (a hard link to /etc/shadow is /etc/shadow), belonging to the deploy user or to root."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        _refuse(path, "is not a regular file")
    if st.st_nlink != 1:
        _refuse(path, f"has {st.st_nlink} hard links (another name for another file?)")
    if st.st_uid not in (uid, 0):
        _refuse(path, f"belongs to uid {st.st_uid}, neither the deploy user nor root")
    return st


def _read(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _say(changes, text):
    changes.append(text)
    print(f"changed: {text}", flush=True)


def dirs(a: calls.Dirs):
    """Create the layout's directories, or fix their owner and mode (path, owner, group, octal mode)."""
    changes = []
    for path, owner, group, mode in a.dirs:
        uid, gid = _ids(owner)[0], _ids(group)[1]
        parent, name = os.path.split(path.rstrip("/"))
        pfd = open_dir(parent, make_missing=True)
        try:
            try:
                fd = _open_in(pfd, name, path, os.O_RDONLY | os.O_DIRECTORY)
                created = False
            except FileNotFoundError:
                os.mkdir(name, 0o700, dir_fd=pfd)
                fd = _open_in(pfd, name, path, os.O_RDONLY | os.O_DIRECTORY)
                created = True
            try:
                if _settle(fd, uid, gid, int(mode, 8)) and not created:
                    _say(changes, f"fixed owner/mode of {path}")
                if created:
                    _say(changes, f"created {path}")
            finally:
                os.close(fd)
        finally:
            os.close(pfd)
    return {"changes": changes}


def _replace(dir_fd, name, data, uid, gid, mode):
    """name := data, by rename from a new file of ours (never written through an existing name)."""
    tmp = f".{name}.ayna-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _keys(text):
    try:
        return envfile.parse(text)
    except ValueError:
        return None


ENV_MODE = 0o640   # root's, read by the deploy user's group: systemd reads it as root, so that user may not replace it


def env_file(a: calls.EnvFile):
    """The project's env file, root:{deploy group} 0640. With upload, the new text comes on stdin
    (a secret is never an argument): written if there is no file yet, or if replace. Answers which
    keys differ, never a value (database_url: its DATABASE_URL, for setup's database step, when no
    local env file is configured). Never opened through a link: shared/ may have been the deploy
    user's before setup made it root's, so a link there may be the deploy user's work."""
    uid, gid = 0, _ids(a.user)[1]
    new = sys.stdin.buffer.read() if a.upload else None
    parent, name = os.path.split(a.path)
    pfd = open_dir(parent)
    changes = []
    result = {"existed": False, "differs": False, "keys": None, "changes": changes}
    try:
        try:
            fd = _open_in(pfd, name, a.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = None
        old = None
        if fd is not None:
            try:
                _own_file(fd, a.path, _ids(a.user)[0])
                old = _read(fd)
                result["existed"] = True
                if a.database_url:
                    result["database_url"] = (_keys(old.decode("utf-8", "surrogateescape")) or {}).get(
                        "DATABASE_URL")
                if new is not None and old != new:
                    result["differs"] = True
                    before = _keys(old.decode("utf-8", "surrogateescape"))
                    after = _keys(new.decode("utf-8", "surrogateescape")) or {}
                    if before is not None:
                        result["keys"] = {
                            "added": sorted(set(after) - set(before)),
                            "removed": sorted(set(before) - set(after)),
                            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}
                if not (result["differs"] and a.replace) and _settle(fd, uid, gid, ENV_MODE):
                    _say(changes, f"fixed owner/mode of {a.path}")
            finally:
                os.close(fd)
        if new is not None and (old is None or (result["differs"] and a.replace)):
            _replace(pfd, name, new, uid, gid, ENV_MODE)
            result["written"] = True
    finally:
        os.close(pfd)
    return result


def uv_config(a: calls.UvConfig):
    """The project's uv.toml, root's and 0644 (uv reads it as the deploy user), or its removal.
    Whatever the deploy user put at the path (a link to a file or a directory, a FIFO) is replaced
    or removed as a name, never written through, read or followed."""
    parent, name = os.path.split(a.path)
    changes = []
    pfd = open_dir(parent)
    try:
        kind = _kind(pfd, name)
        if kind == "a directory":
            _refuse(a.path, "is a directory")
        if a.text is None:
            if kind is not None:
                os.unlink(name, dir_fd=pfd)
                _say(changes, f"removed {a.path} (hosts.toml sets no package index)")
        elif not _holds(pfd, name, a.text.encode()):
            _replace(pfd, name, a.text.encode(), 0, 0, 0o644)
            _say(changes, f"wrote {a.path} (uv: the package index settings of hosts.toml)")
    finally:
        os.close(pfd)
    return {"changes": changes}


def _holds(dir_fd, name, data):
    """name is already root's own 0644 regular file with exactly data (a link is never opened)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        return (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == 0 and st.st_gid == 0
                and stat.S_IMODE(st.st_mode) == 0o644 and _read(fd) == data)
    finally:
        os.close(fd)


def authorize_key(a: calls.AuthorizeKey):
    """The deploy user's ~/.ssh/authorized_keys holds `key` (added once), 0600 in a 0700 ~/.ssh."""
    pw = pwd.getpwnam(a.user)
    uid, gid = pw.pw_uid, pw.pw_gid
    ssh_dir = os.path.join(pw.pw_dir, ".ssh")
    changes = []
    hfd = open_dir(pw.pw_dir)
    try:
        try:
            dfd = _open_in(hfd, ".ssh", ssh_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            os.mkdir(".ssh", 0o700, dir_fd=hfd)
            dfd = _open_in(hfd, ".ssh", ssh_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _settle(dfd, uid, gid, 0o700)
            path = os.path.join(ssh_dir, "authorized_keys")
            fd = _open_in(dfd, "authorized_keys", path,
                          os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o600)
            try:
                _own_file(fd, path, uid)
                text = _read(fd).decode("utf-8", "surrogateescape")
                key = a.key.strip()
                if key not in text.splitlines():
                    os.write(fd, (("\n" if text and not text.endswith("\n") else "") + key + "\n").encode())
                    _say(changes, f"authorized the deploy key for {a.user}")
                _settle(fd, uid, gid, 0o600)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
    finally:
        os.close(hfd)
    return {"changes": changes}
