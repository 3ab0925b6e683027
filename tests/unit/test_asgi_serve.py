"""The api unit runs uvicorn through asgi-serve (provision/templates/asgi_serve.py): setup installs
it before the units that name it, and only for a project that runs an api."""

from __future__ import annotations

from pathlib import Path

from ayna_fab.config import model as config
from ayna_fab.provision import asgiserve, unitfiles as units

REPO = Path(__file__).resolve().parents[2]


def test_the_api_unit_runs_uvicorn_through_asgi_serve_with_the_release_venvs_python():
    cfg = config.load(REPO / "hosts.toml")
    text = units.render_all(cfg, None, cfg.projects["uavcrew"])["uavcrew-api-green.service"]
    assert f"ExecStart=/opt/ayna/uavcrew/releases/green/.venv/bin/python {asgiserve.PATH} \\\n" in text


def test_the_program_stops_accepting_and_waits_before_uvicorns_own_shutdown():
    src = asgiserve.source()
    assert "uvicorn.server.Server.shutdown = _shutdown" in src
    body = src.split("async def _shutdown", 1)[1].split("\n\n", 1)[0]
    closes, waits, then = body.index("server.close()"), body.index("asyncio.sleep(GRACE)"), \
        body.index("_uvicorns_shutdown(self, sockets)")
    assert closes < waits < then
    assert "GRACE = 0.5" in src
