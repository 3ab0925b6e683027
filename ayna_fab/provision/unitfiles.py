"""systemd units rendered from the standard's templates (ayna_fab/provision/templates/*.service, *.socket).

web and api each also get a socket unit: systemd owns their port, so a restart queues
connections instead of refusing them (docs/ARCHITECTURE.md, "Zero downtime").

web, api and the Celery worker run in two slots, blue and green: two units per service, each
running the release its link (releases/blue, releases/green) names. An activation starts the
new release in the idle slot while the live one serves, then stops the live one: a handover,
not a cold start. Both HTTP slots take their service's one socket (Sockets=). A slot starts
only while its link and `current` name the same release (ExecCondition=), so a boot starts
the live slot and never the other. Beat has one unit: it must never run twice.

Rendering is pure: the registry's ports, the deploy user, the layout's paths and
where the app sits in a release go in; unit texts come out. Setup installs them,
validate compares installed units against them.
"""

from __future__ import annotations

from importlib import resources

from ayna_fab.config import registry
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project


SLOTS = ("blue", "green")
SLOT_SERVICES = ("web", "api", "celery")


def unit_name(project: Project, service: str, slot: str | None = None) -> str:
    """A service's unit; a slotted service (web, api, celery) has one per slot."""
    if service in SLOT_SERVICES:
        return f"{project.name}-{service}-{slot or SLOTS[0]}.service"
    return f"{project.name}-{service}.service"


def standard_name(project: Project, service: str) -> str:
    """The unit's name in the standard, as a project's own systemd/ folder has it: one per service."""
    return f"{project.name}-{service}.service"


def service_units(project: Project, service: str) -> list[str]:
    """Every unit of one service: both slots of a slotted one."""
    if service in SLOT_SERVICES:
        return [unit_name(project, service, slot) for slot in SLOTS]
    return [unit_name(project, service)]


def unit_names(project: Project) -> list[str]:
    """The project's service units, both slots: what deploys control and sudoers lets the deploy user."""
    return [u for s in project.services for u in service_units(project, s)]


def slot_units(project: Project) -> dict[str, list[str]]:
    """{slot: its units}, for the activation's handover."""
    return {slot: [unit_name(project, s, slot) for s in project.services if s in SLOT_SERVICES] for slot in SLOTS}


def single_units(project: Project) -> list[str]:
    """The units outside the slots (beat): restarted, stop then start, by an activation."""
    return [unit_name(project, s) for s in project.services if s not in SLOT_SERVICES]


SOCKET_SERVICES = ("web", "api")


def socket_name(project: Project, service: str) -> str:
    return f"{project.name}-{service}.socket"


def socket_names(project: Project) -> list[str]:
    return [socket_name(project, s) for s in project.services if s in SOCKET_SERVICES]


# Each HTTP slot also has a socket of its own, a Unix socket only the deploy user reaches: health
# asks the new slot itself there while the live slot still takes the shared socket's connections
# (on the shared socket the old slot's idle processes took nearly every probe, and a poll there
# heard the old release for seconds after the new one was ready: docs/performance.md).
PROBE_DIR = "/run/ayna-fab-probe"


def probe_socket_name(project: Project, service: str, slot: str) -> str:
    """The slot's own socket unit: named as its service, so systemd passes it to that slot alone."""
    return f"{project.name}-{service}-{slot}.socket"


def probe_path(project: Project, service: str, slot: str) -> str:
    return f"{PROBE_DIR}/{project.name}-{service}-{slot}.sock"


def probe_socket_names(project: Project) -> list[str]:
    return [probe_socket_name(project, s, slot) for s in project.services if s in SOCKET_SERVICES for slot in SLOTS]


def probe_paths(project: Project, service: str) -> dict[str, str]:
    """{slot: its socket's path} for one HTTP service."""
    return {slot: probe_path(project, service, slot) for slot in SLOTS}


def all_names(project: Project) -> list[str]:
    """Every unit file setup installs: the services, the sockets of web and api, and each HTTP slot's own."""
    return unit_names(project) + socket_names(project) + probe_socket_names(project)


def template(service: str, kind: str = "service") -> str:
    return resources.files("ayna_fab.provision.templates").joinpath(f"{service}.{kind}").read_text()


def render(config: Config, host: Host | None, project: Project, service: str, kind: str = "service",
           slot: str | None = None) -> str:
    """One unit (of a slot, for web, api and celery). host=None renders with the inventory's default
    user (local validation)."""
    slot = slot or SLOTS[0]
    values = {
        "project": project.name,
        "title": project.name.replace("-", " ").replace("_", " ").title(),
        "user": host.user if host else config.defaults.user,
        "root": Layout.of(config, project).root,
        "env": project.env,
        "web_port": project.port("web"),
        "api_port": project.port("api"),
        "django_dir": project.django_dir,
        "wsgi_app": project.wsgi_app,
        "asgi_dir": project.asgi_dir,
        "asgi_app": project.asgi_app,
        "celery_app": project.celery_app,
        "slot": slot,
        "first_slot": SLOTS[0],
        "probe_dir": PROBE_DIR,
    }
    # Slotted units run from their slot's link; beat runs from `current`.
    release = f"{values['root']}/releases/{slot if service in SLOT_SERVICES else 'current'}"
    values.update(release=release, django_path=in_release(release, project.django_dir),
                  asgi_path=in_release(release, project.asgi_dir),
                  celery_path=in_release(release, celery_dir(project)))
    return template(service, kind).format(**values)


def media_name(project: str) -> str:
    """The unit serving shared/media to Caddy, installed by setup only where the project has a site."""
    return f"{project}-media.service"


def render_media(config: Config, project: Project) -> str:
    return template("media").format(
        project=project.name, title=project.name.replace("-", " ").replace("_", " ").title(),
        root=Layout.of(config, project).root, media_port=project.port_base + registry.MEDIA_OFFSET)


def in_release(release: str, rel_dir: str) -> str:
    """A directory of the project inside a release ("." is the project's root itself)."""
    return release if rel_dir == "." else f"{release}/{rel_dir}"


def celery_dir(project: Project) -> str:
    """Where Celery imports its app from: the Django directory, or, without Django, the API's."""
    return project.django_dir if project.django else project.asgi_dir


def render_all(config: Config, host: Host | None, project: Project) -> dict[str, str]:
    units = {unit_name(project, s, slot): render(config, host, project, s, slot=slot)
             for s in project.services for slot in (SLOTS if s in SLOT_SERVICES else (None,))}
    units.update({socket_name(project, s): render(config, host, project, s, "socket")
                  for s in project.services if s in SOCKET_SERVICES})
    units.update({probe_socket_name(project, s, slot): render_probe(config, host, project, s, slot)
                  for s in project.services if s in SOCKET_SERVICES for slot in SLOTS})
    return units


def render_probe(config: Config, host: Host | None, project: Project, service: str, slot: str) -> str:
    """A slot's own socket (PROBE_DIR): the deploy user's alone, for the activation's health poll."""
    return template("probe", "socket").format(
        project=project.name, service=service, slot=slot,
        title=project.name.replace("-", " ").replace("_", " ").title(),
        user=host.user if host else config.defaults.user, path=probe_path(project, service, slot))


PREFLIGHT_OFFSETS = {"web": 5, "api": 6}   # reserved ports of the registry range (+5..+9)


def host_ports(project: Project) -> list[int]:
    """The ports the project binds on a host: its sockets', and the pre-flip check's reserved ones."""
    bound = [s for s in SOCKET_SERVICES if s in project.services]
    return ([project.port(s) for s in bound]
            + [project.port_base + PREFLIGHT_OFFSETS[s] for s in bound])


def preflight_servers(project: Project, release_dir: str) -> list[dict]:
    """The pre-flip check's servers: the release's own web and api, as their units run them but
    from release_dir itself, on the project's reserved ports, one process each."""
    servers = []
    port = project.port_base
    if "web" in project.services and "web" in project.health:
        p = port + PREFLIGHT_OFFSETS["web"]
        servers.append({"name": "web", "url": f"http://127.0.0.1:{p}{project.health['web']}", "argv": [
            f"{release_dir}/.venv/bin/gunicorn", "--chdir", f"{release_dir}/{project.django_dir}",
            "--bind", f"127.0.0.1:{p}", "--workers", "1", "--timeout", "120", project.wsgi_app]})
    if "api" in project.services and "api" in project.health:
        p = port + PREFLIGHT_OFFSETS["api"]
        servers.append({"name": "api", "url": f"http://127.0.0.1:{p}{project.health['api']}", "argv": [
            f"{release_dir}/.venv/bin/uvicorn", "--app-dir", f"{release_dir}/{project.asgi_dir}",
            "--host", "127.0.0.1", "--port", str(p), project.asgi_app]})
    return servers
