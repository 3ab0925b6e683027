"""ayna-fab's tasks. Kept thin: each area's tasks live in ayna_fab/tasks/."""

from invoke import Collection

from ayna_fab.tasks import sandbox

ns = Collection()
ns.add_collection(sandbox.collection)
