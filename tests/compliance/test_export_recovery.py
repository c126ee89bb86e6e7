"""An export whose worker died is queued again and starts over; a live one is left alone."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from compliance.exports import export_dir, requeue_stale_exports, run_export
from compliance.models import ExportJob, ExportStatus


def running_job(user, *, heartbeat_age_s: int) -> ExportJob:
    now = timezone.now()
    return ExportJob.objects.create(
        kind="audit",
        format="csv",
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(hours=1),
        requested_by=user,
        status=ExportStatus.RUNNING,
        started_at=now - timedelta(seconds=heartbeat_age_s),
        heartbeat_at=now - timedelta(seconds=heartbeat_age_s),
        rows_written=5000,
    )


def test_a_running_export_without_progress_is_queued_again_and_then_completes(
    compliance_officer, django_capture_on_commit_callbacks
):
    dead = running_job(compliance_officer, heartbeat_age_s=600)
    alive = running_job(compliance_officer, heartbeat_age_s=5)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        requeued = requeue_stale_exports()
    run_export(job_id=dead.pk)
    untouched = run_export(job_id=alive.pk)

    assert requeued == [dead.pk]
    assert len(queued) == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == ExportStatus.DONE and dead.started_at > alive.started_at  # started over
    assert (export_dir() / dead.file_name).exists()
    assert untouched is None and alive.status == ExportStatus.RUNNING
    (export_dir() / dead.file_name).unlink()
