"""ayna-fab's tasks. Kept thin: each area's tasks live in ayna_fab/tasks/."""

from invoke import Collection

from ayna_fab.tasks import host, sandbox

ns = Collection(host.trust, host.setup, host.validate, host.env_check)
ns.add_collection(sandbox.collection)
