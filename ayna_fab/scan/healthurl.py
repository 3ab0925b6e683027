"""A health URL that answers 200 on a fresh deploy, found in the project's URL configuration.

`/` of a CMS answers 404 until someone adds a page, and a pre-flip check would wait out its
timeout on it. In order: a route of the project's own named like a health check (`health/`,
`healthz`, `ping`), django-health-check's URLs, a view at `/` that is the project's own (not an
include of a CMS), the Django admin's login page (200 without content, when the admin is
routed), and `/` last, said to be a fallback.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

HEALTH_RE = re.compile(r"(^|/)(health|healthz|healthcheck|health-check|ht|ping|alive|ready|readyz|livez)/?$")
ROUTE_FUNCS = {"path", "re_path", "url"}


@dataclass(frozen=True)
class Health:
    url: str
    why: str
    fallback: bool = False   # no route known to answer: the URL may not
    view: bool = False       # a health view (not a page that happens to answer)


def _route(node: ast.Call) -> str | None:
    """A route with no parameters, as a URL path without the leading slash."""
    if not node.args or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
        return None
    text = node.args[0].value
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    if name != "path":
        text = text.removeprefix("^").removesuffix("$").replace("\\/", "/")
    if re.search(r"[<(\[*+?|\\]", text):
        return None
    return text


def _routes(tree: ast.AST) -> list[tuple[str, ast.expr | None]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (getattr(node.func, "id", None) in ROUTE_FUNCS
                                           or getattr(node.func, "attr", None) in ROUTE_FUNCS):
            route = _route(node)
            if route is not None:
                out.append((route, node.args[1] if len(node.args) > 1 else None))
    return out


def _included(target: ast.expr | None) -> str | None:
    """include("app.urls"): the module; None for anything else."""
    if isinstance(target, ast.Call) and getattr(target.func, "id", getattr(target.func, "attr", "")) == "include" \
            and target.args and isinstance(target.args[0], ast.Constant) and isinstance(target.args[0].value, str):
        return target.args[0].value
    return None


def _is_include(target: ast.expr | None) -> bool:
    return isinstance(target, ast.Call) and getattr(target.func, "id", getattr(target.func, "attr", "")) == "include"


def _parse(path: Path | None) -> ast.AST | None:
    try:
        return ast.parse(path.read_text(errors="replace")) if path else None
    except (OSError, SyntaxError, ValueError):
        return None


def django(base: Path, urlconf: str | None, module_path) -> Health:
    """base: manage.py's folder; urlconf: ROOT_URLCONF; module_path(base, module) -> Path | None."""
    tree = _parse(module_path(base, urlconf) if urlconf else None)
    if tree is None:
        return Health("/", "no URL configuration was read", fallback=True)
    routes = _routes(tree)
    # one level of the project's own includes, for a health route inside an app
    for prefix, target in list(routes):
        module = _included(target)
        if module == "health_check.urls":
            return Health("/" + prefix, "django-health-check's URLs are routed there", view=True)
        sub = _parse(module_path(base, module)) if module else None
        if sub is not None:
            routes += [(prefix + r, t) for r, t in _routes(sub)]
    for route, target in routes:
        if HEALTH_RE.search(route) and not _is_include(target):
            return Health("/" + route, "a health route of the project's own", view=True)
    for route, target in routes:
        if route == "" and target is not None and not _is_include(target):
            return Health("/", "the project's own view answers at /")
    for route, target in routes:
        if isinstance(target, ast.Attribute) and ast.unparse(target).endswith("admin.site.urls"):
            return Health(f"/{route}login/", "no health view was found: the Django admin's login page answers 200 "
                          "without content", fallback=True)
    return Health("/", "no health view and no view of the project's own at / were found: / must answer 200",
                  fallback=True)
