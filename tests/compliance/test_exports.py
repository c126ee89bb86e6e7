"""Exports run in a real Celery worker, stream from PostgreSQL, open in their format and hold the right rows."""

from __future__ import annotations

import csv
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from compliance.exports import export_dir, request_export
from compliance.models import AuditAction, AuditEvent, ExportJob, ExportStatus
from compliance.services import record_audit_event
from tests.compliance.rows import OrderEventWriter, insert_fill, insert_order, ts
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def finished(job: ExportJob, timeout: float = 120) -> ExportJob:
    def done():
        job.refresh_from_db()
        return job.status in (ExportStatus.DONE, ExportStatus.FAILED)

    wait_for(done, timeout=timeout, interval=0.25, what=f"export {job.pk} to finish")
    assert job.status == ExportStatus.DONE, f"{job.error_code}: {job.error}"
    return job


def export_path(job: ExportJob) -> Path:
    return export_dir() / job.file_name


@pytest.fixture
def trail(risk_officer, trader):
    """Six audit events in the last hour: two by the risk officer about strategy as-btc, the rest elsewhere."""
    record_audit_event(actor=trader, action=AuditAction.ORDER_SUBMITTED, target="order:m-1", reason="hedge")
    record_audit_event(
        actor=risk_officer,
        action=AuditAction.LIMIT_PROPOSED,
        target="limit:strategy:as-btc",
        details={"strategy_id": "as-btc", "max_position": "2"},
        reason="wider for the open",
    )
    record_audit_event(
        actor=risk_officer,
        action=AuditAction.KILL,
        target="scope:strategy:as-btc",
        details={"strategy_id": "as-btc"},
        reason="runaway quoting",
    )
    record_audit_event(actor=risk_officer, action=AuditAction.KILL, target="scope:firm", reason="drill")
    record_audit_event(actor=trader, action=AuditAction.STRATEGY_STARTED, target="strategy:mm-eth")
    record_audit_event(actor=trader, action=AuditAction.LOGOUT, target="user:1")
    return list(AuditEvent.objects.order_by("id"))


@pytest.fixture
def cleanup_files():
    jobs: list[ExportJob] = []
    yield jobs
    for job in jobs:
        job.refresh_from_db()
        if job.file_name:
            (export_dir() / job.file_name).unlink(missing_ok=True)


def period() -> tuple:
    now = timezone.now()
    return now - timedelta(hours=1), now + timedelta(minutes=5)


def test_audit_trail_exports_as_csv_xlsx_and_pdf_with_the_filtered_rows(
    celery_worker_process, compliance_officer, risk_officer, trail, cleanup_files
):
    from openpyxl import load_workbook
    from pypdf import PdfReader

    start, end = period()
    filters = {"user": risk_officer.username, "strategy_id": "as-btc"}
    expected = [e for e in trail if e.actor_username == risk_officer.username and "as-btc" in e.target]
    jobs = {
        fmt: request_export(
            user=compliance_officer, kind="audit", fmt=fmt, period_start=start, period_end=end, filters=filters
        )
        for fmt in ("csv", "xlsx", "pdf")
    }
    cleanup_files.extend(jobs.values())

    for job in jobs.values():
        finished(job)

    with open(export_path(jobs["csv"]), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["id"]) for row in rows] == [e.pk for e in expected]
    assert [row["reason"] for row in rows] == ["wider for the open", "runaway quoting"]
    assert rows[-1]["row_hash"] == bytes(expected[-1].row_hash).hex()
    assert json.loads(rows[0]["details"]) == {"strategy_id": "as-btc", "max_position": "2"}

    book = load_workbook(export_path(jobs["xlsx"]), read_only=True)
    assert book.sheetnames == ["Cover", "Rows 1"]
    sheet_rows = list(book["Rows 1"].iter_rows(values_only=True))
    assert sheet_rows[0][:4] == ("id", "occurred_at", "user", "action")
    assert [row[0] for row in sheet_rows[1:]] == [e.pk for e in expected]
    assert [row[3] for row in sheet_rows[1:]] == [AuditAction.LIMIT_PROPOSED, AuditAction.KILL]

    reader = PdfReader(export_path(jobs["pdf"]))
    cover = " ".join(reader.pages[0].extract_text().split())  # one space between a label and its value
    body = "\n".join(page.extract_text() for page in reader.pages[1:])
    assert "Audit trail" in cover
    assert f"Exported by: {compliance_officer.username}" in cover
    assert "Rows: 2" in cover
    assert f"User: {risk_officer.username}; Strategy: as-btc" in cover
    assert bytes(expected[0].row_hash).hex() in cover
    assert bytes(expected[-1].row_hash).hex() in cover
    assert "wider for the open" in body and "runaway quoting" in body
    assert "drill" not in body
    assert jobs["pdf"].first_hash == bytes(expected[0].row_hash).hex()


def test_order_and_fill_history_export_with_instrument_filter(celery_worker_process, compliance_officer, cleanup_files):
    # A strategy of this test's own: the fills table is partitioned (unmanaged), so only this test's rows count.
    strategy = f"as-{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    insert_order(
        engine_id="e1",
        client_order_id="o-btc",
        symbol="BTCUSDT",
        strategy_id=strategy,
        status="FILLED",
        cum="0.002",
        leaves="0",
    )
    insert_order(engine_id="e1", client_order_id="o-eth", symbol="ETHUSDT", strategy_id=strategy)
    insert_order(engine_id="e1", client_order_id="o-old", strategy_id=strategy, created=now - timedelta(days=3))
    for seq, exec_id, order, quantity, symbol in (
        (7, "x-1", "o-btc", "0.001", "BTCUSDT"),
        (8, "x-2", "o-btc", "0.001", "BTCUSDT"),
        (9, "x-3", "o-eth", "0.5", "ETHUSDT"),
    ):
        insert_fill(
            engine_id="e1",
            seq=seq,
            exec_id=exec_id,
            client_order_id=order,
            quantity=quantity,
            symbol=symbol,
            strategy_id=strategy,
            when=now,
        )
    start, end = period()

    orders = request_export(
        user=compliance_officer,
        kind="orders",
        fmt="csv",
        period_start=start,
        period_end=end,
        filters={"symbol": "BTCUSDT", "strategy_id": strategy},
    )
    fills = request_export(
        user=compliance_officer,
        kind="fills",
        fmt="xlsx",
        period_start=start,
        period_end=end,
        filters={"symbol": "BTCUSDT", "strategy_id": strategy},
    )
    cleanup_files.extend([orders, fills])
    finished(orders)
    finished(fills)

    with open(export_path(orders), newline="") as handle:
        order_rows = list(csv.DictReader(handle))
    assert [(r["client_order_id"], r["status"], r["cum_quantity"]) for r in order_rows] == [
        ("o-btc", "FILLED", "0.002")
    ]
    from openpyxl import load_workbook

    sheet = load_workbook(export_path(fills), read_only=True)["Rows 1"]
    fill_rows = list(sheet.iter_rows(values_only=True))
    header = fill_rows[0]
    assert [dict(zip(header, row, strict=True))["exec_id"] for row in fill_rows[1:]] == ["x-1", "x-2"]


def test_an_export_is_audited_when_requested_and_when_downloaded(
    celery_worker_process, client, compliance_officer, trail, cleanup_files
):
    client.force_login(compliance_officer)
    start, end = period()

    response = client.post(
        reverse("compliance:exports"),
        {
            "kind": "audit",
            "format": "csv",
            "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    cleanup_files.append(job)
    finished(job)
    # The trail, the officer's log-in and the export request itself: everything up to the moment it ran.
    expected_ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    download = client.get(reverse("compliance:export_download", args=[job.pk]))
    content = b"".join(download.streaming_content).decode()

    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert [int(row["id"]) for row in csv.DictReader(content.splitlines())] == expected_ids
    assert {e.pk for e in trail} <= set(expected_ids)
    requested = AuditEvent.objects.get(action=AuditAction.EXPORT_REQUESTED)
    downloaded = AuditEvent.objects.get(action=AuditAction.EXPORT_DOWNLOADED)
    assert requested.actor == downloaded.actor == compliance_officer
    assert requested.target == downloaded.target == f"export:{job.pk}"
    assert requested.details["format"] == "csv"
    assert downloaded.details["sha256"] == job.file_sha256


def test_a_pdf_past_its_row_cap_is_refused_with_a_reason(
    celery_worker_process, compliance_officer, trail, settings, cleanup_files
):
    from compliance.exports import run_export

    settings.COMPLIANCE_PDF_MAX_ROWS = 3
    start, end = period()
    job = ExportJob.objects.create(
        kind="audit", format="pdf", period_start=start, period_end=end, requested_by=compliance_officer
    )

    run_export(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED
    assert job.error_code == "EXPORT_TOO_LARGE_FOR_PDF"
    assert not list(export_dir().glob(f"export-{job.pk}-*"))


def test_a_million_row_export_streams_in_the_memory_of_a_small_worker(
    celery_worker_process, compliance_officer, cleanup_files
):
    start = timezone.now() - timedelta(hours=2)
    # A million audit rows straight into the table (the chain is not what this test is about).
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO compliance_auditevent (occurred_at, actor_username, action, target, details, reason,"
            " prev_hash, row_hash)"
            " SELECT %s + n * interval '1 millisecond', 'bulk', 'auth.login', 'user:' || n,"
            " jsonb_build_object('n', n), 'load test row ' || n, sha256(int8send(n - 1)), sha256(int8send(n))"
            " FROM generate_series(1, 1000000) AS n",
            [start],
        )
    # Only the bulk rows: log-ins and role changes of the standing users fall in the same period.
    job = request_export(
        user=compliance_officer,
        kind="audit",
        fmt="csv",
        period_start=start,
        period_end=timezone.now(),
        filters={"user": "bulk"},
    )
    cleanup_files.append(job)

    finished(job, timeout=900)

    assert job.total_rows == job.rows_written == 1_000_000
    lines, last_line = 0, ""
    with open(export_path(job), newline="") as handle:
        for line in handle:
            lines, last_line = lines + 1, line
    assert lines == 1_000_001
    assert "load test row 1000000" in last_line
    # Reading a million rows into memory would take hundreds of MB; streaming keeps the worker's growth small.
    growth_mb = (job.rss_peak_kb - job.rss_start_kb) / 1024
    assert growth_mb < 40, f"the worker grew by {growth_mb:.0f} MB during the export"
    # The worker's own peak (VmHWM): the whole worker, Django loaded, stayed within a small box.
    assert job.rss_peak_kb < 400 * 1024, f"the worker peaked at {job.rss_peak_kb / 1024:.0f} MB"


def test_cat_export_maps_each_lifecycle_event_and_flags_the_breaks(
    celery_worker_process, compliance_officer, cleanup_files
):
    day = ts(1_790_000_000_000_000_000).replace(hour=0, minute=0, second=0, microsecond=0)
    events = OrderEventWriter("e1")
    buy = {"side": "BUY", "price": "60000", "quantity": "0.004"}
    # A clean order: new, routed, partly filled, replaced, filled.
    events.add("OrderSubmitted", "ok-1", columns=buy, order_type=1, time_in_force=1, post_only=True)
    events.add("OrderAccepted", "ok-1", venue_order_id=501)
    events.add(
        "OrderFilled",
        "ok-1",
        columns={"side": "BUY", "price": "60000", "quantity": "0.001", "leaves": "0.003", "cum": "0.001"},
        exec_id="x-1",
    )
    events.add(
        "OrderReplaced",
        "ok-2",
        columns={"price": "60010", "quantity": "0.004", "leaves": "0.003", "cum": "0.001"},
        orig_client_order_id="ok-1",
    )
    events.add(
        "OrderFilled",
        "ok-2",
        columns={"side": "BUY", "price": "60010", "quantity": "0.003", "leaves": "0", "cum": "0.004"},
        exec_id="x-2",
    )
    # Broken: filled in full and then cancelled.
    events.add("OrderSubmitted", "bad-1", columns=buy, order_type=1, time_in_force=2)
    events.add("OrderAccepted", "bad-1", venue_order_id=502)
    events.add(
        "OrderFilled",
        "bad-1",
        columns={"side": "BUY", "price": "60000", "quantity": "0.004", "leaves": "0", "cum": "0.004"},
        exec_id="x-3",
    )
    events.add("OrderCanceled", "bad-1", columns={"quantity": "0.004"})
    # Broken: a fill for an order that was never created.
    events.add(
        "OrderFilled",
        "ghost-1",
        columns={"side": "SELL", "price": "60000", "quantity": "0.001", "leaves": "0", "cum": "0.001"},
        exec_id="x-4",
    )
    # Denied by pre-trade risk: never an order outside the engine, so no CAT event and no finding.
    events.add("OrderDenied", "denied-1", code="RISK_MAX_POSITION")
    # Broken: cum does not add up to the fills.
    events.add("OrderSubmitted", "bad-2", columns=buy, order_type=1, time_in_force=1)
    events.add(
        "OrderFilled",
        "bad-2",
        columns={"side": "BUY", "price": "60000", "quantity": "0.001", "leaves": "0.002", "cum": "0.002"},
        exec_id="x-5",
    )

    job = request_export(
        user=compliance_officer, kind="cat", fmt="json", period_start=day, period_end=day + timedelta(days=1)
    )
    cleanup_files.append(job)
    finished(job)

    with open(export_path(job)) as handle:
        records = [json.loads(line) for line in handle]
    assert [(r["type"], r["orderID"]) for r in records[:5]] == [
        ("MENO", "ok-1"),
        ("MEOR", "ok-1"),
        ("MEOF", "ok-1"),
        ("MEOM", "ok-2"),
        ("MEOF", "ok-2"),
    ]
    new_order = records[0]
    assert new_order["side"] == "B" and new_order["orderType"] == "LMT" and new_order["timeInForce"] == "GTC"
    assert new_order["handlingInstructions"] == "ALO"
    assert new_order["quantity"] == "0.004" and new_order["price"] == "60000"
    assert re.fullmatch(r"\d{8} \d{6}\.001000000", new_order["eventTimestamp"])
    assert records[1]["routedOrderID"] == "501" and records[1]["destination"] == "SIM"
    assert records[3]["priorOrderID"] == "ok-1" and records[3]["leavesQty"] == "0.003"
    assert records[8]["type"] == "MEOC" and records[8]["cancelQty"] == "0.004"
    assert "denied-1" not in {r["orderID"] for r in records}
    codes = sorted((issue["code"], issue["orderID"]) for issue in job.issues)
    assert codes == [
        ("CAT_CANCEL_AFTER_FULL_FILL", "bad-1"),
        ("CAT_NO_NEW_ORDER", "ghost-1"),
        ("CAT_QUANTITY_MISMATCH", "bad-2"),
    ]
    assert job.issue_count == 3
