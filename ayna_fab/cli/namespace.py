"""The task namespace, built once: `fabfile.py` (for `fab` in this repository) and the installed
`ayna-fab` program (`cli/program.py`) both use it.

`GROUPS` says under which heading `ayna-fab --list` shows a task; a task of the namespace that no
group names is still listed, under "other tasks". The sandbox is a sub-collection the root
listing leaves out: the demo and the tests reach it as `sandbox.*`.
"""

from __future__ import annotations

from invoke import Collection

from ayna_fab.cli.tasks import (configview, daytwo, history, init, lifecycle, provisioning as host, proxy, release,
                                sandbox, secrets)

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Releases", ("deploy", "rollback", "status", "releases", "history", "unlock")),
    ("Day two", ("migrate", "shell", "manage", "logs", "start", "stop", "restart", "services",
                 "backup", "restore", "exec", "env.diff", "env.push", "env.set", "env.unset", "maintenance")),
    ("A project and its hosts", ("init", "trust", "setup", "validate", "env-check", "config", "remove")),
)

HIDDEN_COLLECTIONS = ("sandbox",)   # reached by name, not shown by the root --list

ns = Collection(init.init, host.trust, host.setup, host.validate, host.env_check,
                release.deploy, release.rollback, release.status, release.list_releases, release.unlock,
                *daytwo.TASKS, *lifecycle.TASKS, *proxy.TASKS)
ns.add_task(history.history)
ns.add_task(configview.show_config)
ns.add_collection(secrets.collection)
ns.add_collection(sandbox.collection)
