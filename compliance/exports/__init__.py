"""Report exports: requested from the page, run by a Celery task, kept on disk for download, audited both ways.

`request_export` checks and queues; `run_export` (the task's one call) streams the rows into the file with the
job's progress written as it goes; `open_export` hands the finished file to its downloader and audits that.
"""

from __future__ import annotations

import hashlib
import resource
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.cat import CAT_FIELDS, CAT_SOURCE_SELECT, CatBuilder
from compliance.exports.sources import SOURCES, Filters, Source, extent, snapshot_connection, stream
from compliance.exports.writers import WRITERS, Cover
from compliance.models import AuditAction, ExportFormat, ExportJob, ExportKind, ExportStatus
from compliance.services import record_audit_event

PROGRESS_EVERY = 5000
FORMATS_BY_KIND = {
    ExportKind.AUDIT: (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PDF),
    ExportKind.ORDERS: (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PDF),
    ExportKind.FILLS: (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PDF),
    ExportKind.ORDER_EVENTS: (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PDF),
    ExportKind.CAT: (ExportFormat.JSON, ExportFormat.CSV),
}
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "pdf": "pdf", "json": "jsonl"}
CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "json": "application/x-ndjson",
}


class ExportError(Exception):
    """A refused or failed export; `code` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def export_dir() -> Path:
    directory = Path(getattr(settings, "COMPLIANCE_EXPORT_DIR", None) or Path(settings.VAR_DIR) / "exports")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def pdf_max_rows() -> int:
    return int(getattr(settings, "COMPLIANCE_PDF_MAX_ROWS", 100_000))


def check_export(*, kind: str, fmt: str, period_start: datetime, period_end: datetime) -> None:
    if kind not in ExportKind.values:
        raise ExportError("EXPORT_UNKNOWN_KIND", f"unknown report {kind!r}")
    if fmt not in FORMATS_BY_KIND[ExportKind(kind)]:
        allowed = ", ".join(f.label for f in FORMATS_BY_KIND[ExportKind(kind)])
        raise ExportError("EXPORT_BAD_FORMAT", f"{ExportKind(kind).label} exports as {allowed}")
    if period_end <= period_start:
        raise ExportError("EXPORT_BAD_PERIOD", "the period must end after it starts")


def request_export(
    *,
    user,
    kind: str,
    fmt: str,
    period_start: datetime,
    period_end: datetime,
    filters: dict[str, str] | None = None,
    ip_address: str | None = None,
) -> ExportJob:
    """Queue an export; the task starts once this transaction commits (a rolled-back request runs nothing)."""
    check_export(kind=kind, fmt=fmt, period_start=period_start, period_end=period_end)
    filters = {key: value for key, value in (filters or {}).items() if value}
    with transaction.atomic():
        job = ExportJob.objects.create(
            kind=kind,
            format=fmt,
            period_start=period_start,
            period_end=period_end,
            filters=filters,
            requested_by=user,
        )
        record_audit_event(
            actor=user,
            action=AuditAction.EXPORT_REQUESTED,
            target=f"export:{job.pk}",
            details={
                "kind": kind,
                "format": fmt,
                "period_start": period_start,
                "period_end": period_end,
                "filters": filters,
            },
            ip_address=ip_address,
        )
        from compliance.tasks import run_export_task

        transaction.on_commit(lambda: run_export_task.delay(job.pk))
    return job


def _claim(job_id: int) -> ExportJob | None:
    # A conditional update: a redelivered task (acks_late) finds the job no longer queued and does nothing.
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=now, heartbeat_at=now, rows_written=0
    )
    return ExportJob.objects.get(pk=job_id) if claimed else None


def _rss_kb() -> int:
    """This process's peak resident memory in KiB. Linux's VmHWM belongs to the process image, whereas ru_maxrss
    survives execve: a worker forked from a large parent would report the parent's size as its own peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


@dataclass
class _Plan:
    source: Source
    header: tuple[str, ...]


def _plan(kind: str) -> _Plan:
    if kind == ExportKind.CAT:
        return _Plan(source=SOURCES["order_events"], header=CAT_FIELDS)
    source = SOURCES[kind]
    return _Plan(source=source, header=source.header)


def run_export(*, job_id: int) -> ExportJob | None:
    """Write the job's file. Called by the task; never inside a transaction (progress must be visible).

    The heartbeat is written every PROGRESS_EVERY rows and around each step that reads or writes the whole set at
    once (the extent query, closing the writer, the checksum), so `requeue_stale_exports` does not take a live run
    for a dead one. Should it still do so (a step slower than COMPLIANCE_EXPORT_STALE_S), this run no longer owns
    the job: it writes its own partial file, and its heartbeats and its finish are conditional on its claim, so
    it cannot overwrite the file or the verdict of the run that claimed the job after it."""
    job = _claim(job_id)
    if job is None:
        return None
    job.rss_start_kb = _rss_kb()
    filters = Filters.from_job(job)
    plan = _plan(job.kind)
    final = export_dir() / f"export-{job.pk}-{job.kind}-{job.period_start:%Y%m%d}.{EXTENSIONS[job.format]}"
    # One partial file per claim: a run that lost its claim never writes into the file of the run after it.
    partial = final.with_name(f"{final.name}.{job.started_at:%Y%m%d%H%M%S%f}.part")
    outcome: dict[str, Any] = {}
    try:
        with snapshot_connection() as conn:
            if not _table_exists(conn, plan.source.table):
                raise ExportError("EXPORT_SOURCE_MISSING", f"{plan.source.table} does not exist yet")
            span = extent(conn, plan.source, filters)
            if job.format == ExportFormat.PDF and span.rows > pdf_max_rows():
                raise ExportError(
                    "EXPORT_TOO_LARGE_FOR_PDF",
                    f"{span.rows:,} rows; a PDF holds at most {pdf_max_rows():,} (export CSV or XLSX instead)",
                )
            _beat(job, total_rows=span.rows, first_hash=span.first_hash, last_hash=span.last_hash)
            cover = Cover(
                title=ExportKind(job.kind).label,
                period_start=job.period_start,
                period_end=job.period_end,
                filters=filters.described(),
                exported_by=job.requested_by.get_username(),
                exported_at=timezone.now(),
                row_count=span.rows,
                first_hash=span.first_hash,
                last_hash=span.last_hash,
            )
            writer = WRITERS[job.format](partial, plan.header, cover)
            try:
                rows_written, builder = _write_rows(conn, job, plan, filters, writer)
            finally:
                writer.close()
        _beat(job)  # closing the writer (an XLSX is assembled then) can take long
        sha256 = _sha256(partial)
        if not _beat(job):  # requeued meanwhile: the file is the newer run's to write
            partial.unlink(missing_ok=True)
            return None
        partial.replace(final)
        outcome = {
            "status": ExportStatus.DONE,
            "rows_written": rows_written,
            "file_name": final.name,
            "file_size": final.stat().st_size,
            "file_sha256": sha256,
        }
        if job.kind == ExportKind.CAT:
            outcome["total_rows"] = rows_written
        if builder is not None:
            outcome |= {"issue_count": builder.issue_count, "issues": builder.issues}
    except ExportError as exc:
        partial.unlink(missing_ok=True)
        outcome = {"status": ExportStatus.FAILED, "error_code": exc.code, "error": exc.reason}
    except Exception as exc:
        partial.unlink(missing_ok=True)
        error = f"{type(exc).__name__}: {exc}"
        _finish(job, {"status": ExportStatus.FAILED, "error_code": "EXPORT_FAILED", "error": error})
        raise
    return _finish(job, outcome)


def stale_after_s() -> int:
    return int(getattr(settings, "COMPLIANCE_EXPORT_STALE_S", 300))


@transaction.atomic
def requeue_stale_exports() -> list[int]:
    """RUNNING jobs whose progress stopped more than COMPLIANCE_EXPORT_STALE_S ago lost their worker (killed, OOM,
    host gone): put them back in the queue to start over. `run_export` beats every PROGRESS_EVERY rows and around
    its long whole-set steps, so a live export is taken for a dead one only if one such step alone outlasts
    COMPLIANCE_EXPORT_STALE_S; the run it replaces then finds its claim gone and neither writes the file nor
    records its outcome."""
    from compliance.tasks import run_export_task

    cutoff = timezone.now() - timedelta(seconds=stale_after_s())
    requeued = []
    for job_id in ExportJob.objects.filter(status=ExportStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        # Conditional, so two beat runs (or a late heartbeat) cannot requeue the same job twice.
        if ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=ExportStatus.QUEUED
        ):
            requeued.append(job_id)
            transaction.on_commit(lambda job_id=job_id: run_export_task.delay(job_id))
    return requeued


def _mine(job: ExportJob):
    """The job, while this run's claim on it holds (still RUNNING since the same claim): a conditional update
    through it does nothing once the job was requeued, whether or not another run has claimed it since."""
    return ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING, started_at=job.started_at)


def _beat(job: ExportJob, **fields: Any) -> bool:
    """Touch the heartbeat (with any progress `fields`); False when this run no longer owns the job."""
    return bool(_mine(job).update(heartbeat_at=timezone.now(), **fields))


def _finish(job: ExportJob, outcome: dict[str, Any]) -> ExportJob | None:
    """Record the run's outcome, only while it still owns the job; None when it does not (a requeued run's result
    must not overwrite the job a newer run finished or is running)."""
    peak = _rss_kb()
    done = _mine(job).update(
        finished_at=timezone.now(), rss_start_kb=job.rss_start_kb or peak, rss_peak_kb=peak, **outcome
    )
    if not done:
        return None
    job.refresh_from_db()
    return job


def _write_rows(conn, job: ExportJob, plan: _Plan, filters: Filters, writer: Any) -> tuple[int, CatBuilder | None]:
    builder = None
    if job.kind == ExportKind.CAT:
        builder = CatBuilder(
            reporter_imid=getattr(settings, "COMPLIANCE_CAT_REPORTER_IMID", "FIRM"),
            destination=getattr(settings, "COMPLIANCE_CAT_DESTINATION", "SIM"),
        )
        source = replace(plan.source, select=CAT_SOURCE_SELECT)
        rows = builder.records(stream(conn, source, filters))
    else:
        rows = stream(conn, plan.source, filters)
    written = 0
    for row in rows:
        writer.write(row)
        written += 1
        if written % PROGRESS_EVERY == 0:
            _beat(job, rows_written=written)
    if builder is not None and builder.orphan_order_ids:
        builder.resolve_orphans(_created_before(conn, builder.orphan_order_ids, filters.period_start))
        _beat(job)
    return written, builder


def _created_before(conn, order_ids: set[str], moment: datetime) -> set[str]:
    rows = conn.execute(
        "SELECT client_order_id FROM trading_order WHERE client_order_id = ANY(%s) AND created_at < %s",
        [list(order_ids), moment],
    ).fetchall()
    return {row[0] for row in rows}


def _table_exists(conn, table: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def open_export(*, user, job_id: int, ip_address: str | None = None) -> tuple[Path, str, str]:
    """(path, download name, content type) of a finished export; audited as a download."""
    job = ExportJob.objects.get(pk=job_id)
    if job.status != ExportStatus.DONE or not job.file_name:
        raise ExportError("EXPORT_NOT_READY", f"export {job.pk} is {job.get_status_display().lower()}")
    path = export_dir() / job.file_name
    if not path.exists():
        raise ExportError("EXPORT_FILE_MISSING", f"the file of export {job.pk} is no longer on disk")
    record_audit_event(
        actor=user,
        action=AuditAction.EXPORT_DOWNLOADED,
        target=f"export:{job.pk}",
        details={"file": job.file_name, "sha256": job.file_sha256, "rows": job.rows_written},
        ip_address=ip_address,
    )
    return path, job.file_name, CONTENT_TYPES[job.format]
