"""Changing a project's env file on its hosts, then restarting its units as a deploy does.

    lock + plan  each host: take the deploy lock (refused while a deploy holds it), read the releases
    write        each host: the new text, computed from the host's own for `env set` / `unset`, goes
                 on stdin to the env writer; the old text stays on the laptop, in memory, to put back
    restart      in batches: the live release activated again (switchover.py: restart every unit
                 behind its socket, health, verify), so the units read the new file, no request lost
    record       each host: a line in the deploy log naming the keys, the lock released

If the units do not come up healthy with the new file, the old one is written back and the live
release activated again with it. Nothing here prints or logs a value: only keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.model import Config, Project
from ayna_fab.errors import AynaFabError, NeedsAttention, OperationFailed, UsageError
from ayna_fab.ops import activation, deploy, lockrecord as lock, runner
from ayna_fab.ops.runner import BATCHES, EACH, HostRun, Phase, RunState
from ayna_fab.provision import envcheck, envwriter, localenv

NewText = Callable[[str | None], str]   # the host's current text (None: no file yet) -> the new text


def local_text(project: Project) -> str:
    """The local env file to push (provision/localenv.py); refused when the project names none."""
    text = localenv.read(project)
    if text is None:
        raise UsageError(f"{project.name} has neither env_command nor env_file in hosts.toml", step="env file",
                         hint="set one of them: the env file to push")
    return text


def keys_text(keys: dict) -> str:
    return envcheck.KeyDiff(tuple(keys["added"]), tuple(keys["removed"]), tuple(keys["changed"])).summary()


class EnvPush(runner.Operation):
    name = "env push"

    def __init__(self, config: Config, project: Project, new_text: NewText, targets: list[HostRun], *,
                 event: str = "env push", verify_timeout: float = 30.0, health_timeout: float = 60.0) -> None:
        self.config, self.project, self.new_text, self.targets = config, project, new_text, targets
        self.parallel = config.defaults.parallel
        self.event, self.verify_timeout, self.health_timeout = event, verify_timeout, health_timeout
        self.phases = PHASES
        self.old: dict[str, str | None] = {}      # host -> the text it had (kept in memory only)
        self.keys: dict[str, dict] = {}           # host -> the keys that changed there
        self.written: set[str] = set()

    def batches(self) -> list[list[HostRun]]:
        """Restarts go in the project's batches, as a deploy's flips do."""
        return runner.batches(self.targets, str(self.project.batch))

    def lock_and_plan(self, t: HostRun) -> None:
        deploy.lock_and_plan(t, None if t.dry_run else t.owner)
        t.show("lock + plan", t.steps["lock + plan"],
               note=f"live: {t.live_before.name if t.live_before else 'none'}")

    def write(self, t: HostRun) -> None:
        started = time.monotonic()
        old = t.remote.read_text(t.layout.env_file, step="env file")
        new = self.new_text(old)
        values = envcheck.parse(new)
        bad = envcheck.problems(values, self.project.name, self.project.port("web"), self.project.port("api"))
        if bad:
            raise UsageError("the new env file: " + "; ".join(bad), host=t.name, step="env file",
                             hint="nothing was changed (values are never shown)")
        self.old[t.name] = old
        res = t.call(cmd.env_write(t.layout, t.token, envwriter.path(self.project.name)), stdin=new)
        if res is None:   # a dry run
            return
        if res.get("error"):
            raise OperationFailed(res["detail"], host=t.name, step="env file",
                                  hint=f"setup installs the env writer and its sudoers rule: fab -H {t.name} setup")
        self.keys[t.name] = res["keys"]
        if res["written"]:
            self.written.add(t.name)
        t.show("env file", time.monotonic() - started,
               note=keys_text(res["keys"]) if res["written"] else "unchanged")

    def restart(self, t: HostRun) -> None:
        if t.name not in self.written and not t.dry_run:
            return   # nothing changed here: nothing to restart
        if t.live_before is None:
            t.say(f"[{t.name}] no live release: the units read the new file when the first deploy starts them")
            return
        res = activation.activate(t, t.live_before.number, activation.unit_actions(self.project),
                                  verify_timeout=self.verify_timeout, health_timeout=self.health_timeout,
                                  step="restart")
        if res is not None and not res["ok"]:
            raise OperationFailed(res.get("reason") or activation.failure_text(res["result"]), host=t.name,
                                  step="restart")

    def log(self, t: HostRun, result: str, reason: str | None = None) -> dict:
        return {"event": self.event, "result": result, "keys": self.keys.get(t.name),
                "release": t.live_before.name if t.live_before else None, "by": lock.who(), "at": lock.now(),
                **({"reason": reason[-2000:]} if reason else {})}

    def finish(self, t: HostRun) -> None:
        started = time.monotonic()
        t.call(cmd.finish(t.layout, t.project, t.token, {}, {}, self.log(t, "ok") if t.name in self.written
                          else None, []))
        t.move(RunState.RECORDED_LIVE if t.state.flipped else RunState.RELEASED)
        t.show("record", time.monotonic() - started)

    def recover(self, t: HostRun, cause: BaseException, phase: str) -> AynaFabError:
        why = runner.reason(cause)
        err = cause if isinstance(cause, AynaFabError) else OperationFailed(why, host=t.name, step=phase)
        if not t.state.holds_lock:
            return err
        if t.name in self.written:
            old = self.old.get(t.name)
            if old is None:
                return NeedsAttention(f"{why}; the host had no env file before, so there is none to put back",
                                      host=t.name, step="env file", hint=f"fab -H {t.name} env.push with a good "
                                      f"file; the lock is kept: fab -H {t.name} unlock")
            try:
                res = t.call(cmd.env_write(t.layout, t.token, envwriter.path(self.project.name)), stdin=old)
                if res and res.get("error"):
                    raise OperationFailed(res["detail"], host=t.name, step="env file")
                if t.state.flipped:
                    activation.put_back(t, self.verify_timeout, self.health_timeout)
            except AynaFabError as again:
                return NeedsAttention(f"{why}; then putting the old env file back failed: {again.message}",
                                      host=t.name, step="restore",
                                      hint=f"fab -H {t.name} status; the lock is kept: fab -H {t.name} unlock")
            t.call(cmd.finish(t.layout, t.project, t.token, {}, {}, self.log(t, "failed", why), []))
            t.move(RunState.RECORDED_FAILED)
            what = ("the units did not come up healthy with the new env file" if phase == "restart"
                    else f"stopped at {phase}")
            return OperationFailed(f"{what}; the old env file is back" + (" and serving" if t.live_before else "")
                                   + f"\n{activation.indent(why)}", host=t.name, step=phase,
                                   hint=f"see why: fab -H {t.name} logs")
        try:
            t.call(cmd.unlock(t.layout, t.token))
            t.move(RunState.RELEASED)
        except AynaFabError as lost:
            why += f"\nthe lock could not be released ({lost.message})"
        return err


PHASES = [
    Phase("lock + plan", EnvPush.lock_and_plan, EACH),
    Phase("write", EnvPush.write, EACH),
    Phase("restart", EnvPush.restart, BATCHES),
    Phase("record", EnvPush.finish, EACH),
]
