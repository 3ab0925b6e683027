"""The one interpreter a release's venv is made from, in a module of its own so that a plan call,
which checks its version, need not import (and compile) everything prepare needs."""

# A plan checks its version against what the project declares (ops/planchecks.py), so uv must
# never pick another.
PYTHON = "/usr/bin/python3"
