"""ayna-fab's tasks. Kept thin: each area's tasks live in ayna_fab/cli/tasks/."""

from invoke import Collection

from ayna_fab.cli.tasks import provisioning as host, init, daytwo as ops, proxy, release, sandbox

ns = Collection(init.init, host.trust, host.setup, host.validate, host.env_check,
                release.deploy, release.rollback, release.status, release.list_releases, release.unlock,
                *ops.TASKS, *proxy.TASKS)
ns.add_collection(sandbox.collection)
