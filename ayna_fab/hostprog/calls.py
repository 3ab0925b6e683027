"""Every call the laptop can make of the host program, and the arguments each takes.

Defined once, here: the laptop builds these (ayna_fab/commands/hostcalls.py, one typed
builder per call) and the host's handler for a call takes exactly this type.
tests/unit/test_host_contract.py proves both sides agree: every field is read by
the handler, and the handler reads nothing that is not a field.

A `lock` is the holder's record ({"by", "from", "pid", "token", "at", "message",
"operation"}); `token` is that record's token, presented by every later call of
the same operation, so an operation whose lock was taken away stops.
"""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Plan:
    """Take the lock (unless lock is None: a dry run or a read) and describe the releases. With
    the lock taken, the call stays on as the operation's holder after answering (holder.py)."""
    root: str
    env_file: str
    units: list
    lock: dict | None
    ports: list                 # the project's ports: who listens there is answered (ports.py)
    sockets: list               # its socket units, whose own listeners those may be


@dataclass(frozen=True)
class Stage:
    """Make releases/vN: unpack the upload, copy the rest from base (except the deleted names),
    link shared files. The upload comes on stdin: `archive` bytes of tar.gz, then `deleted` bytes
    of NUL-separated names; sha256 is the hash of the whole of it."""
    root: str
    token: str
    number: int
    base: int | None
    archive: int
    deleted: int
    sha256: str
    meta: dict
    links: dict


@dataclass(frozen=True)
class Prepare:
    """Install the venv, back up, run the Django steps (check, migrate, collectstatic), then the
    pre-flip check (preflight: the new release's web and api started privately), in that order."""
    root: str
    token: str
    number: int
    steps: list
    base_venv: str | None
    env_file: str
    uv_cache: str
    django_dir: str
    asgi_dir: str | None
    asgi_app: str | None
    project: str
    keep_backups: int
    backup_release: str | None
    servers: list
    preflight_timeout: float
    checks: str                 # "errors" | "strict": Django's check warnings fail the check too
    allow_debug: bool           # the check accepts settings with DEBUG = True
    uv_config: str              # setup's uv.toml from hosts.toml's index settings; used if it exists
    hooks: list                 # after-install hooks ({name, command, timeout}), run right after install
    hook_env: dict              # what those hooks are told besides the .env (AYNA_* variables)


@dataclass(frozen=True)
class Preflight:
    """The pre-flip check alone, for release vN (a fleet after its migrate; a rollback's target)."""
    root: str
    token: str
    number: int
    env_file: str
    servers: list
    timeout: float


@dataclass(frozen=True)
class Hooks:
    """Run one phase's hooks (hookrunner.py) in release vN, or in the live release (number None),
    with the units' environment plus `env` (AYNA_* variables); stop at the first failure if asked."""
    root: str
    token: str
    number: int | None
    env_file: str
    phase: str
    hooks: list
    env: dict
    stop_at_failure: bool


@dataclass(frozen=True)
class Activate:
    """Make vN live, carried to its end on the host whatever happens to the connection (a detached
    worker): point the idle slot at vN, flip, start it, restart `actions`' units (beat), health,
    stop the other slot, verify; on failure, with restore, put `back` live again (or stop the
    units when back is None); then record: record["ok"] or record["failed"], each None or
    {"states", "meta", "log", "remove", "units"} as Finish takes them (it releases the lock).
    slots: {slot: its units}; an activation journaled without them restarts `actions` alone."""
    root: str
    token: str
    number: int
    actions: list
    health: list
    http_units: list
    verify_timeout: float
    health_timeout: float
    back: int | None
    restore: bool
    record: dict
    slots: dict = None


@dataclass(frozen=True)
class Follow:
    """Reattach to this operation's activation: its steps and, once done, its outcome (timeout:
    seconds to wait for it; 0 waits to the end)."""
    root: str
    token: str
    timeout: float


@dataclass(frozen=True)
class Deactivate:
    """No good release to go back to: stop the units, remove current."""
    root: str
    token: str
    units: list


@dataclass(frozen=True)
class Finish:
    """Record release states and a log line, remove old releases (never one a process of the
    units still uses), release the lock."""
    root: str
    token: str
    states: dict
    meta: dict
    log: dict | None
    remove: list
    units: list


@dataclass(frozen=True)
class Unlock:
    """Remove the lock whose token is given (the one the caller inspected); force: any lock."""
    root: str
    token: str | None
    force: bool


@dataclass(frozen=True)
class Status:
    """The live release, its record, units, health, lock, releases and free disk."""
    root: str
    units: list
    health: list


@dataclass(frozen=True)
class History:
    """The newest `limit` entries of the project's deploy log (logs/deploys.jsonl), oldest first."""
    root: str
    limit: int


@dataclass(frozen=True)
class Migrations:
    """The migration files of the named releases."""
    root: str
    django_dir: str
    numbers: list


@dataclass(frozen=True)
class Manage:
    """exec `python manage.py ARGV` in the live release with the units' environment."""
    root: str
    env_file: str
    django_dir: str
    argv: list


@dataclass(frozen=True)
class Migrate:
    """Under the lock: back the database up (if backup), then manage.py migrate ARGV."""
    root: str
    env_file: str
    django_dir: str
    project: str
    argv: list
    backup: bool
    keep: int
    lock: dict


@dataclass(frozen=True)
class Backup:
    """Back the project's database up (pg_dump, or SQLite's backup API) into shared/backups, keep the
    newest `keep`."""
    root: str
    env_file: str
    project: str
    release: str | None
    keep: int | None


@dataclass(frozen=True)
class Backups:
    """The project's backups, newest first."""
    root: str
    project: str


@dataclass(frozen=True)
class Restore:
    """Under the lock: back up (if safety), stop the units, restore `name`, start them again."""
    root: str
    env_file: str
    project: str
    name: str
    units: list
    keep: int
    lock: dict
    safety: bool


@dataclass(frozen=True)
class EnvWrite:
    """Under the operation's lock: the env file's new text comes on stdin (never an argument) and
    goes in place through the project's env writer (sudo writer, provision/envwriter.py); answers
    which keys differ, never a value."""
    root: str
    token: str
    env_file: str
    writer: str


@dataclass(frozen=True)
class Exec:
    """exec argv in the live release's directory as the deploy user, with the units' environment
    and the release's venv first on PATH."""
    root: str
    env_file: str
    argv: list


@dataclass(frozen=True)
class Services:
    """Each unit's state, main PID, memory and start time."""
    units: list


@dataclass(frozen=True)
class Facts:
    """What validate judges: the deploy user, directories, units, env file, sudo rights, listeners."""
    user: str
    dirs: list
    units: list
    env: str


@dataclass(frozen=True)
class SitePage:
    """The project's maintenance switch (sitepage.py): page is the HTML Caddy answers with while it
    is on (written), or None (removed: off)."""
    root: str
    page: str | None


@dataclass(frozen=True)
class Ports:
    """Who listens on these ports (users, processes), and which of them these socket units hold."""
    ports: list
    sockets: list


# Setup's calls, run as root (hostprog/setupfiles.py): no link in a directory another user can write
# is followed.

@dataclass(frozen=True)
class Dirs:
    """Create the layout's directories or fix their owner and mode: [path, owner, group, octal mode], parents first."""
    dirs: list


@dataclass(frozen=True)
class EnvFile:
    """The env file at path, root's, 0640 for the user's group. upload: its new text comes on stdin, written if
    missing (or differing, with replace); answers the keys that differ. database_url: answer its
    DATABASE_URL too."""
    path: str
    user: str
    upload: bool
    replace: bool
    database_url: bool


@dataclass(frozen=True)
class UvConfig:
    """The project's uv.toml at path: text, root's and 0644, or removed when text is None."""
    path: str
    text: str | None


@dataclass(frozen=True)
class AuthorizeKey:
    """The user's ~/.ssh/authorized_keys holds this public key."""
    user: str
    key: str


CALLS = {cls.__name__.lower(): cls for cls in (
    Plan, Stage, Prepare, Preflight, Hooks, Activate, Follow, Deactivate, Finish, Unlock, Status, Migrations, History,
    Manage, Migrate, Backup, Backups, Restore, EnvWrite, Exec, Services, Facts, Ports, Dirs, EnvFile, UvConfig,
    AuthorizeKey, SitePage)}


def name_of(call):
    return type(call).__name__.lower()


def field_names(cls):
    return [f.name for f in fields(cls)]
