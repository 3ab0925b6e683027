"""The program the api unit runs uvicorn through (provision/templates/asgi_serve.py, which says
why): where setup installs it, and its text. Only the host runs it: uvicorn lives in the release."""

from __future__ import annotations

from pathlib import Path

PATH = "/usr/local/lib/ayna-fab/asgi-serve"
SOURCE = Path(__file__).with_name("templates") / "asgi_serve.py"


def source() -> str:
    return SOURCE.read_text()
