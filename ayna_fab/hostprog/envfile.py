"""shared/.env.{env}, read exactly as systemd's EnvironmentFile= reads it.

The units get their environment from systemd; every step that runs project code
outside a unit (check, migrate, collectstatic, manage, shell, backup, restore)
gets it from here, so both see the same values. This follows systemd's own
parser (src/basic/env-file.c) state by state:

- `#` or `;` as the first non-blank character of a line starts a comment;
- blanks around a key and around an unquoted value are dropped;
- '...' is literal; "..." and bare values take backslash escapes ("..." unescapes
  only `"`, `\\`, `` ` `` and `$`, and keeps the backslash before anything else);
- a backslash ending a line joins the next one (in a comment too, up to systemd 253;
  254 and later end the comment there);
- text after a closing quote is appended (`A="x"y` is `xy`), quotes in it are literal;
- keys that are not valid names (`export FOO`, `1X`) are ignored; the last of
  repeated keys wins;
- a file with a NUL byte, or with invalid UTF-8 or a Unicode noncharacter in any key or
  value (comments may hold anything), is refused whole: the unit does not start. parse
  raises ValueError for it and read OSError.

Every file read here also teaches MASK its secrets (secrets()): whatever leaves the host
program (wire.py's answers, the deploy log) goes through MASK first.
"""

import errno
import os
import re
import stat
import urllib.parse

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WHITESPACE = " \t\n\r"
NEWLINE = "\n\r"
COMMENTS = "#;"
SHELL_NEED_ESCAPE = '"\\`$'
# What systemd's utf8_is_valid() rejects, as read() decodes it: bytes that are not UTF-8
# (surrogateescape turns them into lone surrogates) and the noncharacters.
NOT_UTF8_RE = re.compile("[\ud800-\udfff\ufdd0-\ufdef"
                         + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)) + "]")


def parse(text, spans=None):
    """{KEY: value} of an EnvironmentFile's text; ValueError if systemd would refuse it. spans: a
    list that receives (key, start, end) of every assignment, its line ending included (the text
    a writer removes to drop it)."""
    if "\0" in text:
        raise ValueError("a NUL character: systemd refuses the whole file")
    env = {}
    state = "pre_key"
    key, value = [], []
    key_ws = value_ws = None  # where trailing whitespace of the key / unquoted value begins
    start = 0                 # where the current key began
    i = 0

    def push():
        k = "".join(key[:key_ws] if key_ws is not None else key)
        v = "".join(value)
        if NOT_UTF8_RE.search(k + v):
            raise ValueError(f"invalid UTF-8 or a noncharacter in {k!r}: systemd refuses the whole file")
        if NAME_RE.fullmatch(k):
            env[k] = v
            if spans is not None:
                spans.append((k, start, i + 1))

    for i, c in enumerate(text):
        if state == "pre_key":
            if c in COMMENTS:
                state = "comment"
            elif c not in WHITESPACE:
                state, key, value, key_ws, start = "key", [c], [], None, i
        elif state == "key":
            if c in NEWLINE:
                state = "pre_key"
            elif c == "=":
                state, value_ws = "pre_value", None
            else:
                if c not in WHITESPACE:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in NEWLINE:
                push()
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in NEWLINE:
                if value_ws is not None:
                    del value[value_ws:]
                push()
                state = "pre_key"
            elif c == "\\":
                state, value_ws = "value_escape", None
            else:
                if c not in WHITESPACE:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in NEWLINE:
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in SHELL_NEED_ESCAPE:
                value.append(c)
            elif c != "\n":
                value += ["\\", c]
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in NEWLINE:
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        if state == "value" and value_ws is not None:
            del value[value_ws:]
        i = len(text) - 1
        push()
    return env


# --- writing: one key changed, every other line kept as it was --------------------------------

def quote(value):
    """value as a double-quoted EnvironmentFile value that reads back exactly (newlines included);
    ValueError for what no env file can hold (a NUL, invalid UTF-8, a noncharacter)."""
    if "\0" in value or NOT_UTF8_RE.search(value):
        raise ValueError("a NUL, invalid UTF-8 or a noncharacter: systemd would refuse the file")
    return '"' + "".join("\\" + c if c in SHELL_NEED_ESCAPE else c for c in value) + '"'


def without(text, key):
    """text with every assignment of key removed (comments and other keys untouched)."""
    for _, start, end in sorted((s for s in _spans(text) if s[0] == key), key=lambda s: -s[1]):
        text = text[:start] + text[end:]
    return text


def with_value(text, key, value):
    """text with key set to value: its last assignment rewritten in place, earlier ones removed;
    appended at the end if it had none."""
    if not NAME_RE.fullmatch(key):
        raise ValueError(f"{key!r} is not a variable name (letters, digits and _, not first a digit)")
    line = f"{key}={quote(value)}\n"
    spans = [s for s in _spans(text) if s[0] == key]
    if not spans:
        return text + ("" if not text or text.endswith(("\n", "\r")) else "\n") + line
    _, start, end = spans[-1]
    if end == len(text) and not text.endswith(("\n", "\r")):
        line = line[:-1]
    return without(text[:start], key) + line + without(text[end:], key)


def _spans(text):
    spans = []
    parse(text, spans)
    return spans


# --- secrets: what must never leave the host in text -----------------------------------------

SECRET_NAME_RE = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
URL_PASSWORD_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^:@/?#\s]*:(?P<password>.*)@", re.IGNORECASE)
QUERY_SECRET_RE = re.compile(r"[?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=(?P<value>[^&#\s]+)", re.IGNORECASE)
# Where a URL parser may cut an unencoded password: each piece can turn up alone in an error
# (a port "that could not be cast", a host name).
CUTS_RE = re.compile(r"[#/?@:%\s\[\]]")
SHORTEST = 4          # a shorter fragment is no secret worth masking everywhere
NOT_SECRET = {"true", "false", "yes", "no", "none", "null", "on", "off"}


def secrets(env):
    """The fragments of an env file's values that must not be shown: the whole value of every key
    named like a secret, and in any value the password of each URL (the whole of it up to the
    last @, as typed and percent-decoded, and every piece a parser could cut it into), and the
    value of a query parameter named like a secret. Fragments shorter than SHORTEST are left."""
    found = set()
    for key, value in env.items():
        if SECRET_NAME_RE.search(key):
            found.add(value.strip())
        candidates = [m["value"] for m in QUERY_SECRET_RE.finditer(value)]
        m = URL_PASSWORD_RE.search(value)
        if m:
            candidates.append(m["password"])
        for raw in candidates:
            for whole in {raw, urllib.parse.unquote(raw)}:
                found.add(whole)
                found.update(CUTS_RE.split(whole))
    return {f for f in found if len(f) >= SHORTEST and f.lower() not in NOT_SECRET}


class Mask:
    """Replaces known secret fragments with ***, longest first, in one regular expression pass."""

    def __init__(self, fragments=()):
        self.fragments = set()
        self.pattern = None
        self.add(fragments)

    def add(self, fragments):
        new = set(fragments) - self.fragments
        if new:
            self.fragments |= new
            ordered = sorted(self.fragments, key=len, reverse=True)
            self.pattern = re.compile("|".join(map(re.escape, ordered)))

    def text(self, text):
        return self.pattern.sub("***", text) if self.pattern is not None else text

    def data(self, obj):
        """obj with every string value in it masked (dict keys are names, never secrets, and stay)."""
        if self.pattern is None:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.data(v) for v in obj]
        return obj


MASK = Mask()   # this process's: every env file it has read


def learn(path):
    """Teach MASK the secrets of the env file at path, if it is a regular file that reads; never
    raises, and never waits on a FIFO or a device put in its place."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            with os.fdopen(fd, encoding="utf-8", errors="surrogateescape", newline="") as f:
                fd = None
                MASK.add(secrets(parse(f.read())))
    except (OSError, ValueError):
        pass
    finally:
        if fd is not None:
            os.close(fd)


def read(path):
    """The file's variables; OSError if it cannot be read, or if systemd would refuse it.

    newline="": systemd treats a CR on its own (a CR ends a line, but one inside quotes or
    after a backslash is a character), so Python must not turn CRs into newlines."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        text = f.read()
    try:
        env = parse(text)
    except ValueError as exc:
        raise OSError(errno.EINVAL, str(exc), str(path)) from None
    MASK.add(secrets(env))
    return env


def for_app(env_file, release_dir):
    """The environment project code runs with outside its units: the host's, minus what would
    change which Python runs, plus the project's env file, with the release's venv first on PATH."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(read(env_file))
    venv = os.path.join(release_dir, ".venv")
    env["VIRTUAL_ENV"] = venv
    env["PATH"] = os.path.join(venv, "bin") + ":" + env.get("PATH", "/usr/bin:/bin")
    return env
