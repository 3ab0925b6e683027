"""ayna-fab's tasks for `fab` in this repository; the namespace itself is ayna_fab/cli/namespace.py."""

from ayna_fab.cli.namespace import ns  # noqa: F401  (fab looks for `ns`)
