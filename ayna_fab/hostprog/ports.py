"""Who listens on a host's TCP ports: the kernel's tables (/proc/net/tcp, tcp6) and the processes
holding each socket. The host only reports; the laptop judges (provision/hostports.py).

A process's sockets are visible to its own user and root only, so a plan (the deploy user) can
name a foreign listener's user but not always its process; setup (root) names both.
"""

import ipaddress
import os
import pwd
import subprocess

from . import calls

LISTEN = "0A"
TABLES = (("/proc/net/tcp", False), ("/proc/net/tcp6", True))


def _address(hex_addr, v6):
    raw = bytes.fromhex(hex_addr)
    if v6:
        return str(ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return ".".join(str(b) for b in raw[::-1])


def parse_table(text, v6=False):
    """The LISTEN sockets of one /proc/net/tcp{,6} text: [{addr, port, uid, inode}]."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10 or f[3] != LISTEN:
            continue
        addr_hex, _, port_hex = f[1].partition(":")
        out.append({"addr": _address(addr_hex, v6), "port": int(port_hex, 16), "uid": int(f[7]), "inode": f[9]})
    return out


def parse_listen(text):
    """`systemctl show -p Id -p Listen UNIT...`: {unit: [port, ...]} ("Listen=127.0.0.1:8150 (Stream)").
    One block per unit, blocks apart by an empty line, properties in systemd's order (not the asked one)."""
    out = {}
    for block in text.split("\n\n"):
        unit, found = None, []
        for line in block.splitlines():
            key, _, value = line.partition("=")
            if key == "Id":
                unit = value
            elif key == "Listen":
                port = value.split(" ")[0].rpartition(":")[2]
                if port.isdigit():
                    found.append(int(port))
        if unit:
            out[unit] = found
    return out


def _holders(inodes):
    """{inode: [{pid, name, user, cwd}]} of the processes whose fds this user may read."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
            if inode in inodes:
                found.setdefault(inode, []).append(_process(pid))
    return found


def _process(pid):
    def read(name):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = None
    return {"pid": int(pid), "name": read("comm").strip(), "cmdline": read("cmdline").replace("\0", " ").strip()[:200],
            "cwd": cwd}


def _user(uid):
    try:
        return pwd.getpwuid(uid)[0]
    except KeyError:
        return str(uid)


def listeners(a: calls.Ports):
    """Every listener on a.ports, with its user and the processes holding it, and the ports
    systemd's socket units a.sockets listen on."""
    found = []
    for path, v6 in TABLES:
        try:
            with open(path) as f:
                found += [s for s in parse_table(f.read(), v6) if s["port"] in a.ports]
        except OSError:
            continue
    holders = _holders({s["inode"] for s in found}) if found else {}
    for s in found:
        s["user"] = _user(s["uid"])
        s["processes"] = holders.get(s.pop("inode"), [])
    sockets = {}
    if a.sockets:
        p = subprocess.run(["systemctl", "show", "-p", "Id", "-p", "Listen", *a.sockets],
                           capture_output=True, text=True)
        sockets = parse_listen(p.stdout)
    return {"listeners": found, "sockets": sockets}
