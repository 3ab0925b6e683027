"""WSGI entry point for gunicorn: ``config.wsgi:application``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from config.environment import load_env

load_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
