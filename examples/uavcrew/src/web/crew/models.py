from __future__ import annotations

from django.db import models


class CrewMember(models.Model):
    """A person who can be scheduled on a UAV flight."""

    class Role(models.TextChoices):
        PILOT = "pilot", "Remote pilot"
        OBSERVER = "observer", "Visual observer"
        PAYLOAD = "payload", "Payload operator"
        TECHNICIAN = "technician", "Maintenance technician"

    name = models.CharField(max_length=120)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.PILOT)
    certificate_expires = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "crew_crewmember"  # also read by the API (src/api/main.py)
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"


class Heartbeat(models.Model):
    """One run of the beat-scheduled heartbeat task.

    Records which release the Celery worker that ran it was loaded from, and
    which release the beat process that scheduled it was loaded from, so a
    deploy can prove that both were restarted into the new release.
    """

    worker_release = models.CharField(max_length=64)
    worker_revision = models.CharField(max_length=64, blank=True)
    worker_pid = models.PositiveIntegerField()
    worker_host = models.CharField(max_length=255)
    beat_release = models.CharField(max_length=64)
    beat_revision = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "crew_heartbeat"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"worker {self.worker_release} / beat {self.beat_release} at {self.created_at}"
