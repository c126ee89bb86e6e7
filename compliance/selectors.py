from __future__ import annotations

from django.db.models import QuerySet

from compliance.models import AuditEvent


def recent_audit_events(*, limit: int = 100, action: str = "") -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor")
    if action:
        events = events.filter(action=action)
    return events[:limit]


def recent_audit_events_for(user, *, limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(actor=user)[:limit]
