"""Celery tasks of the compliance desk: each loads what it needs, calls one service and returns what it did."""

from __future__ import annotations

from celery import shared_task

from compliance import clocksync, exports, reconciliation
from compliance.models import ReconciliationRun, ReconciliationTrigger
from compliance.services import run_chain_verification


@shared_task(ignore_result=True, acks_late=True)
def run_export_task(job_id: int) -> dict | None:
    """Queued by exports.request_export once its transaction commits."""
    job = exports.run_export(job_id=job_id)
    return None if job is None else {"job": job.pk, "status": job.status, "rows": job.rows_written}


@shared_task(ignore_result=True)
def requeue_stale_exports_task() -> list[int]:
    """Beat: exports whose worker died start over."""
    return exports.requeue_stale_exports()


@shared_task(ignore_result=True)
def reconcile_task(run_id: int | None = None) -> dict:
    """On demand (run_id of the run the page created) or by beat (a new scheduled run)."""
    if run_id is None:
        run = reconciliation.start_reconciliation(trigger=ReconciliationTrigger.SCHEDULE)
    else:
        run = ReconciliationRun.objects.get(pk=run_id)
    run = reconciliation.run_reconciliation(run=run)
    return {"run": run.pk, "status": run.status, "breaks": run.breaks.count()}


@shared_task(ignore_result=True)
def reconcile_on_engine_start_task() -> int | None:
    run = reconciliation.reconcile_on_engine_start()
    return None if run is None else run.pk


@shared_task(ignore_result=True)
def measure_clocks_task() -> list[int]:
    return [sample.pk for sample in clocksync.measure_clocks()]


@shared_task(ignore_result=True)
def verify_chain_task(requested_by: str = "beat") -> dict:
    check = run_chain_verification(requested_by=requested_by)
    return {"check": check.pk, "intact": check.intact, "broken_row": check.broken_row}
