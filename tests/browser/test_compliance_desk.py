"""The compliance desk in real Chromium: filter the audit trail, export a PDF and download it, run a reconciliation
and resolve a break; a trader is refused every compliance page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from compliance.exports import export_dir
from compliance.models import AuditAction, ExportJob
from compliance.services import record_audit_event
from tests.browser.conftest import log_in
from tests.compliance.test_reconciliation import ENGINE_ID, mirror_into_db, submit
from tests.conftest import PASSWORD
from tests.engine_process import engine_process  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

COMPLIANCE_PAGES = ["", "audit/", "chain/", "exports/", "exports/jobs/", "reconciliation/", "clock/"]


@pytest.fixture
def engine_for_subprocesses(engine_process, settings, monkeypatch):  # noqa: F811
    """A real engine with two resting orders, which daphne and the Celery worker (started after this fixture, with
    this environment) and the test itself all talk to."""
    engine = engine_process(engine_id=ENGINE_ID)
    engine.apply_settings(settings)
    for name, value in engine.env().items():
        monkeypatch.setenv(name, value)
    client = engine.client()
    submit(engine, client, "rest-1", price="60000.0", quantity="0.002")
    submit(engine, client, "rest-2", price="60001.0", quantity="0.003")
    return engine


def test_a_compliance_officer_filters_the_trail_exports_a_pdf_and_resolves_a_break(
    engine_for_subprocesses,
    live_console,
    celery_worker_process,
    page,
    output_dir,
    compliance_officer,
    risk_officer,
    trader,
):
    from pypdf import PdfReader

    record_audit_event(actor=trader, action=AuditAction.ORDER_SUBMITTED, target="order:m-1", reason="hedge")
    record_audit_event(actor=risk_officer, action=AuditAction.KILL, target="scope:firm", reason="drill at the open")
    record_audit_event(actor=risk_officer, action=AuditAction.RESUME, target="scope:firm", reason="drill over")
    engine = engine_for_subprocesses
    snapshot = engine.wait_ready()
    while {o.client_order_id for o in snapshot.orders} != {"rest-1", "rest-2"}:
        snapshot = engine.wait_ready()
    mirror_into_db(snapshot, engine.codec(), skip_orders={"rest-2"})

    log_in(page, live_console, compliance_officer.username, PASSWORD)
    page.goto(f"{live_console}/compliance/audit/")
    page.fill("#id_user", risk_officer.username)
    page.select_option("#id_action", AuditAction.KILL.value)
    page.click("#audit-search button[type=submit]")
    expect(page.locator("#audit-count")).to_have_text("1 event")
    expect(page.locator("#audit-table tbody tr")).to_have_count(1)
    expect(page.locator("#audit-table tbody")).to_contain_text("drill at the open")
    page.screenshot(path=str(output_dir / "audit-filtered.png"), full_page=True)

    page.goto(f"{live_console}/compliance/exports/")
    now = timezone.now()
    page.select_option("#id_kind", "audit")
    page.select_option("#id_format", "pdf")
    page.fill("#id_start", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#id_end", (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#id_user", risk_officer.username)
    page.click("#export-form button[type=submit]")
    link = page.locator("#export-table a.download").first
    expect(link).to_be_visible(timeout=90_000)  # the Celery worker ran it; the table polled its progress
    with page.expect_download() as info:
        link.click()
    pdf = output_dir / info.value.suggested_filename
    info.value.save_as(pdf)
    for job in ExportJob.objects.exclude(file_name=""):
        (export_dir() / job.file_name).unlink(missing_ok=True)  # the kept copy; the test keeps its download
    page.screenshot(path=str(output_dir / "exports.png"), full_page=True)
    cover = " ".join(PdfReader(pdf).pages[0].extract_text().split())
    assert f"Exported by: {compliance_officer.username}" in cover
    assert f"User: {risk_officer.username}" in cover and "Rows: 2" in cover

    page.goto(f"{live_console}/compliance/reconciliation/")
    page.click("#run-reconciliation")
    row = page.locator("#breaks-table tr[data-kind=order_missing_in_db]")
    expect(row).to_be_visible(timeout=90_000)  # the page reloads itself while the run is going
    expect(row).to_contain_text("rest-2")
    expect(page.locator("#runs-table tr[data-status=done]")).to_have_count(1)
    page.screenshot(path=str(output_dir / "reconciliation-break.png"), full_page=True)
    row.locator("textarea").fill("bridge was down at 09:30; order replayed into the database")
    row.locator("button").click()
    expect(page.locator(".flash")).to_contain_text("resolved")
    expect(page.locator("#breaks-table tr[data-kind]")).to_have_count(0)
    expect(page.locator("#resolved-table")).to_contain_text("bridge was down at 09:30")
    page.screenshot(path=str(output_dir / "reconciliation-resolved.png"), full_page=True)


def test_a_trader_gets_403_on_every_compliance_page(page, live_console, trader, output_dir):
    log_in(page, live_console, trader.username, PASSWORD)
    expect(page.locator("h1")).to_contain_text("Welcome")

    for path in COMPLIANCE_PAGES:
        response = page.goto(f"{live_console}/compliance/{path}")
        assert response.status == 403, path
        expect(page.locator("h1")).to_contain_text("403")
    page.screenshot(path=str(output_dir / "refused.png"))
