"""Alerts: raised from the engine's event stream, deduplicated, published on topic `alerts`, acknowledged with a
comment (audited)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from compliance.models import AuditAction, AuditEvent
from riskdesk.models import Alert, AlertKind
from riskdesk.services import alerts, limits, watcher
from riskdesk.services.alerts import AlertError
from tests.riskdesk.conftest import submit, wait_until
from trading import live


def cap_order_size(officer):
    """BTCUSDT orders above 0.01 are denied from now on (a tightening: in force at once)."""
    limits.propose_limits(
        actor=officer,
        kind="instrument",
        name="BTCUSDT",
        limits={"max_order_quantity": Decimal("0.01")},
        base_version=0,
        reason="tighten",
    )


def test_an_order_one_past_a_limit_is_denied_and_shows_in_the_alert_list_and_on_the_alerts_topic(
    desk_engine, risk_officer, fresh_prefix, django_capture_on_commit_callbacks
):
    watcher.scan_engine_events()
    cap_order_size(risk_officer)
    denied = submit(desk_engine, "one-lot-past", quantity="0.011")

    with django_capture_on_commit_callbacks(execute=True):
        result = watcher.scan_engine_events()

    assert denied.code == "RISK_MAX_ORDER_QTY"
    alert = Alert.objects.get(pk__in=result.alerts)
    assert alert.kind == AlertKind.LIMIT_BREACH and alert.detail["code"] == "RISK_MAX_ORDER_QTY"
    assert alert.detail["client_order_id"] == "one-lot-past"
    published = live.latest(["alerts"])["alerts"]["data"]["alerts"]
    assert published[0]["id"] == alert.pk and published[0]["audience"] == ["risk_officer", "trader"]


def test_a_burst_of_denials_raises_one_critical_alert(desk_engine, risk_officer, settings):
    settings.RISK_DENIED_BURST_COUNT, settings.RISK_DENIED_BURST_WINDOW_S = 5, 60
    watcher.scan_engine_events()
    cap_order_size(risk_officer)
    for i in range(6):
        submit(desk_engine, f"too-big-{i}", quantity="0.02")

    watcher.scan_engine_events()

    burst = Alert.objects.get(kind=AlertKind.DENIED_BURST)
    assert burst.severity == "critical" and burst.occurrences == 2  # the 5th and the 6th denial
    breach = Alert.objects.get(kind=AlertKind.LIMIT_BREACH)
    assert breach.occurrences == 6


def test_an_automatic_trigger_raises_a_trigger_fired_alert(engine_process, settings, db):
    # The dead-man trigger: no console heartbeat for 0.3 s -> firm REDUCING, with the trigger's code.
    engine = engine_process(triggers=[("firm", {"heartbeat_timeout_ns": 300_000_000, "heartbeat_action": "REDUCING"})])
    engine.apply_settings(settings)
    watcher.scan_engine_events()

    def fired():
        watcher.scan_engine_events()
        return Alert.objects.filter(kind=AlertKind.TRIGGER_FIRED).first()

    alert = wait_until(fired, what="the heartbeat trigger's alert")
    assert alert.detail["code"] == "STATE_TRIGGER_HEARTBEAT" and alert.detail["state"] == "REDUCING"


def test_an_automatic_halt_puts_its_time_to_flat_on_the_triggers_alert(engine_process, settings, db):
    engine = engine_process(triggers=[("firm", {"heartbeat_timeout_ns": 300_000_000, "heartbeat_action": "HALTED"})])
    engine.apply_settings(settings)
    watcher.scan_engine_events()

    def timed():
        watcher.scan_engine_events()
        alert = Alert.objects.filter(kind=AlertKind.TRIGGER_FIRED).first()
        return alert if alert is not None and "halt_elapsed_ns" in alert.detail else None

    alert = wait_until(timed, what="the trigger's alert with the HaltCompleted figures")
    assert alert.detail["state"] == "HALTED" and alert.detail["orders_canceled"] == 0
    assert alert.occurrences == 1


def test_a_missing_engine_heartbeat_raises_one_alert_that_counts_repeats(db, fresh_prefix):
    first = watcher.check_engine_heartbeat()  # no beat recorded under this test's own Redis prefix
    second = watcher.check_engine_heartbeat()

    assert first is not None and first == second
    alert = Alert.objects.get(pk=first)
    assert alert.kind == AlertKind.ENGINE_STALE and alert.occurrences == 2
    assert alert.audience == ["risk_officer", "trader"]  # the trader console shows it too


def test_two_alerts_committed_together_both_stay_on_the_alerts_topic_each_with_its_audience(
    db, fresh_prefix, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = alerts.raise_alert(
            kind="clock_offset", severity="warning", title="clock off", audience=["compliance_officer"]
        )
        second = alerts.raise_alert(kind="limit_breach", severity="warning", title="breach", audience=["trader"])

    published = live.latest(["alerts"])["alerts"]["data"]["alerts"]

    assert [(a["id"], a["audience"]) for a in published] == [
        (second.pk, ["trader"]),
        (first.pk, ["compliance_officer"]),
    ]
    assert all(a["acknowledged"] is False and a["title"] for a in published)


def test_the_alerts_topic_keeps_the_newest_fifty_and_shows_an_acknowledgement(
    db, fresh_prefix, risk_officer, django_capture_on_commit_callbacks
):
    raised = [alerts.raise_alert(kind="limit_breach", severity="info", title=f"breach {i}") for i in range(52)]

    with django_capture_on_commit_callbacks(execute=True):
        alerts.acknowledge_alert(actor=risk_officer, alert_id=raised[-1].pk, comment="seen")

    published = live.latest(["alerts"])["alerts"]["data"]["alerts"]
    assert len(published) == alerts.PUBLISHED == 50
    assert {a["id"] for a in published} == {a.pk for a in raised[2:]}
    newest = next(a for a in published if a["id"] == raised[-1].pk)
    assert newest["acknowledged"] is True and newest["acknowledged_by"] == risk_officer.get_username()


def test_raising_an_alert_with_an_open_dedupe_key_counts_it_and_a_closed_one_starts_a_new_alert(db, risk_officer):
    first = alerts.raise_alert(kind="clock_offset", severity="warning", title="clock 3 ms off", dedupe_key="clock")
    again = alerts.raise_alert(kind="clock_offset", severity="warning", title="clock 4 ms off", dedupe_key="clock")
    alerts.acknowledge_alert(actor=risk_officer, alert_id=first.pk, comment="NTP resynced")
    after = alerts.raise_alert(kind="clock_offset", severity="warning", title="clock 5 ms off", dedupe_key="clock")

    assert again.pk == first.pk and again.occurrences == 2
    assert after.pk != first.pk


def test_acknowledging_needs_a_comment_is_audited_and_happens_once(db, risk_officer, second_officer):
    alert = alerts.raise_alert(kind="limit_breach", severity="warning", title="breach")

    with pytest.raises(AlertError) as no_comment:
        alerts.acknowledge_alert(actor=risk_officer, alert_id=alert.pk, comment=" ")
    alerts.acknowledge_alert(actor=risk_officer, alert_id=alert.pk, comment="looked at it")
    with pytest.raises(AlertError) as twice:
        alerts.acknowledge_alert(actor=second_officer, alert_id=alert.pk, comment="me too")

    assert no_comment.value.code == "ALERT_COMMENT_REQUIRED"
    assert twice.value.code == "ALERT_ALREADY_ACKNOWLEDGED"
    event = AuditEvent.objects.get(action=AuditAction.ALERT_ACKNOWLEDGED)
    assert (event.actor, event.reason) == (risk_officer, "looked at it")


def test_a_trader_cannot_acknowledge_an_alert(db, trader):
    alert = alerts.raise_alert(kind="limit_breach", severity="warning", title="breach")

    with pytest.raises(AlertError) as refused:
        alerts.acknowledge_alert(actor=trader, alert_id=alert.pk, comment="not mine")

    assert refused.value.code == "PERMISSION_DENIED"
    assert Alert.objects.get(pk=alert.pk).is_open


def test_the_watcher_follows_a_new_engine_from_its_newest_event(engine_process, settings, db):
    from riskdesk.models import EventCursor

    first = engine_process(engine_id="engine-a")
    first.apply_settings(settings)
    watcher.scan_engine_events()
    EventCursor.objects.filter(engine_id="engine-a").update(last_seq=10**9)  # far past anything engine-b has
    second = engine_process(engine_id="engine-b")
    second.apply_settings(settings)

    result = watcher.scan_engine_events()

    assert result.engine_id == "engine-b"
    assert 0 < EventCursor.objects.get(engine_id="engine-b").last_seq < 10**9


def test_the_beat_tasks_raise_a_breach_alert_through_the_real_worker(desk_engine, engine_worker, risk_officer):
    from django.conf import settings as django_settings

    from riskdesk import tasks

    assert django_settings.CELERY_BEAT_SCHEDULE["riskdesk-scan-engine-events"]["schedule"] <= 1.0
    from riskdesk.models import EventCursor

    tasks.scan_engine_events.delay()  # the first scan starts the cursor at the engine's now
    wait_until(EventCursor.objects.exists, what="the worker's first scan")
    cap_order_size(risk_officer)
    submit(desk_engine, "too-big", quantity="0.02")

    tasks.scan_engine_events.delay()

    alert = wait_until(Alert.objects.filter(kind=AlertKind.LIMIT_BREACH).first, what="the breach alert")
    assert alert.detail["client_order_id"] == "too-big"
    assert live.latest(["alerts"])["alerts"]["data"]["alerts"][0]["id"] == alert.pk
