from __future__ import annotations

from typing import Any

from django.db import transaction

from compliance.models import AuditAction, AuditEvent


@transaction.atomic
def record_audit_event(
    *,
    actor,
    action: AuditAction | str,
    target: str = "",
    details: dict[str, Any] | None = None,
    reason: str = "",
    ip_address: str | None = None,
    actor_username: str = "",
) -> AuditEvent:
    """Append one audit event. Every operator action in the system goes through here.

    `actor` may be None (a failed log-in by an unknown name, a system action); then pass the
    name that was used as `actor_username` so the row still says who.
    """
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        actor_username=(actor.get_username() if actor is not None else actor_username)[:150],
        action=AuditAction(action),
        target=target[:255],
        details=details or {},
        reason=reason,
        ip_address=ip_address,
    )
