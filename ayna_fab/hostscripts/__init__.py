"""Small stdlib-only Python programs that run *on* a host (python3 is on every Debian server).

One program gathers many facts in one round trip; the decisions about them
are made on the controller, in pure code.
"""

from importlib import resources


def source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.py").read_text()
