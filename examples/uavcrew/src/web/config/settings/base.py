"""Settings shared by every environment; all values come from the environment.

See .env.example at the project root for every variable and its meaning.
"""

from __future__ import annotations

import os
import socket
import tempfile

from config.environment import (
    PROJECT_ROOT,
    WEB_ROOT,
    env_int,
    env_list,
    env_str,
    load_env,
    parse_database_url,
    read_release,
)

load_env()

# --- Paths ------------------------------------------------------------------
# BASE_DIR is the Django project root (src/web, where manage.py lives);
# PROJECT_ROOT is the release root (where pyproject.toml and .env live).
BASE_DIR = WEB_ROOT

# --- Identity ---------------------------------------------------------------
PROJECT_NAME = env_str("PROJECT_NAME", "uavcrew")
# Which release this process was loaded from (read once, at import).
AYNA_RELEASE = read_release(PROJECT_ROOT)
HOSTNAME = socket.gethostname()

# --- Core -------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY", required=True)
DEBUG = False

# 127.0.0.1 and localhost are always accepted: the services bind to loopback
# and the deploy tool checks their health from the host itself.
ALLOWED_HOSTS = list(dict.fromkeys(["127.0.0.1", "localhost", *env_list("ALLOWED_HOSTS")]))
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crew",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database (PostgreSQL through psycopg 3) ---------------------------------
DATABASES = {"default": parse_database_url(env_str("DATABASE_URL", required=True))}
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery -----------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", required=True)

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
# No task may run longer than this; the worker unit's TimeoutStopSec is longer,
# so a stop or restart lets running tasks finish (warm shutdown).
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_TIME_LIMIT = 60
# Beat keeps its schedule state in a file. Release directories are replaced on
# every deploy, so it lives outside them (the unit passes --schedule with the
# same path under /opt/ayna/uavcrew/logs).
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "CELERY_BEAT_SCHEDULE",
    os.path.join(tempfile.gettempdir(), f"{PROJECT_NAME}-celerybeat-schedule"),
)
HEARTBEAT_INTERVAL = env_int("HEARTBEAT_INTERVAL", 5)
# The arguments are evaluated here, in the process that imports the settings.
# For the beat process that means: the release beat itself was started from.
CELERY_BEAT_SCHEDULE = {
    "crew-heartbeat": {
        "task": "crew.tasks.record_heartbeat",
        "schedule": float(HEARTBEAT_INTERVAL),
        "args": (AYNA_RELEASE["release"], AYNA_RELEASE.get("revision") or ""),
        "options": {"expires": float(HEARTBEAT_INTERVAL) * 4},
    },
}

# --- Static and media files -------------------------------------------------
STATIC_URL = "static/"
# collectstatic gathers into the release itself, so every release carries its
# own assets and a rollback brings the matching ones back.
STATIC_ROOT = PROJECT_ROOT / "staticfiles"
MEDIA_URL = "media/"
# On servers `media` is a symlink to /opt/ayna/uavcrew/shared/media.
MEDIA_ROOT = env_str("MEDIA_ROOT", str(PROJECT_ROOT / "media"))

# --- Internationalisation ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: everything to stderr, which systemd sends to the journal ------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
