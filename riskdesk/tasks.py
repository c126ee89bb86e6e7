"""Celery tasks of the risk desk: each loads what it needs (only `compute_var` loads anything: the user who asked),
calls one service and returns what it did."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from riskdesk.services import limits, triggers, var_runs, watcher


@shared_task(ignore_result=True)
def scan_engine_events() -> dict:
    """Beat, every second: alerts from the engine's event stream (limit breaches, bursts, triggers)."""
    result = watcher.scan_engine_events()
    return {"engine_id": result.engine_id, "events": result.events, "alerts": result.alerts, "skipped": result.skipped}


@shared_task(ignore_result=True)
def check_engine_heartbeat() -> int | None:
    """Beat: an engine_stale alert when the console's heartbeat to the engine is failing or old."""
    return watcher.check_engine_heartbeat()


@shared_task(ignore_result=True)
def revert_expired_overrides() -> list[int]:
    """Beat: put back the limits that expired temporary overrides replaced."""
    return [version.pk for version in limits.revert_expired_overrides()]


@shared_task(ignore_result=True)
def resend_unacknowledged_limits() -> int:
    """Beat: send again approved limit versions the engine has not answered yet (same command id)."""
    return limits.resend_unacknowledged()


@shared_task(ignore_result=True)
def resend_unacknowledged_triggers() -> int:
    """Beat: send again trigger settings the engine has not answered yet (same command id)."""
    return triggers.resend_unacknowledged()


@shared_task(ignore_result=False)
def compute_var(requested_by_id: int | None = None) -> list[int]:
    """Beat and on demand: VaR for the firm and every strategy with a position, every method."""
    user = get_user_model().objects.filter(pk=requested_by_id).first() if requested_by_id else None
    return [result.pk for result in var_runs.run_var(requested_by=user)]
