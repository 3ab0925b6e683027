"""ASGI entry point, for running the Django site under an ASGI server."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from config.environment import load_env

load_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_asgi_application()
