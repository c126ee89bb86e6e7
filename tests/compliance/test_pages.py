"""Every compliance page checks the role; the audit search filters by time, user, action, strategy and instrument."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import AuditAction, ChainVerification, ExportJob, ReconciliationRun
from compliance.services import record_audit_event

PAGES = [
    ("compliance:home", ()),
    ("compliance:audit", ()),
    ("compliance:chain", ()),
    ("compliance:exports", ()),
    ("compliance:export_jobs", ()),
    ("compliance:reconciliation", ()),
    ("compliance:clock", ()),
]
ACTIONS = [
    ("compliance:verify_chain", ()),
    ("compliance:run_reconciliation", ()),
    ("compliance:resolve_break", (1,)),
    ("compliance:measure_clocks", ()),
    ("compliance:export_download", (1,)),
]


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_a_compliance_officer_sees_every_compliance_page(client, compliance_officer, name, args):
    client.force_login(compliance_officer)

    assert client.get(reverse(name, args=args)).status_code == 200


@pytest.mark.parametrize("role", ["trader", "risk_officer", "outsider"])
@pytest.mark.parametrize(("name", "args"), PAGES + ACTIONS)
def test_other_roles_get_403_on_every_compliance_page_and_action(client, request, role, name, args):
    client.force_login(request.getfixturevalue(role))
    url = reverse(name, args=args)

    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(client, db, name, args):
    response = client.get(reverse(name, args=args))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.fixture
def events(trader, risk_officer):
    old = record_audit_event(actor=trader, action=AuditAction.ORDER_SUBMITTED, target="order:o-1", reason="early")
    made = {
        "old": old,
        "limit": record_audit_event(
            actor=risk_officer,
            action=AuditAction.LIMIT_PROPOSED,
            target="limit:instrument:BTCUSDT",
            details={"scope_kind": "INSTRUMENT", "scope_name": "BTCUSDT", "max_position": "3"},
            reason="volatility",
        ),
        "kill": record_audit_event(
            actor=risk_officer,
            action=AuditAction.KILL,
            target="scope:strategy:as-btc",
            details={"strategy_id": "as-btc"},
            reason="runaway",
        ),
        "start": record_audit_event(
            actor=trader, action=AuditAction.STRATEGY_STARTED, target="strategy:as-btc", reason="open"
        ),
    }
    return made


def search(client, **params) -> list[str]:
    response = client.get(reverse("compliance:audit"), params)
    assert response.status_code == 200
    return [event.target for event in response.context["page"].object_list]


def test_the_audit_search_filters_by_user_action_strategy_and_instrument(client, compliance_officer, events):
    client.force_login(compliance_officer)

    assert search(client, user="rick_risk") == ["scope:strategy:as-btc", "limit:instrument:BTCUSDT"]
    assert search(client, action=AuditAction.KILL) == ["scope:strategy:as-btc"]
    assert search(client, strategy_id="as-btc") == ["strategy:as-btc", "scope:strategy:as-btc"]
    assert search(client, symbol="BTCUSDT") == ["limit:instrument:BTCUSDT"]
    assert search(client, user="tina_trader", strategy_id="as-btc") == ["strategy:as-btc"]


def test_the_audit_search_filters_by_time_range(client, compliance_officer, events):
    client.force_login(compliance_officer)
    after_all = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    before_all = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")

    assert search(client, start=after_all) == []
    assert len(search(client, start=before_all, end=after_all)) == 5  # the four events and the officer's log-in


def test_the_audit_page_shows_who_and_why_with_the_details(client, compliance_officer, events):
    client.force_login(compliance_officer)

    page = client.get(reverse("compliance:audit"), {"action": AuditAction.LIMIT_PROPOSED}).content.decode()

    assert "rick_risk" in page and "volatility" in page and "max_position" in page
    assert f"row hash {bytes(events['limit'].row_hash).hex()}" in page


def test_a_bad_period_is_refused_with_its_reason(client, compliance_officer):
    client.force_login(compliance_officer)
    now = timezone.now()

    response = client.post(
        reverse("compliance:exports"),
        {"kind": "audit", "format": "pdf", "start": now.isoformat(), "end": (now - timedelta(hours=1)).isoformat()},
    )

    assert response.status_code == 400
    assert b"The period must end after it starts." in response.content
    assert not ExportJob.objects.exists()


def test_cat_only_exports_as_json_lines_or_csv(client, compliance_officer):
    client.force_login(compliance_officer)
    now = timezone.now()

    response = client.post(
        reverse("compliance:exports"),
        {"kind": "cat", "format": "pdf", "start": now.isoformat(), "end": (now + timedelta(days=1)).isoformat()},
    )

    assert response.status_code == 400
    assert b"EXPORT_BAD_FORMAT" in response.content


def test_the_chain_page_shows_the_first_broken_row(client, compliance_officer):
    ChainVerification.objects.create(
        intact=False,
        finished_at=timezone.now(),
        broken_table="compliance_auditevent",
        broken_row="42",
        broken_code="CHAIN_CONTENT_CHANGED",
        detail="the row's content no longer hashes to its row_hash",
    )
    client.force_login(compliance_officer)

    page = client.get(reverse("compliance:chain")).content.decode()

    assert "broken" in page and "compliance_auditevent 42" in page and "CHAIN_CONTENT_CHANGED" in page


def test_running_a_reconciliation_from_the_page_is_audited(
    client, compliance_officer, django_capture_on_commit_callbacks
):
    client.force_login(compliance_officer)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("compliance:run_reconciliation"))

    assert response.status_code == 302
    run = ReconciliationRun.objects.get()
    assert run.requested_by == compliance_officer.username
    assert len(callbacks) == 1  # the task is queued only once the request's transaction commits
    from compliance.models import AuditEvent

    assert AuditEvent.objects.filter(action=AuditAction.RECONCILIATION_RUN, target=f"reconciliation:{run.pk}").exists()
