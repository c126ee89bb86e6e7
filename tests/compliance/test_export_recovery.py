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


def test_a_run_requeued_while_it_worked_leaves_the_job_and_file_to_the_run_that_claimed_it_after(
    compliance_officer, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import compliance.exports as exports

    job = running_job(compliance_officer, heartbeat_age_s=0)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.QUEUED)
    real_extent = exports.extent
    requeued: list[int] = []
    later: list[ExportJob | None] = []

    def slow_extent(conn, source, filters):
        # The first run is in a step longer than the stale limit: the beat requeues it and a second worker
        # claims the job and finishes it before the first run goes on.
        span = real_extent(conn, source, filters)
        if not requeued:
            settings.COMPLIANCE_EXPORT_STALE_S = 0
            with django_capture_on_commit_callbacks(execute=False):
                requeued.extend(exports.requeue_stale_exports())
            later.append(exports.run_export(job_id=job.pk))
        return span

    monkeypatch.setattr(exports, "extent", slow_extent)

    first = run_export(job_id=job.pk)

    job.refresh_from_db()
    assert first is None and requeued == [job.pk]
    assert later[0] is not None and job.status == ExportStatus.DONE
    assert (job.started_at, job.finished_at, job.file_sha256) == (
        later[0].started_at,
        later[0].finished_at,
        later[0].file_sha256,
    )
    assert [path.name for path in export_dir().glob(f"export-{job.pk}-*")] == [job.file_name]
    (export_dir() / job.file_name).unlink()
