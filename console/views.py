from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from compliance.selectors import recent_audit_events_for
from console.access import role_required
from console.services.health import is_healthy, system_health, system_health_async


@login_required
def home(request):
    return render(request, "console/home.html", {"recent_activity": recent_audit_events_for(request.user, limit=8)})


@require_GET
@never_cache
async def healthz(request):
    """Reachability for load balancers and operators. Public, so it says up/down, never details."""
    checks = await system_health_async()
    body = {
        "status": "ok" if is_healthy(checks) else "degraded",
        "checks": {c.name: {"status": c.status.value, "latency_ms": c.latency_ms} for c in checks},
    }
    return JsonResponse(body, status=200 if is_healthy(checks) else 503)


@role_required
def system_status(request):
    """The same checks with their details, for signed-in operators."""
    checks = system_health()
    return render(request, "console/status.html", {"checks": checks, "healthy": is_healthy(checks)})
