"""Taking a project off a host: fab remove [--purge].

    check     as the deploy user: refused while an operation holds the deploy lock; with purge, the
              last backup (pg_dump or SQLite's), and DATABASE_URL read for the drop, before any change
    caddy     as root: the project's site file removed and Caddy reloaded gracefully, first, so no
              request is sent to units about to stop; other projects' sites keep being served, and a
              Caddy left with no site keeps running (setup installed it for the host, not the project)
    units     as root: the project's units and sockets stopped, disabled and removed
    sudoers   its sudoers rule, journal reader and env writer removed
    database  purge only, when setup created it (create_database, a local PostgreSQL): dropped
    files     purge only: everything under the project's directory but shared/backups

Without purge the releases, shared files, backups and database stay, so `fab setup` and a deploy
bring the project back as it was; after a purge, setup makes it anew (the env file from env_file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ayna_fab.commands import caddy as caddycmd, changed_lines
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.commands import setup as setup_cmd
from ayna_fab.commands import teardown as cmd
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import backups as rules
from ayna_fab.ops import answers, lockrecord as lock
from ayna_fab.provision import database, envcheck, envwriter, sudoers, unitfiles as units
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote


@dataclass
class Removal:
    config: Config
    host: Host
    project: Project
    purge: bool
    backup: dict | None = None                    # the last backup, taken before anything changed
    database: database.Database | None = None     # dropped with purge (setup made it)
    changes: list[str] = field(default_factory=list)

    @property
    def layout(self) -> Layout:
        return Layout.of(self.config, self.project)


def check(r: Removal, remote: Remote) -> None:
    """As the deploy user, before any change: no operation under way; with purge, the last backup."""
    st = hostcall.parse(remote.run(hostcmd.status(r.layout, r.project), check=False), host=r.host.name,
                        step="remove")
    if st.get("lock"):
        raise lock.held_error(r.host.name, st["lock"], "remove")
    if not r.purge:
        return
    r.backup = answers.read(r.host, remote.run(hostcmd.backup(r.layout, r.project, None, None), check=False,
                                               timeout=None), "backup")
    if r.project.create_database:
        text = remote.read_text(r.layout.env_file, step="remove")
        url = envcheck.parse(text).get("DATABASE_URL", "") if text else ""
        if rules.engine(url) == "postgresql":
            db = database.from_url(url)
            r.database = db if db.is_local else None


def teardown(r: Removal, admin: Remote, say: Callable[[str], None]) -> None:
    """As root: the proxy's site, units, sudoers, and with purge the database and the files (the
    backups stay)."""
    name = r.project.name
    steps = [("caddy", caddycmd.remove_site(name), None),
             ("units", cmd.remove_units(units.all_names(r.project) + [units.media_name(r.project.name)]), None),
             ("sudoers", cmd.remove_files([sudoers.path(name), sudoers.journal_reader(name), envwriter.path(name)],
                                          "sudoers"), None)]
    if r.purge and r.database is not None:
        steps.append(("database", setup_cmd.create_database(), database.drop_sql(r.database)))
    if r.purge:
        steps.append(("files", cmd.purge_tree(r.layout.root, r.layout.shared, f"{r.layout.shared}/backups"), None))
    for step, command, stdin in steps:
        res = admin.run(command, check=False, stdin=stdin)
        if not res.ok:
            raise OperationFailed(f"{step} failed: {res.stderr.strip()[-500:]}", host=r.host.name, step=step,
                                  hint="run fab remove again: each step is idempotent")
        new = changed_lines(res.stdout)
        r.changes += new
        say(f"[{r.host.name}] {step}: " + ("; ".join(new) if new else "nothing to remove"))


def run(cfg: Config, host: Host, project: Project, purge: bool, say: Callable[[str], None]) -> Removal:
    r = Removal(cfg, host, project, purge)
    with Remote.open(targets.endpoint(cfg, host)) as remote:
        check(r, remote)
    if r.backup:
        say(f"[{host.name}] last backup: {r.backup['backup']} ({rules.human_size(r.backup['bytes'])}), kept in "
            f"{r.layout.shared}/backups")
    with Remote.open(targets.endpoint(cfg, host, admin=True)) as admin:
        teardown(r, admin, say)
    return r
