"""A failed install in words: uv's own reason first, then what a build printed.

uv puts its reason in a few lines (`error:`, `cause:`, `hint:`, or the tree of a terminal's
output) around what a package's build backend wrote, which may be hundreds of lines of
setuptools ending in a compiler's complaint; the tail of the whole output showed only the
latter. A source build on a server means a locked package had no wheel for its Python and
platform, so that is said too, with the ways out.
"""

import re

REASON = re.compile(r"^\s{0,2}(error|cause|hint|help|warning):|^\s*(×|├─▶|╰─▶)")
BUILD = re.compile(r"Failed to build `([A-Za-z0-9_.\-]+)")
KEEP = 20   # lines of the build's own output, from its end


def explain(output):
    """The install step's output as people should read it (the whole when uv gave no reason)."""
    lines = output.strip().splitlines()
    reason = [line.rstrip() for line in lines if REASON.match(line)]
    if not reason:
        return output
    rest = [line for line in lines if not REASON.match(line) and line.strip()]
    said = reason[:]
    built = BUILD.search(output)
    if built:
        name = built[1]
        said.append(f"{name} has no wheel for the host's Python and platform in the package index, so uv "
                    f"tried to build it from source there. Ways out: a wheel of {name} in the index; a "
                    f"compiler and {name}'s build needs on the host; or, if the project does not use it "
                    f"(a uwsgi when gunicorn serves), `uv remove {name}` and commit the lock")
    if rest:
        said.append(f"the last {min(KEEP, len(rest))} of {len(rest)} lines it printed besides:")
        said.extend(rest[-KEEP:])
    return "\n".join(said)
