"""A host's facts for one project, gathered in one round trip; validate judges them on the laptop."""

import grp
import hashlib
import os
import pwd
import stat
import subprocess

from . import calls, ports


def stat_of(path):
    """The path itself, not what a link there names: a link is neither the directory nor the
    file the layout wants (systemd and root would follow it)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return {"owner": _name(pwd.getpwuid, st.st_uid), "group": _name(grp.getgrgid, st.st_gid),
            "mode": format(stat.S_IMODE(st.st_mode), "o"), "dir": stat.S_ISDIR(st.st_mode)}


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    return p.returncode, p.stdout.strip()


def unit(name):
    path = "/etc/systemd/system/" + name
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        digest = None
    return {"sha256": digest, "enabled": run("systemctl", "is-enabled", name)[1],
            "active": run("systemctl", "is-active", name)[1]}


def listening():
    """TCP sockets in LISTEN state: (address, port), from /proc (no ss needed)."""
    out = []
    for table, v6 in ports.TABLES:
        try:
            with open(table) as f:
                out += [[s["addr"], s["port"]] for s in ports.parse_table(f.read(), v6)]
        except OSError:
            continue
    return out


def gather(a: calls.Facts):
    user = a.user
    try:
        pw = pwd.getpwnam(user)
        groups = [g.gr_name for g in grp.getgrall() if user in g.gr_mem]
        user_facts = {"exists": True, "home": pw.pw_dir, "groups": groups}
    except KeyError:
        user_facts = {"exists": False}
    env = stat_of(a.env)
    env_text = None
    if env:
        try:
            env_text = open(a.env).read()
        except OSError:
            env_text = None
    code, sudo = run("sudo", "-n", "-l")
    facts = {
        "whoami": pwd.getpwuid(os.getuid())[0],
        "user": user_facts,
        "dirs": {d: stat_of(d) for d in a.dirs},
        "units": {u: unit(u) for u in a.units},
        "env": {"stat": env, "text": env_text},
        "sudo": sudo if code == 0 else None,
        "listening": listening(),
    }
    return facts
