"""env.push / env.set / env.unset as an operation (ops/envpush.py), run by the runner against the real
host program on fake hosts (tests/fakehost.py): the lock, the write through the env writer, the
restart through the deploys' activation, and the old file put back when the units fail with the new."""

from __future__ import annotations

from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.hostprog import envfile
from ayna_fab.ops import envpush, lockrecord as lock, runner
from tests.unit.test_recovery import HOSTS, World

GOOD = ("PROJECT_NAME=demo\nDJANGO_SETTINGS_MODULE=demo.settings\nSECRET_KEY=old-secret-value\n"
        "DATABASE_URL=postgresql://demo@localhost/demo\nREDIS_URL=redis://localhost:6379/0\n"
        "WEB_PORT=8200\nAPI_PORT=8201\n")


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    for h in HOSTS:
        Path(w.layout(h).env_file).write_text(GOOD)
    w.deploy(hosts=HOSTS)    # v1 live everywhere
    for h in HOSTS:
        w.states[h].restarts.clear()
    return w


def change(world, new_text, hosts=("h1",), event="env push"):
    op = envpush.EnvPush(world.cfg, world.project, new_text, world.targets(hosts, {}), event=event)
    runner.run(op, world.said.append)
    return op


def env(world, host="h1") -> str:
    return Path(world.layout(host).env_file).read_text()


def test_a_push_writes_through_the_writer_restarts_every_unit_of_the_live_release_and_logs_keys_only(world):
    new = GOOD.replace("old-secret-value", "new-secret-value") + "EXTRA='a # b'\n"
    op = change(world, lambda old: new, hosts=HOSTS)
    for h in HOSTS:
        assert env(world, h) == new and world.states[h].env_writes == 1
        assert sorted(u for verb, u in world.states[h].restarts if verb == "start") == [   # the idle slot
            "demo-api-green.service", "demo-celery-green.service", "demo-web-green.service"]
        assert sorted(u for verb, u in world.states[h].restarts if verb == "stop") == [    # then the live one
            "demo-api-blue.service", "demo-celery-blue.service", "demo-web-blue.service"]
        assert world.current(h) == 1 and not world.locked(h)
        last = world.log(h)[-1]
        assert last["event"] == "env push" and last["result"] == "ok"
        assert last["keys"] == {"added": ["EXTRA"], "removed": [], "changed": ["SECRET_KEY"]}
    assert op.written == set(HOSTS)
    shown = "\n".join(world.said) + "".join(Path(world.layout(h).logs, "deploys.jsonl").read_text() for h in HOSTS)
    assert "new-secret-value" not in shown and "old-secret-value" not in shown


def test_an_unchanged_file_is_not_written_and_nothing_restarts(world):
    change(world, lambda old: old)
    assert world.states["h1"].env_writes == 0 and world.states["h1"].restarts == []
    assert not world.locked()


def test_set_changes_one_key_of_the_hosts_own_file_exactly(world):
    value = "p#ss 'w\"d' $HOME \\n"
    change(world, lambda old: envfile.with_value(old, "SECRET_KEY", value), event="env set")
    assert envfile.parse(env(world)) == {**envfile.parse(GOOD), "SECRET_KEY": value}


def test_a_push_is_refused_while_a_deploy_holds_the_lock(world):
    from ayna_fab.hostprog import lock as host_lock
    host_lock.take(world.layout("h1").root, lock.owner("deploy"))
    with pytest.raises(OperationFailed, match="holds the lock"):
        change(world, lambda old: old + "X=1\n")
    assert env(world) == GOOD and world.states["h1"].restarts == []


def test_a_file_missing_what_the_standard_requires_is_refused_before_anything_changes(world):
    with pytest.raises(Exception, match="SECRET_KEY is missing"):
        change(world, lambda old: envfile.without(old, "SECRET_KEY"))
    assert env(world) == GOOD and world.states["h1"].env_writes == 0 and not world.locked()


def test_units_that_fail_with_the_new_file_get_the_old_one_back_and_restarted(world):
    world.states["h1"].broken_live.add(1)     # unhealthy once restarted with the new file

    def broken(old):
        return old.replace("old-secret-value", "a-value-that-breaks-it")

    real_answer = world.targets(("h1",), {})[0].remote.answer.__func__

    def answer(self, name, call):   # health comes back once the old file is back
        if name == "envwrite" and self.stdin == GOOD:
            self.state.broken_live.discard(1)
        return real_answer(self, name, call)

    import tests.fakehost as fakehost
    saved = fakehost.FakeRemote.answer
    fakehost.FakeRemote.answer = answer
    try:
        with pytest.raises(OperationFailed, match="old env file is back and serving"):
            change(world, broken)
    finally:
        fakehost.FakeRemote.answer = saved
    assert env(world) == GOOD and world.states["h1"].env_writes == 2
    assert world.current() == 1 and not world.locked()
    assert world.log()[-1]["event"] == "env push" and world.log()[-1]["result"] == "failed"


def project_with(tmp_path, **keys):
    (tmp_path / "hosts.toml").write_text('[projects.demo]\nsource = "."\nenv = "production"\nport_base = 8200\n'
                                         + "".join(f"{k} = {v}\n" for k, v in keys.items())
                                         + '\n[hosts.h1]\nhostname = "192.0.2.1"\nprojects = ["demo"]\n')
    return config.load(tmp_path / "hosts.toml").projects["demo"]


def test_env_command_is_the_local_file_and_a_failure_never_shows_its_output(tmp_path):
    p = project_with(tmp_path, env_command='["sh", "-c", "printf \'SECRET_KEY=from-the-vault\\\\n\'"]')
    assert envpush.local_text(p) == "SECRET_KEY=from-the-vault\n"
    p = project_with(tmp_path, env_command='["sh", "-c", "echo SECRET_KEY=half-a-secret; exit 4"]')
    with pytest.raises(UsageError) as err:
        envpush.local_text(p)
    assert "exited 4" in str(err.value) and "half-a-secret" not in str(err.value)


def test_env_command_comes_before_env_file(tmp_path):
    (tmp_path / "demo.env").write_text("A=file\n")
    p = project_with(tmp_path, env_file='"demo.env"', env_command='["echo", "A=command"]')
    assert envpush.local_text(p) == "A=command\n"


def test_a_dry_run_reads_but_changes_nothing(world):
    op = envpush.EnvPush(world.cfg, world.project, lambda old: old + "X=1\n", world.targets(("h1",), {}, dry_run=True))
    runner.run(op, world.said.append)
    assert env(world) == GOOD and world.states["h1"].env_writes == 0 and world.states["h1"].restarts == []
    assert not world.locked() and any("envwrite" in line for line in world.said)
