"""ayna-fab: deploy Ayna Python projects to servers over SSH.

The package keeps deciding apart from doing: modules that plan build commands
as data; one thin layer runs them on hosts.
"""

__version__ = "0.1.0"
