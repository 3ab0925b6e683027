"""The deploy user's root rights: exactly the systemctl verbs deploys need, on one project's units.

Logs need no rule (the user is in systemd-journal); status queries need no root.
"""

from __future__ import annotations

SYSTEMCTL = "/usr/bin/systemctl"
VERBS = ("start", "stop", "restart", "reload", "reload-or-restart")


def path(project: str) -> str:
    return f"/etc/sudoers.d/ayna-{project}"


def render(project: str, user: str, units: list[str]) -> str:
    alias = "AYNA_" + project.upper().replace("-", "_")
    commands = [f"{SYSTEMCTL} {verb} {unit}" for unit in sorted(units) for verb in VERBS]
    body = ", \\\n    ".join(commands)
    return (f"# Managed by ayna-fab for {project}: what {user} may run as root, and nothing more.\n"
            f"Cmnd_Alias {alias} = \\\n    {body}\n"
            f"{user} ALL=(root) NOPASSWD: {alias}\n")
