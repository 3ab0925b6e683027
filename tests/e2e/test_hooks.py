"""Build steps and hooks on a real sandbox host: the demo's asset build, hooks at every phase, a
laptop hook recording each outcome, and each way a build or hook can fail.

Hooks are switched to failing by flag files on the host (shared/fail-*), so one inventory
serves the whole story; a second one differs only by hook_failure = "fail".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import fab, write_inventory
from tests.e2e.test_deploy import ROOT, Repo, current, health, serving, state_of

pytestmark = pytest.mark.e2e
BUILT = "src/web/crew/static/crew/build/site.min.css"


def toml_array(argv: list[str]) -> str:
    return json.dumps(argv)   # JSON strings are TOML basic strings


def flag(name: str) -> list[str]:
    """A hook that fails (printing why) while the host has shared/fail-NAME."""
    return ["sh", "-c", f"if test -e {ROOT}/shared/fail-{name}; then echo '{name}: switched off by a flag'; "
                        "exit 3; fi"]


def hooks_toml(record: Path, failure: str = "warn") -> str:
    record_cmd = ["python3", "-c", "import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({k: v for k, v "
                  "in os.environ.items() if k.startswith('AYNA_') or k == 'SECRET_KEY'}) + '\\n')", str(record)]
    after_install = ["sh", "-c", "id -un > .hook-user; python -c 'import django, os; print(os.environ[\"PROJECT_NAME\"], "
                                 "os.environ[\"VIRTUAL_ENV\"])' > .hook-env"]
    entries = [("build", "assets", None, ["python3", "scripts/poe_commands.py", "assets"]),
               ("hooks", "compile", "after-install", after_install),
               ("hooks", "gate", "before-flip", flag("gate")),
               ("hooks", "smoke", "after-success", ["python", "scripts/poe_commands.py", "smoke"]),
               ("hooks", "chat", "after-success", flag("chat")),
               ("hooks", "cleanup", "after-failure", ["sh", "-c", "echo cleaning up after $AYNA_FAILED_RELEASE"]),
               ("laptop", "record", "after-success", record_cmd),
               ("laptop", "record-failure", "after-failure", record_cmd)]
    lines = [f'hook_failure = "{failure}"']
    for kind, name, phase, argv in entries:
        lines += [f"[[projects.uavcrew.{'build' if kind == 'build' else 'hooks'}]]", f'name = "{name}"',
                  f"command = {toml_array(argv)}"]
        if kind == "build":
            lines.append('outputs = ["src/web/crew/static/crew/build"]')
        else:
            lines.append(f'phase = "{phase}"')
        if kind == "laptop":
            lines.append('on = "laptop"')
    return "\n".join(lines)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = Repo(tmp_path_factory.mktemp("hooks-src") / "uavcrew")
    r.git("checkout", "-q", "-b", "fail-build")
    r.git("rm", "-q", "src/web/crew/static/crew/site.css")   # the asset build's input: the build fails
    r.git("commit", "-qm", "no stylesheet")
    r.git("checkout", "-q", "main")
    return r


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hooks-record") / "outcomes.jsonl"


@pytest.fixture(scope="module")
def inv(sandbox, repo, record, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    return write_inventory(tmp_path_factory.mktemp("hooks") / "hosts.toml", sandbox, source=repo.path,
                           extra_project=hooks_toml(record))


@pytest.fixture(scope="module")
def strict_inv(sandbox, repo, record, tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("hooks-strict") / "hosts.toml", sandbox, source=repo.path,
                           extra_project=hooks_toml(record, failure="fail"))


def deploy(inv, *args):
    return fab("-H", "sandbox1", "deploy", *args, hosts_file=inv)


def last_outcome(record: Path) -> dict:
    return json.loads(record.read_text().splitlines()[-1])


def releases_on_host(sandbox) -> str:
    """The releases directory, once an earlier deploy's background cleanup (.trash-*) has ended."""
    return sandbox.check(0, f"for i in $(seq 300); do ls -d {ROOT}/releases/.trash-* >/dev/null 2>&1 || break; "
                            f"sleep 0.1; done; ls -A {ROOT}/releases")


def lock_free(sandbox) -> bool:
    return sandbox.check(0, f"test ! -e {ROOT}/.deploy-lock && echo free").strip() == "free"


def live(sandbox) -> str:
    """What serves now; a first deploy for this module when nothing does yet."""
    code, out, _ = sandbox.run(0, f"readlink {ROOT}/releases/current")
    return out.strip() if code == 0 else ""


# --- the story ---------------------------------------------------------------------------------

def test_a_failing_build_stops_the_deploy_before_anything_remote(sandbox, inv, record):
    before = releases_on_host(sandbox)
    r = deploy(inv, "--ref", "fail-build")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "build:assets" in r.stderr and "site.css" in r.stderr and "nothing was sent to any host" in r.stderr
    assert "[sandbox1]" not in r.stdout                      # no connection, no step on the host
    assert releases_on_host(sandbox) == before and lock_free(sandbox)
    told = last_outcome(record)
    assert (told["AYNA_STATUS"], told["AYNA_FAILED_STEP"], told["AYNA_HOSTS"]) == ("failed", "build:assets", "sandbox1")


def test_a_deploy_builds_on_the_laptop_and_runs_its_hooks(sandbox, inv, repo, record):
    r = deploy(inv)
    print(r.stdout)   # the closing note quotes this run
    assert r.returncode == 0, r.stdout + r.stderr
    rel = current(sandbox)
    out = r.stdout
    order = ["[laptop] build:assets", "[sandbox1] install", "[sandbox1] hook:compile", "[sandbox1] check",
             "[sandbox1] preflight", "[sandbox1] hook:gate", "[sandbox1] flip", "[sandbox1] hook:smoke",
             "[sandbox1] hook:chat", "[sandbox1] record", "[laptop] hook:record"]
    where = [out.index(step) for step in order]
    assert where == sorted(where), out
    assert f"[sandbox1] hook:smoke: web: 200, release {rel}" in out   # output under host and hook name
    # The build's output is in the release and collected, though git ignores it.
    assert repo.git("check-ignore", BUILT) == BUILT and repo.git("ls-files", BUILT) == ""
    sandbox.check(0, f"test -s {ROOT}/releases/{rel}/{BUILT} && test -s {ROOT}/releases/{rel}/staticfiles/crew/build/site.min.css")
    assert "crew/build/site.min.css" in sandbox.check(0, "curl -s http://127.0.0.1:8130/")
    # after-install ran in the new release as the deploy user, with its venv and the project's .env
    assert sandbox.check(0, f"cat {ROOT}/releases/{rel}/.hook-user").strip() == "adonis"
    assert sandbox.check(0, f"cat {ROOT}/releases/{rel}/.hook-env").strip() == f"uavcrew {ROOT}/releases/{rel}/.venv"
    told = last_outcome(record)
    assert told == {**told, "AYNA_STATUS": "success", "AYNA_RELEASE": rel, "AYNA_PROJECT": "uavcrew",
                    "AYNA_HOSTS": "sandbox1", "AYNA_REVISION": repo.git("rev-parse", "HEAD"), "AYNA_FAILED_STEP": ""}
    assert "SECRET_KEY" not in told and "@" in told["AYNA_WHO"] and float(told["AYNA_DURATION"]) > 0


def test_unchanged_build_output_is_not_sent_again(sandbox, inv, repo):
    repo.mode("code-change", text="Built edition")
    r = deploy(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 files sent" in r.stdout        # the two banners; the build's two files were copied on the host
    style = repo.path / "src/web/crew/static/crew/site.css"
    style.write_text(style.read_text() + "\nfooter { color: gray; }\n")
    repo.git("commit", "-qam", "footer colour")
    r = deploy(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 files sent" in r.stdout        # site.css, and the build's site.min.css and assets.json
    assert "footer{color:gray}" in sandbox.check(0, f"cat {ROOT}/releases/current/{BUILT}")


def test_a_failing_before_flip_hook_fails_the_deploy_and_the_site_is_untouched(sandbox, inv, record):
    was = live(sandbox)
    sandbox.check(0, f"touch {ROOT}/shared/fail-gate")
    try:
        r = deploy(inv)
    finally:
        sandbox.check(0, f"rm -f {ROOT}/shared/fail-gate")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "hook:gate" in r.stderr and "gate: switched off by a flag" in r.stderr
    assert f"the live site is untouched (still {was})" in r.stderr and "[sandbox1] flip" not in r.stdout
    assert current(sandbox) == was and serving(sandbox) == {was} and lock_free(sandbox)
    failed = r.stderr.split("deploy of ")[1].split()[0]
    assert state_of(sandbox, failed) == "failed"
    told = last_outcome(record)
    assert (told["AYNA_STATUS"], told["AYNA_FAILED_STEP"], told["AYNA_RELEASE"]) == ("failed", "hook:gate", failed)


def test_a_failing_hook_after_the_flip_is_a_warning_or_with_fail_exit_1_and_stays_live(sandbox, inv, strict_inv,
                                                                                         repo):
    sandbox.check(0, f"touch {ROOT}/shared/fail-chat")
    try:
        warned = deploy(inv)
        assert warned.returncode == 0, warned.stdout + warned.stderr
        assert "warning: [sandbox1] after-success hook chat exited 3" in warned.stdout
        assert "chat: switched off by a flag" in warned.stdout
        first = current(sandbox)
        assert serving(sandbox) == {first} and state_of(sandbox, first) == "active" and lock_free(sandbox)
        repo.mode("code-change", text="Strict edition")
        failed = deploy(strict_inv)
    finally:
        sandbox.check(0, f"rm -f {ROOT}/shared/fail-chat")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "succeeded and stays live, but hooks after it failed" in failed.stderr
    second = current(sandbox)
    assert second != first and serving(sandbox) == {second} and state_of(sandbox, second) == "active"
    assert health(sandbox, "web")["revision"] == repo.git("rev-parse", "HEAD") and lock_free(sandbox)


def test_a_dry_run_lists_the_build_and_the_hooks_in_phase_order(sandbox, inv):
    r = deploy(inv, "--dry-run")
    print(r.stdout)   # the closing note quotes this run
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if "build:" in line or (" hook:" in line and "timeout" in line)]
    names = [line.split("build:" if "build:" in line else "hook:")[1].split()[0].rstrip(":") for line in lines]
    assert names == ["assets", "compile", "gate", "smoke", "chat", "cleanup", "record", "record-failure"], lines
    assert all("as adonis" in line for line in lines if line.startswith("[sandbox1]"))
    assert "nothing was changed" in r.stdout
    assert ".deleted" not in r.stdout   # the build is skipped, so none of its outputs counts as deleted


def test_the_demo_inventorys_own_build_and_hooks(sandbox, repo, tmp_path_factory):
    """hosts.toml's uavcrew entry as shipped: the asset build, the smoke test, the notification."""
    text = (Path(__file__).resolve().parents[2] / "hosts.toml").read_text()
    demo = text[text.index("[[projects.uavcrew.build]]"):text.index("[hosts.")].strip()
    inv = write_inventory(tmp_path_factory.mktemp("hooks-demo") / "hosts.toml", sandbox, source=repo.path,
                          extra_project=demo)
    repo.mode("code-change", text="Demo edition")
    r = deploy(inv)
    print(r.stdout)   # docs/walkthrough.md's sample deploy quotes this run
    assert r.returncode == 0, r.stdout + r.stderr
    rel = current(sandbox)
    assert "[laptop] build:assets" in r.stdout and f"[sandbox1] hook:smoke: api: 200, release {rel}" in r.stdout
    assert f"[laptop] hook:notify: uavcrew {rel} ({repo.git('rev-parse', 'HEAD')}) success on sandbox1" in r.stdout
