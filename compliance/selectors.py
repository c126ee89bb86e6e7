"""Reads of the compliance desk."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from compliance.models import (
    AuditEvent,
    ChainVerification,
    ClockSource,
    ClockSyncSample,
    ExportJob,
    ReconciliationBreak,
    ReconciliationRun,
)


def recent_audit_events(*, limit: int = 100, action: str = "") -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor")
    if action:
        events = events.filter(action=action)
    return events[:limit]


def recent_audit_events_for(user, *, limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(actor=user)[:limit]


def _mentions(key: str, value: str) -> Q:
    # Desk services name the strategy / instrument in `details` or in the target ("strategy:as-btc").
    return Q(**{f"details__{key}": value}) | Q(details__scope_name=value) | Q(target__endswith=f":{value}")


def search_audit_events(
    *, start=None, end=None, user: str = "", action: str = "", strategy_id: str = "", symbol: str = ""
) -> QuerySet[AuditEvent]:
    """Newest first. Every filter is optional; the same meaning as the audit export's filters."""
    events = AuditEvent.objects.all()
    if start:
        events = events.filter(occurred_at__gte=start)
    if end:
        events = events.filter(occurred_at__lt=end)
    if user:
        events = events.filter(actor_username=user)
    if action:
        events = events.filter(action=action)
    if strategy_id:
        events = events.filter(_mentions("strategy_id", strategy_id))
    if symbol:
        events = events.filter(_mentions("symbol", symbol))
    return events.order_by("-occurred_at", "-id")


def latest_chain_verification() -> ChainVerification | None:
    return ChainVerification.objects.first()


def export_jobs(*, limit: int = 20) -> QuerySet[ExportJob]:
    return ExportJob.objects.select_related("requested_by")[:limit]


def reconciliation_runs(*, limit: int = 10) -> QuerySet[ReconciliationRun]:
    return ReconciliationRun.objects.all()[:limit]


def open_breaks(*, limit: int = 200) -> QuerySet[ReconciliationBreak]:
    return ReconciliationBreak.objects.filter(resolved_at__isnull=True).select_related("run").order_by("-id")[:limit]


def open_break_count() -> int:
    return ReconciliationBreak.objects.filter(resolved_at__isnull=True).count()


def resolved_breaks(*, limit: int = 50) -> QuerySet[ReconciliationBreak]:
    return (
        ReconciliationBreak.objects.filter(resolved_at__isnull=False)
        .select_related("run", "resolved_by")
        .order_by("-resolved_at")[:limit]
    )


def clock_status() -> dict[str, Any]:
    """The newest sample of each source, and the recent history."""
    latest = {}
    for source in ClockSource:
        latest[source.value] = ClockSyncSample.objects.filter(source=source).first()
    return {"latest": latest, "history": ClockSyncSample.objects.all()[:60]}
