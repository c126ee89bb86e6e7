"""Against what the real bridge writes: a real engine and venue, `manage.py engine_bridge`, then the compliance
checks. The order-event chain verifies, the engine/database/venue reconcile with no break, and the day's CAT
events pass the lifecycle validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from compliance.chain import verify_chains
from compliance.exports import export_dir, run_export
from compliance.models import ExportJob, ExportStatus, ReconciliationStatus, ReconciliationTrigger
from compliance.reconciliation import run_reconciliation, start_reconciliation
from engine.protocol import CancelOrder, TimeInForce
from tests.bridge.conftest import bridge_process, unique_engine_id  # noqa: F401  (fixture)
from tests.compliance.test_reconciliation import submit
from tests.engine_process import engine_process  # noqa: F401  (fixture)


def test_the_bridge_output_verifies_reconciles_and_exports_clean_cat_events(
    engine_process,  # noqa: F811
    bridge_process,  # noqa: F811
    settings,
    compliance_officer,
):
    engine = engine_process(engine_id=unique_engine_id("cmp"))
    engine.apply_settings(settings)
    bridge = bridge_process(engine).start()
    client = engine.client()
    submit(engine, client, "keep-1", price="60000.0", quantity="0.002")
    submit(engine, client, "gone-1", price="60000.5", quantity="0.003")
    submit(engine, client, "take-1", price="70000.0", quantity="0.004", tif=TimeInForce.IOC)
    client.request(engine.command(CancelOrder, client_order_id="gone-1", symbol="BTCUSDT"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snapshot = engine.snapshot()
        if [o.client_order_id for o in snapshot.orders] == ["keep-1"] and any(p.quantity for p in snapshot.positions):
            break
        time.sleep(0.1)
    bridge.wait_for_checkpoint(snapshot.seq)

    report = verify_chains()
    run = run_reconciliation(run=start_reconciliation(trigger=ReconciliationTrigger.SCHEDULE))
    now = datetime.now(UTC)
    job = ExportJob.objects.create(
        kind="cat",
        format="json",
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(hours=1),
        requested_by=compliance_officer,
    )
    run_export(job_id=job.pk)
    job.refresh_from_db()

    assert report.intact, report.first_break
    assert report.order_event_rows >= 8
    assert run.status == ReconciliationStatus.DONE, run.error
    assert run.venue_checked and run.engine_orders == 1
    assert list(run.breaks.values_list("kind", "detail")) == []
    assert job.status == ExportStatus.DONE, job.error
    lines = (export_dir() / job.file_name).read_text().splitlines()
    (export_dir() / job.file_name).unlink()
    types = [line.split('"type":"')[1].split('"')[0] for line in lines]
    assert types.count("MENO") == 3
    assert "MEOC" in types and "MEOF" in types and "MEOR" in types
    assert job.issues == [] and job.issue_count == 0
