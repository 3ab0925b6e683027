"""The Caddy site file of a project: text rendered from its `Site`, nothing else.

One file per project, /etc/caddy/ayna/PROJECT.caddy, imported by the host's Caddyfile, so
several projects share one Caddy. Why each piece is as it is (docs/proxy.md):

- everything goes through one `route`, in the order written, so Caddy's own ordering of
  directives cannot put the app ahead of /static/ or the maintenance page;
- /static/ is read through releases/current on every request: a flip needs no reload;
  names with Django's manifest hash are cached for a year;
- /media/ is never read by Caddy: a server that sees nothing but shared/media answers it
  (provision/templates/media.service), so a link planted there leads nowhere;
- maintenance is a file Caddy looks for on every request (`file` matcher): switching it
  needs no reload; health URLs and the allowlist pass;
- the app's ports are retried for a while on a failed dial: with systemd's sockets a
  restart queues connections, and this covers a socket being re-created by setup.
"""

from __future__ import annotations

from ayna_fab.config.sites import PAGE, Site

DIR = "/etc/caddy/ayna"
MAIN = "/etc/caddy/Caddyfile"
IMPORT = f"import {DIR}/*.caddy"
ROOT_CERT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
HASHED = r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$"       # ManifestStaticFilesStorage: name.0123456789ab.css
YEAR = "public, max-age=31536000, immutable"
RETRY_AFTER = "300"
MAINTENANCE_ERROR = "ayna-maintenance"


def path(project: str) -> str:
    return f"{DIR}/{project}.caddy"


def _q(text: str) -> str:
    """A Caddyfile token in double quotes (the config rules allow no quote, backslash or brace)."""
    return '"' + text + '"'


def _addresses(site: Site, names: tuple[str, ...]) -> str:
    return ", ".join(f"http://{d}" if site.tls == "off" else d for d in names)


def _common(site: Site) -> list[str]:
    """What both of a project's blocks (its domains, its API's) start with."""
    lines = []
    if site.tls == "internal":
        lines.append("tls internal")
    elif site.tls == "auto" and site.email:
        lines.append(f"tls {site.email}")
    lines.append("encode zstd gzip")
    if site.headers:
        lines.append("header {")
        lines += [f"\t{name} {_q(value)}" for name, value in site.headers.items()]
        lines.append("}")
    lines.append("@ayna_maintenance {")
    lines.append(f"\tfile {{\n\t\troot {site.maintenance_dir}\n\t\ttry_files /{PAGE}\n\t}}")
    if site.health_paths():
        lines.append("\tnot path " + " ".join(site.health_paths()))
    if site.allow:
        lines.append("\tnot remote_ip " + " ".join(site.allow))
    lines.append("}")
    lines += [
        "handle_errors {",
        f"\t@ayna_maintenance_page expression `{{err.message}} == \"{MAINTENANCE_ERROR}\"`",
        "\thandle @ayna_maintenance_page {",
        f"\t\theader Retry-After {RETRY_AFTER}",
        "\t\theader Cache-Control no-store",
        f"\t\troot * {site.maintenance_dir}",
        f"\t\trewrite * /{PAGE}",
        "\t\tfile_server",
        "\t}",
        "}",
    ]
    return lines


def _proxy(port: int) -> list[str]:
    """A new connection to the app for every request: a kept-alive one stays with the process
    that accepted it, which a restart is stopping (uvicorn answered 500 on such connections
    under the soak test), while a new one reaches the new process through systemd's socket."""
    return [f"reverse_proxy 127.0.0.1:{port} {{", "\ttransport http {", "\t\tkeepalive off", "\t}",
            "\tlb_try_duration 10s", "\tlb_try_interval 250ms", "}"]


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [("\t" * depth + line) if line else line for line in "\n".join(lines).split("\n")]


def _block(address: str, body: list[str]) -> list[str]:
    return [f"{address} {{", *_indent(body), "}"]


def _handle(head: str, body: list[str]) -> list[str]:
    return [f"{head} {{", *_indent(body), "}"]


def render(site: Site, snippet: str | None = None) -> str:
    """The site file: the project's domains (static, media, API prefix, app) and, if it has them,
    its API's own domains; `snippet` (the project's caddy/ file) joins the domains' block."""
    out = [f"# {site.project}: written by `fab setup` from hosts.toml; changes here are replaced.", ""]
    if site.domains:
        route = [f"error @ayna_maintenance {_q(MAINTENANCE_ERROR)} 503"]
        route += _handle("handle_path /static/*", [
            f"root * {site.root}/releases/current/{site.static_dir}",
            f"@hashed path_regexp hashed {HASHED}",
            f"header @hashed Cache-Control {_q(YEAR)}",
            "file_server"])
        route += _handle("handle_path /media/*", _proxy(site.media_port))
        if site.api_prefix and site.api_port is not None:
            route += _handle(f"handle_path {site.api_prefix}/*", _proxy(site.api_port))
        app = site.web_port if site.web_port is not None else site.api_port
        route += _handle("handle", _proxy(app) if app is not None else ["respond 404"])
        body = _common(site)
        if snippet and snippet.strip():
            body += ["# the project's caddy/ snippet", *snippet.strip("\n").split("\n")]
        body += _handle("route", route)
        out += _block(_addresses(site, site.domains), body) + [""]
    if site.api_domains and site.api_port is not None:
        route = [f"error @ayna_maintenance {_q(MAINTENANCE_ERROR)} 503", *_proxy(site.api_port)]
        out += _block(_addresses(site, site.api_domains), _common(site) + _handle("route", route)) + [""]
    return "\n".join(out)
