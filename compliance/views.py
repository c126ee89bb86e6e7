from django.shortcuts import render

from compliance.models import AuditAction
from compliance.selectors import recent_audit_events
from console.access import permission_required


@permission_required("compliance.view_compliance_desk")
def home(request):
    action = request.GET.get("action", "")
    if action not in AuditAction.values:
        action = ""
    return render(
        request,
        "compliance/home.html",
        {"events": recent_audit_events(limit=100, action=action), "actions": AuditAction.choices, "action": action},
    )
