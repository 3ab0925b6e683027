"""systemd units rendered from the standard's templates (ayna_fab/templates/*.service).

Rendering is pure: the registry's ports, the deploy user, the layout's paths and
where the app sits in a release go in; unit texts come out. Setup installs them,
validate compares installed units against them.
"""

from __future__ import annotations

from importlib import resources

from ayna_fab.config import Config, Host, Project
from ayna_fab.layout import Layout


def unit_name(project: Project, service: str) -> str:
    return f"{project.name}-{service}.service"


def unit_names(project: Project) -> list[str]:
    return [unit_name(project, s) for s in project.services]


def template(service: str) -> str:
    return resources.files("ayna_fab.templates").joinpath(f"{service}.service").read_text()


def render(config: Config, host: Host | None, project: Project, service: str) -> str:
    """One unit. host=None renders with the inventory's default user (local validation)."""
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
    }
    return template(service).format(**values)


def render_all(config: Config, host: Host | None, project: Project) -> dict[str, str]:
    return {unit_name(project, s): render(config, host, project, s) for s in project.services}
