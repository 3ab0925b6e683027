"""The Celery app: ``celery --workdir src/web -A config worker|beat``.

Broker is REDIS_URL; configuration comes from Django settings (CELERY_*).
"""

from __future__ import annotations

import os

from celery import Celery

from config.environment import load_env

load_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("uavcrew")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
