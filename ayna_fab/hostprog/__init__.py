"""The host program: everything ayna-fab runs on a server, as one stdlib-only package.

The laptop sends this package with every call (see ayna_fab/remote/hostcall.py), so a host
needs nothing of ayna-fab installed. Rules for code in here, because it runs on
the host's own python3 (3.11 on Debian bookworm):

- standard library only, and relative imports only (the package is named differently
  on the host);
- one call = one function in main.HANDLERS, taking one dataclass from calls.py;
- it only does what it is told and reports what it saw: decisions are the laptop's;
- it answers on stdout in one way (wire.py): `@@step` lines while it works, then one
  `@@result` line.

The laptop imports from here only what both sides must agree on (the unit test
test_import_cycles.py holds it to this list): calls.py (the calls), wire.py (the answer's
markers), envfile.py (systemd's reading of an env file), backups.py (backup names and
retention), switchover.failure_text (an activation's failure in words) and proctree.py
(a project's command whose timeout ends its whole tree: hooks here, builds and hooks there).

docs/ARCHITECTURE.md describes the protocol and where to add a call.
"""

import os

SOURCES = None  # on the host: {module: source}, set by the bootstrap before any import


def source(module):
    """The source of one of this package's modules (django_steps runs in a release's own Python)."""
    if SOURCES is not None:
        return SOURCES[module]
    with open(os.path.join(os.path.dirname(__file__), f"{module}.py")) as f:
        return f.read()
