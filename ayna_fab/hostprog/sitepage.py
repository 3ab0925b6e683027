"""The maintenance switch: a page in the project's root that Caddy looks for on every request.

Its presence is the switch, so turning it on or off needs no Caddy reload. Run as the deploy
user. The page is written whole under a temporary name and renamed into place, so Caddy
never serves half a page; a link planted at the directory's name is refused, not followed.
"""

import os

from . import calls
from .wire import Refused

DIR = "maintenance"
PAGE = "page.html"


def is_on(root):
    return os.path.isfile(os.path.join(root, DIR, PAGE))


def _open_dir(root, make):
    path = os.path.join(root, DIR)
    if make:
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Refused("unsafe", f"{path} is not a plain directory ({e.strerror}): remove it and switch again")


def switch(a: calls.SitePage):
    if not os.path.isdir(a.root):
        raise Refused("no-project", f"{a.root} does not exist: run setup first")
    was = is_on(a.root)
    fd = _open_dir(a.root, make=a.page is not None)
    if fd is None:
        return {"on": False, "changed": False}
    try:
        if a.page is None:
            try:
                os.unlink(PAGE, dir_fd=fd)
            except FileNotFoundError:
                pass
        else:
            tmp = f".{PAGE}.{os.getpid()}"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd)
            try:
                os.fchmod(out, 0o644)
                os.write(out, a.page.encode("utf-8"))
                os.fsync(out)
            finally:
                os.close(out)
            os.rename(tmp, PAGE, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)
    on = is_on(a.root)
    return {"on": on, "changed": on != was or a.page is not None}
