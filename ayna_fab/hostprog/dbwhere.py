"""Where the env file's database lives, as text two hosts' answers can be compared by.

A fleet that shares one database migrates it once; hosts that each have their own must each
migrate theirs. The laptop tells the two apart by comparing these answers: a database on the
host itself (loopback, SQLite) is named with the machine's name and id, one elsewhere by the
address its name resolves to here. A Unix socket is not judged (None): it may be a tunnel to
another host's server. Only engine, address, port and database name: never a user or a password.
"""

import ipaddress
import socket
import urllib.parse

from . import envfile


def machine():
    """This machine: its hostname and systemd's machine id (cloned images may share the id)."""
    try:
        with open("/etc/machine-id", encoding="ascii") as f:
            ident = f.read().strip()[:12]
    except OSError:
        ident = ""
    return f"{socket.gethostname()}/{ident}" if ident else socket.gethostname()


def _addresses(name, port):
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def _local(addresses):
    return any(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def where(env_file):
    """The database DATABASE_URL points at, e.g. "postgresql://10.0.0.5:5432/shop" or
    "postgresql://this-host(ID):5432/shop"; None without one (or an unreadable file). Never raises."""
    try:
        url = envfile.read(env_file).get("DATABASE_URL")
        if not url:
            return None
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.split("+")[0].lower()
        if scheme.startswith("sqlite"):
            return f"sqlite://this-host({machine()}){parts.path[1:]}"
        query = urllib.parse.parse_qs(parts.query)
        name = parts.hostname or (query.get("host") or [""])[0]
        port = parts.port or int((query.get("port") or ["5432"])[0])
        database = parts.path.lstrip("/") or (query.get("dbname") or [""])[0]
        if not name or name.startswith("/"):
            return None   # a Unix socket may lead anywhere (a tunnel, a proxy): not told from here
        addresses = _addresses(name, port)
        if _local(addresses):
            at = f"this-host({machine()})"
        else:
            at = addresses[0] if addresses else name
        return f"{scheme}://{at}:{port}/{database}"
    except (OSError, ValueError):
        return None
