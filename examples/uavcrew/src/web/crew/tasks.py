from __future__ import annotations

import os

from celery import shared_task
from django.conf import settings

from .models import Heartbeat


@shared_task
def record_heartbeat(beat_release: str, beat_revision: str = "") -> int:
    """Store which releases the worker and the scheduling beat run.

    ``beat_release``/``beat_revision`` were evaluated in the beat process (see
    CELERY_BEAT_SCHEDULE); the worker's own release is what this process read
    from its .ayna-release.json when it imported the settings.
    """
    release = settings.AYNA_RELEASE
    row = Heartbeat.objects.create(
        worker_release=release["release"],
        worker_revision=release.get("revision") or "",
        worker_pid=os.getpid(),
        worker_host=settings.HOSTNAME,
        beat_release=beat_release,
        beat_revision=beat_revision or "",
    )
    return row.pk
