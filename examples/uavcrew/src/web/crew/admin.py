from django.contrib import admin

from .models import CrewMember, Heartbeat


@admin.register(CrewMember)
class CrewMemberAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "certificate_expires", "active")
    list_filter = ("role", "active")
    search_fields = ("name",)


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("created_at", "worker_release", "beat_release", "worker_host", "worker_pid")
    list_filter = ("worker_release", "beat_release")
