"""The proxy's tasks: the maintenance switch (docs/proxy.md)."""

from __future__ import annotations

from ayna_fab.cli import output
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.config import targets
from ayna_fab.errors import UsageError
from ayna_fab.ops import proxy
from ayna_fab.remote.transport import Remote

STATES = ("on", "off")
USAGE = """Usage: fab -H TARGET maintenance on [--message TEXT] [--project P]
       fab -H TARGET maintenance off [--project P]

Switches the project's maintenance page: while on, its domains answer 503 with the page and
Retry-After; health URLs and maintenance_allow's addresses still reach the app. Caddy is not
reloaded (it looks for the page on every request)."""


@task(help={"state": "on or off", "message": "on: the text of the page (default: back shortly)",
            "project": "needed when a host carries several projects"})
def maintenance(c, state, message=None, project=None):
    """Switch the maintenance page on or off: 503 and Retry-After on the project's domains.

    While on, health checks and maintenance_allow's addresses still reach the app; switching
    needs no Caddy reload.

    Example: ayna-fab -H prod maintenance on --message "Back at 10:00"
    """
    if state in ("-h", "--help"):  # invoke hands a flag to a missing positional argument
        output.line(USAGE)
        return
    if state not in STATES:
        raise UsageError(f"maintenance takes on or off, not {state!r}", step="maintenance",
                         hint="fab -H HOST maintenance on [--message TEXT], or fab -H HOST maintenance off")
    if state == "off" and message is not None:
        raise UsageError("--message goes with on", step="maintenance", hint="fab -H HOST maintenance off")
    cfg = common.load()
    for host, proj in common.jobs(c, cfg, project):
        proxy.require_site(cfg, host, proj, "maintenance")
        with Remote.open(targets.endpoint(cfg, host)) as r:
            res = proxy.switch(cfg, host, proj, r, state == "on", message)
        output.say(f"[{host.name}] {proj.name}: maintenance {'on' if res['on'] else 'off'}"
                   + ("" if res["changed"] else " (it was already)"))


TASKS = (maintenance,)
