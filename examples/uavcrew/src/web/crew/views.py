from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import DatabaseError
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .banner import BANNER
from .health import build_report
from .models import CrewMember


BUILT_CSS = "crew/build/site.min.css"   # made by the deploy's build step, not committed


@require_GET
def index(request):
    try:
        crew, database_error = list(CrewMember.objects.filter(active=True)[:50]), False
    except DatabaseError:
        crew, database_error = [], True
    return render(
        request,
        "crew/index.html",
        {
            "banner": BANNER,
            "crew": crew,
            "database_error": database_error,
            "release": settings.AYNA_RELEASE,
            "stylesheet": BUILT_CSS if finders.find(BUILT_CSS) else "crew/site.css",
        },
    )


@never_cache
@require_GET
def health(request):
    """200 with the health document when PostgreSQL and Redis answer, else 503."""
    report, healthy = build_report("web")
    return JsonResponse(report, status=200 if healthy else 503)
