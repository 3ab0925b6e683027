"""Host tasks: trust, setup, validate, env-check."""

from __future__ import annotations

from ayna_fab.cli import confirm, output
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.ops import proxy
from ayna_fab.provision import envcheck as envfile
from ayna_fab.provision import unitfiles as units
from ayna_fab.remote import hostcall, hostkeys, ssh
from ayna_fab.remote.transport import Remote


@task(help={"yes": "record the key without asking (only when you checked it another way)"})
def trust(c, yes=False):
    """Show a host's SSH key fingerprint and record it in known_hosts once you confirm it.

    Example: ayna-fab -H prod trust
    """
    cfg = common.load()
    for host in common.hosts(c, cfg):
        ep = targets.endpoint(cfg, host)
        recorded = hostkeys.recorded(ep)
        key = hostkeys.offered(ep, prefer=list(recorded))
        fp = ssh.fingerprint(key)
        if recorded:  # a known host: only the very key recorded for it is the same host
            if recorded.get(key.get_name()) == key:
                output.say(f"[{host.name}] {ep.key_name} is already trusted ({key.get_name()} {fp})")
                continue
            have = ", ".join(f"{kind} {ssh.fingerprint(k)}" for kind, k in recorded.items())
            raise UsageError(f"HOST KEY CHANGED: {ep.key_name} now offers {key.get_name()} {fp}, "
                             f"but {ep.known_hosts_path} has {have} for it", host=host.name,
                             step="trust", hint=f"only if the server was rebuilt: ssh-keygen -R "
                                                f"'{ep.key_name}' -f {ep.known_hosts_path}, then trust again")
        output.say(f"[{host.name}] {ep.key_name} offers {key.get_name()} {fp}")
        if not yes:
            if not confirm.yes("Is this the server's key (compare with ssh-keygen -lf on the server)?",
                               flag="--yes (only when you checked the key another way)",
                               what="recording a host key", host=host.name, step="trust"):
                raise UsageError("not trusted; nothing recorded", host=host.name, step="trust")
        hostkeys.record(ep, key)
        output.say(f"[{host.name}] recorded in {ep.known_hosts_path}")


@task(help={"project": "the project to set up (default: every project the host carries)",
            "force_env": "overwrite a remote .env that differs from the local one, env_command's or env_file "
                         "(shows the keys that change)"})
def setup(c, project=None, force_env=False):
    """Bootstrap a host: deploy user, directories, uv, .env, database, systemd units, sudoers.

    Example: ayna-fab -H prod setup --project shop
    """
    cfg = common.load()
    from ayna_fab.provision import localenv, setup as hostsetup  # setup's own modules load only for setup
    read_env = localenv.once()   # env_command runs once for the whole target, before any connection
    plans = [hostsetup.prepare(cfg, h, p, force_env, read_env) for h in common.hosts(c, cfg)
             for p in common.projects_on(cfg, h, project)]
    if not plans:
        raise UsageError("the target's hosts carry no project", step="setup",
                         hint="add projects to the hosts in hosts.toml, or pass --project")
    for plan in plans:  # every plan is checked locally before the first connection
        with Remote.open(targets.endpoint(cfg, plan.host, admin=True)) as remote:
            hostsetup.run(plan, remote, output.say)
        for warning in plan.warnings:
            output.warn(f"[{plan.host.name}] {warning}")
        summary = f"{len(plan.changes)} change(s)" if plan.changes else "nothing changed"
        output.say(f"[{plan.host.name}] setup of {plan.project.name}: {summary}")


@task(help={"project": "only this project", "json": "print JSON for scripts"})
def validate(c, project=None, json=False):
    """Conformance with the standard's seven checks: of the local project(s), or with -H of hosts.

    Example: ayna-fab -H prod validate --json
    """
    from ayna_fab.provision import conformance
    cfg = common.load()
    reports = []
    if common.given_target(c) is None:
        names = [project] if project else list(cfg.projects)
        for name in names:
            if name not in cfg.projects:
                raise UsageError(f"unknown project {name!r}; known: {', '.join(cfg.projects)}", step="validate")
            p = cfg.projects[name]
            reports.append({"host": None, "project": name,
                            "checks": conformance.local_checks(cfg, p)})
    else:
        for host in common.hosts(c, cfg):
            projects = common.projects_on(cfg, host, project)
            with Remote.open(targets.endpoint(cfg, host)) as remote:
                for p in projects:
                    facts = _facts(remote, cfg, host, p)
                    checks = conformance.host_checks(cfg, host, p, facts)
                    proxy_problems = proxy.check(cfg, host, p, remote)
                    if proxy_problems is not None:
                        checks.append(conformance.Check(len(checks) + 1, "Caddy serves the project's domains",
                                                        tuple(proxy_problems)))
                    reports.append({"host": host.name, "project": p.name, "checks": checks})
    failed = sum(1 for r in reports for ch in r["checks"] if not ch.ok)
    if json:
        output.emit_json([{**r, "checks": [ch.to_dict() for ch in r["checks"]]} for r in reports])
    else:
        for r in reports:
            output.say(f"{r['project']}" + (f" on {r['host']}" if r["host"] else f" ({cfg.projects[r['project']].source})"))
            for ch in r["checks"]:
                output.check(ch.ok, f"{ch.number}. {ch.title}", ch.problems)
    if failed:
        raise OperationFailed(f"{failed} check(s) failed", step="validate",
                              hint="fix what the ✗ lines say (fab -H HOST setup fixes most host problems)")


def _facts(remote: Remote, cfg, host, project) -> dict:
    lay = Layout.of(cfg, project)
    command = hostcmd.facts(host.user, [d[0] for d in lay.dirs(host.user)], units.all_names(project),
                            lay.env_file)
    return hostcall.parse(remote.run(command, check=False), host=host.name, step="validate")


@task(name="env-check", help={"project": "only this project"})
def env_check(c, project=None):
    """Check a host's .env: every variable the standard requires, ports as in the registry. Never shows values.

    Example: ayna-fab -H prod env-check
    """
    cfg = common.load()
    failed = 0
    for host in common.hosts(c, cfg):
        projects = common.projects_on(cfg, host, project)
        with Remote.open(targets.endpoint(cfg, host)) as remote:
            for p in projects:
                path = Layout.of(cfg, p).env_file
                text = remote.read_text(path, step="env-check")
                problems = [f"{path} does not exist"] if text is None else envfile.problems(
                    envfile.parse(text), p.name, p.port("web"), p.port("api"))
                if text is not None and p.env_file and p.env_file.exists():
                    d = envfile.diff(envfile.parse(p.env_file.read_text()), envfile.parse(text))
                    if not d.empty:
                        output.say(f"[{host.name}] {path} vs {p.env_file}: {d.summary()}")
                output.check(not problems, f"[{host.name}] {p.name}: {path}", problems)
                failed += bool(problems)
    if failed:
        raise OperationFailed(f"{failed} env file(s) incomplete", step="env-check",
                              hint="edit the file on the host, or set env_file and run setup --force-env")
