"""Caddy on a host: install it, put a project's site file in place, reload; and what it is doing.

A new site file is checked with `caddy validate` against the whole configuration it would
join (the host's Caddyfile and every other project's site file, copied aside) before it
replaces the old one, so a bad file, or a bad snippet of the project's, changes nothing.
A change is applied with `systemctl reload caddy` (Caddy's graceful reload: the old
configuration finishes its requests, listeners stay open).
"""

from __future__ import annotations

import json

from ayna_fab.provision import caddyfile, unitfiles
from ayna_fab.remote.transport import Command

from . import heredoc, q
from .setup import UNIT_DIR

VALIDATE_HINT = "fix the site (hosts.toml) or the project's caddy/ snippet; the host was left as it was"


def _install() -> list[str]:
    return [
        "if ! command -v caddy >/dev/null 2>&1; then",
        "  export DEBIAN_FRONTEND=noninteractive",
        "  apt-get install -y -q caddy >/dev/null 2>&1 || { apt-get update -q >/dev/null && "
        "apt-get install -y -q caddy >/dev/null; }",
        "  echo \"changed: installed caddy $(caddy version | cut -d' ' -f1)\"",
        "fi",
    ]


def _running(reload: str) -> list[str]:
    return [
        "if [ \"$(systemctl is-enabled caddy 2>/dev/null || true)\" != enabled ]; then",
        "  systemctl enable --quiet caddy; echo 'changed: enabled caddy'",
        "fi",
        "if ! systemctl is-active --quiet caddy; then systemctl start caddy; echo 'changed: started caddy'",
        f"elif [ {reload} = 1 ]; then systemctl reload caddy; echo 'changed: reloaded caddy (graceful)'",
        "fi",
    ]


def install_site(project: str, text: str) -> Command:
    """Caddy (from the distribution, if missing), the project's site file, the Caddyfile's import
    of the site files, each only if it differs; validated first; then a graceful reload."""
    dest = q(caddyfile.path(project))
    main = q(caddyfile.MAIN)
    imp = q(caddyfile.IMPORT)
    lines = ["set -eu", *_install(),
             "stage=$(mktemp -d)", "trap 'rm -rf \"$stage\"' EXIT",
             heredoc('"$stage/site"', text),
             "reload=0", "need_import=0",
             f"grep -qxF {imp} {main} 2>/dev/null || need_import=1",
             f"if ! cmp -s \"$stage/site\" {dest} || [ $need_import = 1 ]; then",
             "  mkdir \"$stage/sites\" \"$stage/home\"",
             f"  for f in {q(caddyfile.DIR)}/*.caddy; do [ -f \"$f\" ] && cp \"$f\" \"$stage/sites/\"; done",
             f"  cp \"$stage/site\" \"$stage/sites/\"{q(project + '.caddy')}",
             f"  {{ grep -vxF {imp} {main} 2>/dev/null || true; echo \"import $stage/sites/*.caddy\"; }}"
             " > \"$stage/Caddyfile\"",
             "  if ! out=$(cd \"$stage\" && HOME=\"$stage/home\" XDG_DATA_HOME=\"$stage/home\" "
             "XDG_CONFIG_HOME=\"$stage/home\" caddy validate --adapter caddyfile --config \"$stage/Caddyfile\" 2>&1); then",
             f"    echo {q(f'caddy validate refused the site of {project}; nothing was changed:')} >&2",
             "    printf '%s\\n' \"$out\" | grep -v '\"level\":\"info\"' | tail -n 20 >&2",
             "    exit 1",
             "  fi",
             f"  install -d -m 755 -o root -g root {q(caddyfile.DIR)}",
             f"  if ! cmp -s \"$stage/site\" {dest}; then",
             f"    install -m 644 -o root -g root \"$stage/site\" {dest}",
             f"    echo {q(f'changed: wrote {caddyfile.path(project)}')}",
             "  fi",
             "  if [ $need_import = 1 ]; then",
             f"    printf '\\n# ayna-fab: one site file per project\\n%s\\n' {imp} >> {main}",
             f"    echo {q(f'changed: {caddyfile.MAIN} imports {caddyfile.DIR}/*.caddy')}",
             "  fi",
             "  reload=1",
             "fi",
             *_running("$reload")]
    return Command("\n".join(lines), "caddy", hint=VALIDATE_HINT)


def install_media(name: str, text: str) -> Command:
    """Caddy (from the distribution, if missing: the server is its file-server) and the project's
    media server unit (provision/templates/media.service): installed if it differs, enabled,
    restarted when it changed, started when it is not running; it must then be active, since the
    site about to be written proxies /media/ to it."""
    dest = q(f"{UNIT_DIR}/{name}")
    return Command("\n".join([
        "set -eu", *_install(), "stage=$(mktemp)", "trap 'rm -f \"$stage\"' EXIT",
        heredoc('"$stage"', text),
        "changed=0",
        f"if ! cmp -s \"$stage\" {dest}; then",
        f"  install -m 644 \"$stage\" {dest}; systemctl daemon-reload; changed=1",
        f"  echo {q(f'changed: installed {name}')}",
        "fi",
        f"if [ \"$(systemctl is-enabled {q(name)} 2>/dev/null || true)\" != enabled ]; then",
        f"  systemctl enable --quiet {q(name)}; echo {q(f'changed: enabled {name}')}",
        "fi",
        f"if ! systemctl is-active --quiet {q(name)}; then systemctl start {q(name)}; "
        f"echo {q(f'changed: started {name}')}",
        f"elif [ $changed = 1 ]; then systemctl restart {q(name)}; echo {q(f'changed: restarted {name}')}",
        "fi",
        f"systemctl is-active --quiet {q(name)} || {{ systemctl status --no-pager {q(name)} >&2 || true; exit 1; }}",
    ]), "media server")


def remove_site(project: str) -> Command:
    """A project with no domains on this host any more, or taken off it (fab remove): its site file
    goes and a running Caddy reloads gracefully, serving the other projects' sites on."""
    dest = q(caddyfile.path(project))
    return Command("\n".join([
        "set -eu",
        f"if [ -e {dest} ]; then",
        f"  rm -f {dest}; echo {q(f'changed: removed {caddyfile.path(project)}')}",
        "  if systemctl is-active --quiet caddy; then systemctl reload caddy; "
        "echo 'changed: reloaded caddy (graceful)'; fi",
        "fi",
    ]), "caddy")


def state(project: str, page: str, validate: bool) -> Command:
    """Caddy's state and this project's site file, for status and (`validate`: with the host's
    whole configuration checked) for validate. Changes nothing."""
    dest = q(caddyfile.path(project))
    check = [] if not validate else [
        "if command -v caddy >/dev/null 2>&1 && [ -f /etc/caddy/Caddyfile ]; then",
        "  d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT",
        "  if (cd \"$d\" && HOME=\"$d\" XDG_DATA_HOME=\"$d\" XDG_CONFIG_HOME=\"$d\" caddy validate --adapter caddyfile "
        "--config /etc/caddy/Caddyfile >/dev/null 2>&1); then echo valid=1; else echo valid=0; fi",
        "fi"]
    return Command("\n".join([
        "if command -v caddy >/dev/null 2>&1; then echo installed=1; else echo installed=0; fi",
        "echo active=$(systemctl is-active caddy 2>/dev/null || true)",
        f"if [ -f {dest} ]; then echo site=1; echo sha=$(sha256sum < {dest} | cut -d' ' -f1); else echo site=0; fi",
        f"grep -qxF {q(caddyfile.IMPORT)} {q(caddyfile.MAIN)} 2>/dev/null && echo imported=1 || echo imported=0",
        f"[ -f {q(page)} ] && echo maintenance=1 || echo maintenance=0",
        f"echo media=$(systemctl is-active {q(unitfiles.media_name(project))} 2>/dev/null || true)",
        *check,
    ]), "caddy", changes=False)


def parse_state(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


PROBE = r'''
import json, socket, ssl, sys
for domain, path, secure in json.loads(sys.argv[1]):
    try:
        raw = socket.create_connection(("127.0.0.1", 443 if secure else 80), timeout=10)
        if secure:
            ctx = ssl.create_default_context()
            if secure == "internal":  # Caddy's own CA: its root is caddy's; the route is what is checked
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            raw = ctx.wrap_socket(raw, server_hostname=domain)
        with raw:
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
            head = raw.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
        print(json.dumps([domain, path, head]))
    except Exception as e:
        print(json.dumps([domain, path, f"error: {e}"]))
'''


def probe(checks: list[tuple[str, str, str]]) -> Command:
    """GET each (domain, path) through the host's own Caddy (127.0.0.1, the domain as SNI and
    Host); `tls` "off" speaks HTTP on 80. Prints one JSON line per check: domain, path, status line."""
    args = [[d, p, False if tls == "off" else tls] for d, p, tls in checks]
    return Command(f"python3 -c {q(PROBE)} {q(json.dumps(args))}", "caddy", changes=False)
