"""Appending to the audit trail, and proving it unchanged."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from compliance.chain import (
    AUDIT_TABLE,
    ORDER_EVENT_TABLE,
    ChainReport,
    audit_canonical,
    audit_head,
    head_anchors,
    link,
    lock_audit_chain,
    verify_chains,
)
from compliance.models import AuditAction, AuditEvent, ChainAnchor, ChainAnchorKind, ChainVerification


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
    """Append one audit event, chained to the one before it. Every operator action in the system goes through here.

    `actor` may be None (a failed log-in by an unknown name, a system action); then pass the
    name that was used as `actor_username` so the row still says who.

    The advisory lock is held until the caller's outermost transaction ends, so audit writers queue behind each
    other: that is what makes "the row before" well defined when two requests audit at once.
    """
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    lock_audit_chain()
    # The id is drawn under the lock so ids rise in chain order, and the details are passed through jsonb first so
    # the hash covers exactly what PostgreSQL keeps (jsonb normalises numbers and key order).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('compliance_auditevent', 'id')), %s::jsonb::text",
            [json.dumps(details or {}, cls=DjangoJSONEncoder)],
        )
        event_id, stored_details = cursor.fetchone()
    event = AuditEvent(
        id=event_id,
        occurred_at=timezone.now(),
        actor=actor,
        actor_username=(actor.get_username() if actor is not None else actor_username)[:150],
        action=AuditAction(action),
        target=target[:255],
        details=json.loads(stored_details),
        reason=reason,
        ip_address=ip_address,
        prev_hash=audit_head(),
    )
    event.row_hash = link(
        event.prev_hash,
        audit_canonical(
            id=event.id,
            occurred_at=event.occurred_at,
            actor_id=event.actor_id,
            actor_username=event.actor_username,
            action=event.action.value,
            target=event.target,
            details=event.details,
            reason=event.reason,
            ip_address=event.ip_address,
        ),
    )
    # bulk_create inserts the row with the id drawn above; AuditEvent.save() refuses any row that has an id.
    AuditEvent.objects.bulk_create([event])
    return event


def run_chain_verification(*, requested_by: str) -> ChainVerification:
    """Verify the audit and order-event chains and keep the verdict. Not atomic: the row shows "running" first."""
    check = ChainVerification.objects.create(requested_by=requested_by[:150])
    report = verify_chains()
    first = report.first_break
    check.finished_at = timezone.now()
    check.intact = report.intact
    check.audit_rows = report.audit_rows
    check.order_event_rows = report.order_event_rows
    check.audit_head_hash = report.audit_head_hash
    if first is not None:
        check.broken_table, check.broken_row, check.broken_code, check.detail = (
            first.table,
            first.row,
            first.code,
            first.detail,
        )
    with transaction.atomic():
        check.save()
        if report.intact:
            record_head_anchors(report=report, recorded_by=check.requested_by)
    return check


def record_head_anchors(*, report: ChainReport, recorded_by: str) -> list[ChainAnchor]:
    """Keep the head of every chain an intact verification walked, so the next one can tell that the chain still
    reaches it (nothing chopped off the end, no engine's events all gone, nothing recomputed from genesis).

    A head that has not moved since the last anchor is not recorded again: the anchor table grows with new rows
    only, not with every hourly run.
    """
    heads = [(AUDIT_TABLE, "", report.audit_head)] if report.audit_head else []
    heads += [(ORDER_EVENT_TABLE, engine_id, head) for engine_id, head in sorted(report.order_event_heads.items())]
    known = {AUDIT_TABLE: head_anchors(AUDIT_TABLE), ORDER_EVENT_TABLE: head_anchors(ORDER_EVENT_TABLE)}
    anchors = [
        ChainAnchor(
            chain=chain,
            kind=ChainAnchorKind.HEAD,
            engine_id=engine_id,
            position=head.position,
            row_hash=head.row_hash,
            recorded_by=recorded_by[:150],
        )
        for chain, engine_id, head in heads
        if (previous := known[chain].get(engine_id)) is None or previous.position < head.position
    ]
    return ChainAnchor.objects.bulk_create(anchors)
