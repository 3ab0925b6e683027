"""Build steps: run on the laptop in an export of the commit, outputs sent only when they changed."""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile

import pytest

from ayna_fab.config.model import BuildStep
from ayna_fab.errors import OperationFailed
from ayna_fab.ops import build
from ayna_fab.ops.deploy import resolve
from tests.unit.test_recovery import World, git

# A tiny "asset build": the committed stylesheet, minified, plus a digest file; its output is git-ignored.
SCRIPT = ("import hashlib, os, pathlib; css = pathlib.Path('style.css').read_text(); os.makedirs('dist', exist_ok=True); "
          "out = ' '.join(css.split()); pathlib.Path('dist/app.css').write_text(out); "
          "pathlib.Path('dist/app.txt').write_text(hashlib.sha256(out.encode()).hexdigest()[:8])")


def step(**kw) -> BuildStep:
    return BuildStep(**{"name": "assets", "command": ("python3", "-c", SCRIPT), "outputs": ("dist",), **kw})


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    (w.src / "style.css").write_text("body {\n  color: red;\n}\n")
    (w.src / ".gitignore").write_text("/dist/\n")
    git(w.src, "add", "-A")
    git(w.src, "commit", "-qm", "assets")
    w.project = dataclasses.replace(w.project, build=(step(),))
    return w


def built(w: World) -> build.Built:
    source, revision = resolve(w.project, "HEAD")
    return build.run(w.project, source, revision, w.said.append)


def deploy(w: World) -> None:
    from ayna_fab.ops import runner
    from ayna_fab.ops.deploy import Deploy, Options
    source, revision = resolve(w.project, "HEAD")
    out = build.run(w.project, source, revision, w.said.append)
    runner.run(Deploy(w.cfg, w.project, source, revision, Options(), w.targets(("h1",), {}), out), w.said.append)


def upload_note(w: World) -> str:
    return [line for line in w.said if line.startswith("[h1] upload")][-1]


def test_the_build_runs_in_an_export_of_the_commit_not_the_working_tree(world):
    (world.src / "style.css").write_text("uncommitted { }\n")   # never built, never deployed
    out = built(world)
    assert out.files["dist/app.css"][0] == b"body { color: red; }"
    assert set(out.files) == {"dist/app.css", "dist/app.txt"}
    assert not (world.src / "dist").exists(), "the checkout is left as it was"


def test_outputs_go_into_the_release_although_git_ignores_them_and_only_changes_travel(world):
    deploy(world)
    rel = world.layout("h1").release(1)
    assert open(f"{rel}/dist/app.css").read() == "body { color: red; }"
    assert "6 files sent" in upload_note(world)          # 4 committed files and the 2 the build made
    world.commit("v = 2\n")                               # the build's output does not change
    deploy(world)
    assert "1 files sent" in upload_note(world)           # app.py only: dist/* copied from v1
    assert open(f"{world.layout('h1').release(2)}/dist/app.css").read() == "body { color: red; }"
    (world.src / "style.css").write_text("body { color: blue; }\n")
    git(world.src, "commit", "-qam", "blue")
    deploy(world)
    assert "3 files sent" in upload_note(world)           # style.css, dist/app.css, dist/app.txt
    assert open(f"{world.layout('h1').release(3)}/dist/app.css").read() == "body { color: blue; }"


def test_an_output_the_build_no_longer_makes_is_gone_from_the_next_release(world):
    deploy(world)
    world.project = dataclasses.replace(world.project, build=(step(command=("python3", "-c", SCRIPT + (
        "; os.remove('dist/app.txt')"))),))
    world.commit("v = 2\n")
    deploy(world)
    assert not os.path.exists(f"{world.layout('h1').release(2)}/dist/app.txt")
    assert os.path.exists(f"{world.layout('h1').release(2)}/dist/app.css")


def test_a_failing_build_stops_before_anything_remote_with_its_output(world):
    world.project = dataclasses.replace(world.project, build=(step(command=(
        "sh", "-c", "echo 'Error: Cannot find module tailwindcss' >&2; exit 2")),))
    with pytest.raises(OperationFailed) as err:
        built(world)
    assert err.value.step == "build:assets" and "Cannot find module tailwindcss" in err.value.message
    assert "nothing was sent to any host" in err.value.message and err.value.exit_code == 1


def test_a_build_that_produces_nothing_where_it_said_is_refused(world):
    world.project = dataclasses.replace(world.project, build=(step(outputs=("public/build",)),))
    with pytest.raises(OperationFailed, match="produced no public/build"):
        built(world)


def test_a_symbolic_link_in_the_outputs_is_refused(world):
    world.project = dataclasses.replace(world.project, build=(step(command=(
        "sh", "-c", "mkdir -p dist && ln -s /etc/passwd dist/leak")),))
    with pytest.raises(OperationFailed, match="dist/leak is not a regular file"):
        built(world)


def test_a_dry_run_builds_nothing(world):
    source, revision = resolve(world.project, "HEAD")
    out = build.run(world.project, source, revision, world.said.append, dry_run=True)
    assert out.files == {} and "would run python3 -c" in world.said[-1]
    assert build.changes(out, {"build": {"dist/app.css": "x"}}, []) == ([], [])   # nothing counts as gone


def test_changes_send_new_and_changed_outputs_and_name_the_gone_ones():
    now = build.Built({"a.css": (b"new", 0o644), "b.css": (b"same", 0o644)})
    before = {"build": {**build.Built({"b.css": (b"same", 0o644), "c.css": (b"old", 0o644)}).digests}}
    assert build.changes(now, before, []) == (["a.css"], ["c.css"])
    assert build.changes(now, before, ["b.css"]) == (["a.css", "b.css"], ["c.css"])  # git changed it: ours wins
    assert build.changes(now, None, []) == (["a.css", "b.css"], [])


def test_the_upload_holds_gits_files_and_the_outputs_once_each():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in (("app.py", b"x"), ("dist/app.css", b"committed")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = build.with_files(raw.getvalue(), build.Built({"dist/app.css": (b"built", 0o644)}), ["dist/app.css"])
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        assert tar.getnames() == ["app.py", "dist/app.css"]
        assert tar.extractfile("dist/app.css").read() == b"built"
    assert build.with_files(b"same", build.Built(), []) == b"same"
