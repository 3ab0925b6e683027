"""Ending an operation: record the release states and the log line, set old releases aside, unlock.

A lock removed by hand is settled first (holder.unlock)."""

from . import calls, lock, store, units


def finish(a: calls.Finish):
    lock.require(a.root, a.token)
    return record(a.root, a.token, a.states, a.meta, a.log, a.remove, a.units)


def record(root, token, states, meta, log, remove, unit_names):
    """Record states and the log line, set old releases aside, release the lock."""
    for number, state in states.items():
        store.set_state(root, int(number), state, meta.get(number))
    if log:
        store.append_log(root, log)
    in_use = units.releases_in_use(unit_names, store.releases_dir(root)) if remove else {}
    removed = store.remove(root, [n for n in remove if n not in in_use])
    kept = {f"v{n}": pids for n, pids in in_use.items() if n in remove}
    return {"removed": removed, "kept_in_use": kept, "unlocked": lock.release(root, token)}

