"""Releases on disk: releases/vN with its record, the never-reused counter, `current`, the flip.

A release's record (.ayna-release.json) holds what it is and its state; the
manifest (.ayna-manifest) lists its files, so the next release can hard-link them.
"""

import json
import os
import subprocess

from . import envfile

META = ".ayna-release.json"
MANIFEST = ".ayna-manifest"
COUNTER = ".counter"


def releases_dir(root):
    return os.path.join(root, "releases")


def release_dir(root, number):
    return os.path.join(root, "releases", f"v{number}")


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def current_number(root):
    """The live release's number, from releases/current, or None."""
    return pointed(root, "current")


def current_dir(root):
    """The live release's directory, resolved once, so one command never spans a flip."""
    link = os.path.join(releases_dir(root), "current")
    return os.path.realpath(link) if os.path.islink(link) else None


def listing(root):
    """Every release directory: its number, record and whether its files and venv are all there."""
    rels = []
    try:
        names = os.listdir(releases_dir(root))
    except OSError:
        return rels
    for name in names:
        if not (name.startswith("v") and name[1:].isdigit()):
            continue
        path = os.path.join(releases_dir(root), name)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        meta = read_json(os.path.join(path, META), {}) or {}
        complete = bool(meta) and os.path.exists(os.path.join(path, ".venv", "bin", "python"))
        rels.append({"number": int(name[1:]), "meta": meta, "complete": complete})
    return sorted(rels, key=lambda r: r["number"])


def counter(root):
    try:
        with open(os.path.join(releases_dir(root), COUNTER)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def next_number(root, rels):
    return max([counter(root)] + [r["number"] for r in rels]) + 1


def claim(root, number):
    """Record number as used (numbers are never reused, even after a release is deleted)."""
    used = counter(root)
    if number <= used:
        raise ValueError(f"release number v{number} was used before (counter {used})")
    path = os.path.join(releases_dir(root), COUNTER)
    with open(path + ".tmp", "w") as f:
        f.write(f"{number}\n")
    os.replace(path + ".tmp", path)


def set_state(root, number, state, extra=None):
    path = os.path.join(release_dir(root, number), META)
    meta = read_json(path)
    if meta is None:
        return False
    meta.update(extra or {})
    meta["state"] = state
    write_json(path, meta)
    return True


def point(root, name, number):
    """releases/NAME -> vN atomically: a new symlink under a temporary name, renamed over it."""
    rdir = releases_dir(root)
    tmp = os.path.join(rdir, f".{name}.tmp{os.getpid()}")
    os.symlink(f"v{number}", tmp)
    os.replace(tmp, os.path.join(rdir, name))


def pointed(root, name):
    """The release number releases/NAME names (current, or a slot), or None."""
    try:
        target = os.readlink(os.path.join(releases_dir(root), name))
    except OSError:
        return None
    base = os.path.basename(target.rstrip("/"))
    return int(base[1:]) if base.startswith("v") and base[1:].isdigit() else None


def flip(root, number):
    """current -> vN atomically, and the project's venv link, through current, if it is not there yet."""
    rdir = releases_dir(root)
    point(root, "current", number)
    venv = os.path.join(root, "venv")
    want = os.path.join(rdir, "current", ".venv")
    if not (os.path.islink(venv) and os.readlink(venv) == want):
        tmp = venv + f".tmp{os.getpid()}"
        os.symlink(want, tmp)
        os.replace(tmp, venv)


def unlink_current(root):
    for link in (os.path.join(releases_dir(root), "current"), os.path.join(root, "venv")):
        if os.path.islink(link):
            os.unlink(link)


def remove(root, numbers):
    """Move releases aside at once (never the live one), delete them in the background."""
    trash = []
    live = current_number(root)
    for number in numbers:
        src = release_dir(root, number)
        if os.path.isdir(src) and number != live:
            dst = os.path.join(releases_dir(root), f".trash-v{number}-{os.getpid()}")
            os.rename(src, dst)
            trash.append(dst)
    if trash:
        subprocess.Popen(["rm", "-rf", *trash], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [int(os.path.basename(t).split("-")[1][1:]) for t in trash]


def append_log(root, entry):
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    with open(os.path.join(root, "logs", "deploys.jsonl"), "a") as f:
        f.write(json.dumps(envfile.MASK.data(entry), sort_keys=True) + "\n")   # what the app said, masked
