"""Whether a host's ports are free for a project: the verdict on hostprog/ports.py's answer (pure).

The registry in hosts.toml only knows the projects it lists; another program on the host may
hold a port all the same. Setup would then enable a socket that cannot bind, and a deploy would
poll the other program's answers for its health. So setup and a deploy's plan both refuse,
before anything changes, a port held by anything but the project itself:

- its own socket units (systemd holds them as root, and `systemctl show` says they listen there);
- processes working in the project's directory (a pre-flip check of a deploy under way).
"""

from __future__ import annotations

from ayna_fab.errors import UsageError


def _own(listener: dict, sockets: dict, root: str) -> bool:
    port = listener["port"]
    if listener.get("uid") == 0 and any(port in held for held in sockets.values()):
        return True
    procs = listener.get("processes") or []
    return bool(procs) and all((p.get("cwd") or "").startswith(root.rstrip("/") + "/") for p in procs)


def describe(listener: dict) -> str:
    """"port 8150 (0.0.0.0): nginx (pid 812), user www-data"; the process when it can be seen."""
    procs = listener.get("processes") or []
    who = ", ".join(f"{p.get('name') or '?'} (pid {p.get('pid')})" for p in procs[:3])
    user = listener.get("user") or listener.get("uid")
    held = f"{who}, user {user}" if who else f"a process of user {user}"
    return f"port {listener['port']} ({listener.get('addr')}): {held}"


def foreign(answer: dict, root: str) -> list[str]:
    """Each listener on the project's ports that is not the project's own, described; none: free."""
    sockets = answer.get("sockets") or {}
    seen, out = set(), []
    for listener in answer.get("listeners") or []:
        if _own(listener, sockets, root):
            continue
        text = describe(listener)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def refuse(answer: dict, *, host: str, project: str, root: str, step: str) -> None:
    """UsageError naming every foreign listener; nothing was changed yet."""
    held = foreign(answer, root)
    if held:
        raise UsageError(f"{project}'s ports are held by another program on the host: " + "; ".join(held),
                         host=host, step=step,
                         hint=f"stop that program or move it off these ports, or give {project} another "
                              f"range (port_base under [projects.{project}] in hosts.toml, then setup again)")
