"""The risk desk over HTTP: who may do what (403 for everyone else), and bad input on every form gets a clear
message with its code and changes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from riskdesk.models import Alert, KillSwitchAction, LimitVersion, TriggerSetting
from riskdesk.services import alerts
from tests.conftest import PASSWORD
from tests.riskdesk.conftest import accepted, submit, working_orders

RISK_GETS = [
    ("riskdesk:home", {}),
    ("riskdesk:live", {}),
    ("riskdesk:edit_limits", {"scope": "firm"}),
    ("riskdesk:edit_triggers", {"scope": "firm"}),
]
RISK_POSTS = [
    ("riskdesk:edit_limits", {"scope": "instrument:BTCUSDT"}, {"base_version": 0, "reason": "x"}),
    ("riskdesk:approve_limits", {"version_id": 1}, {}),
    ("riskdesk:reject_limits", {"version_id": 1}, {"comment": "no"}),
    ("riskdesk:trading_state", {}, {"action": "halt", "scope": "firm", "reason": "x", "confirm": "on"}),
    ("riskdesk:trading_state", {}, {"action": "resume", "scope": "firm", "reason": "x", "confirm": "on"}),
    ("riskdesk:acknowledge_alert", {"alert_id": 1}, {"comment": "seen"}),
    ("riskdesk:edit_triggers", {"scope": "firm"}, {"base_version": 0, "reason": "x", "daily_loss": "10"}),
    ("riskdesk:run_var", {}, {}),
]


@pytest.fixture
def as_user(client):
    def login(user):
        client.login(username=user.username, password=PASSWORD)
        return client

    return login


@pytest.mark.parametrize(("name", "kwargs"), RISK_GETS)
def test_a_trader_gets_403_on_every_risk_page(as_user, trader, name, kwargs):
    assert as_user(trader).get(reverse(name, kwargs=kwargs)).status_code == 403


@pytest.mark.parametrize(("name", "kwargs", "data"), RISK_POSTS)
def test_a_trader_gets_403_on_every_risk_action_and_nothing_changes(as_user, trader, name, kwargs, data):
    response = as_user(trader).post(reverse(name, kwargs=kwargs), data)

    assert response.status_code == 403
    assert not LimitVersion.objects.exists() and not KillSwitchAction.objects.exists()
    assert not TriggerSetting.objects.exists()


@pytest.mark.parametrize(("name", "kwargs", "data"), RISK_POSTS[:5])
def test_a_compliance_officer_gets_403_on_every_limit_and_kill_action(as_user, compliance_officer, name, kwargs, data):
    assert as_user(compliance_officer).post(reverse(name, kwargs=kwargs), data).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("riskdesk:home"))

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_desk_shows_the_engine_state_limits_and_utilisation(as_user, risk_officer, desk_engine):
    response = as_user(risk_officer).get(reverse("riskdesk:home"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "test-engine" in html  # the engine answered the page's snapshot
    assert 'data-field="max_open_orders"' in html and "DB ≠ engine" in html  # start-up limits the DB never set
    assert 'class="bar ' in html
    assert '<tr data-scope="firm" data-slug="firm"><td>firm</td>' in html  # the exposure the gate measures


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"max_order_quantity": "-1"}, "max_order_quantity", "greater than or equal to 0"),
        ({"max_order_quantity": "abc"}, "max_order_quantity", "Enter a number"),
        ({"max_open_orders": "2.5"}, "max_open_orders", "Enter a whole number"),
        ({"price_collar_pct": "0"}, "price_collar_pct", "above 0 %"),
        ({"max_order_quantity": "0.0005"}, "max_order_quantity", "QUANTITY_OFF_LOT"),
        ({"max_orders_per_window": "5"}, "rate_window_ms", "a rate limit needs a window"),
        ({"max_daily_loss": "100"}, "max_daily_loss", "LIMIT_UNSUPPORTED"),
        ({"max_position": "9"}, "max_position", "LIMIT_ABOVE_PARENT"),
        ({"reason": ""}, "reason", "required"),
    ],
)
def test_bad_input_on_the_limit_form_gets_a_clear_message_and_changes_nothing(
    as_user, risk_officer, desk_engine, data, field, message
):
    from riskdesk.services import limits

    limits.propose_limits(
        actor=risk_officer, kind="strategy", name="manual", limits={"max_position": 1}, base_version=0, reason="cap"
    )
    browser = as_user(risk_officer)  # the log-in is audited too: count after it
    before = LimitVersion.objects.count()
    audits = AuditEvent.objects.count()

    response = browser.post(
        reverse("riskdesk:edit_limits", kwargs={"scope": "instrument:BTCUSDT"}),
        {"base_version": 0, "reason": "change", **data},
    )

    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors.get(field, []))
    assert LimitVersion.objects.count() == before and AuditEvent.objects.count() == audits


def test_a_stale_version_submitted_by_a_second_officer_gets_a_conflict_and_changes_nothing(
    as_user, risk_officer, second_officer, desk_engine, client
):
    url = reverse("riskdesk:edit_limits", kwargs={"scope": "instrument:BTCUSDT"})
    as_user(risk_officer).post(url, {"base_version": 0, "reason": "first", "max_order_quantity": "0.05"})
    client.logout()

    response = as_user(second_officer).post(url, {"base_version": 0, "reason": "second", "max_order_quantity": "0.02"})

    assert response.status_code == 409
    assert "LIMIT_STALE_VERSION" in str(response.context["form"].non_field_errors())
    assert list(LimitVersion.objects.values_list("limits", flat=True)) == [{"max_order_quantity": "0.05"}]


def test_a_tightening_from_the_form_reports_the_engines_acknowledgement(as_user, risk_officer, desk_engine):
    response = as_user(risk_officer).post(
        reverse("riskdesk:edit_limits", kwargs={"scope": "instrument:BTCUSDT"}),
        {"base_version": 0, "reason": "tighter", "max_order_quantity": "0.05"},
        follow=True,
    )

    assert "in force: engine acknowledged" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"action": "halt", "scope": "strategy:manual", "reason": "", "confirm": "on"}, "reason"),
        ({"action": "halt", "scope": "strategy:manual", "reason": "why"}, "STATE_NOT_CONFIRMED"),
        ({"action": "explode", "scope": "strategy:manual", "reason": "why", "confirm": "on"}, "action"),
        ({"action": "halt", "scope": "strategy:nope", "reason": "why", "confirm": "on"}, "SCOPE_UNKNOWN"),
    ],
)
def test_bad_input_on_the_kill_switch_form_is_refused_with_a_reason_and_sends_nothing(
    as_user, risk_officer, desk_engine, data, text
):
    assert accepted(submit(desk_engine, "stays"))

    response = as_user(risk_officer).post(reverse("riskdesk:trading_state"), data, follow=True)

    assert text in response.content.decode()
    assert not KillSwitchAction.objects.exists()
    assert [o.client_order_id for o in working_orders(desk_engine)] == ["stays"]


def test_an_acknowledgement_without_a_comment_is_refused(as_user, risk_officer):
    alert = alerts.raise_alert(kind="limit_breach", severity="warning", title="breach")

    response = as_user(risk_officer).post(
        reverse("riskdesk:acknowledge_alert", kwargs={"alert_id": alert.pk}), {"comment": ""}, follow=True
    )

    assert "ALERT_COMMENT_REQUIRED" in response.content.decode()
    assert Alert.objects.get(pk=alert.pk).is_open


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"daily_loss": "-5"}, "daily_loss"),
        ({"reject_rate": "1.5", "reject_rate_window_ns": "1000000000"}, "reject_rate"),
        ({"reject_rate": "0.5"}, "reject_rate_window_ns"),
        ({"daily_loss_action": "EXPLODE"}, "daily_loss_action"),
        ({"drawdown": "lots"}, "drawdown"),
        ({"heartbeat_timeout_ns": "0"}, "heartbeat_timeout_ns"),
        ({"heartbeat_timeout_ns": "1000000000"}, "heartbeat_timeout_ns"),  # under three console heartbeats
        ({"reject_rate": "0.5", "reject_rate_window_ns": "1e9"}, "reject_rate_window_ns"),
        ({"base_version": ""}, "base_version"),
        ({"reason": ""}, "reason"),
    ],
)
def test_bad_input_on_the_trigger_form_is_refused_and_records_nothing(as_user, risk_officer, data, field):
    response = as_user(risk_officer).post(
        reverse("riskdesk:edit_triggers", kwargs={"scope": "firm"}), {"base_version": 0, "reason": "tune", **data}
    )

    assert response.status_code == 400 and response.context["form"].errors.get(field)
    assert not TriggerSetting.objects.exists()


def test_a_heartbeat_trigger_below_firm_scope_is_refused(as_user, risk_officer, desk_engine):
    response = as_user(risk_officer).post(
        reverse("riskdesk:edit_triggers", kwargs={"scope": "strategy:manual"}),
        {"base_version": 0, "reason": "tune", "heartbeat_timeout_ns": "5000000000"},
    )

    assert response.status_code == 400 and "firm-wide" in str(response.context["form"].errors)
    assert not TriggerSetting.objects.exists()


def test_two_officers_editing_one_scopes_triggers_the_later_one_is_refused_as_stale(
    as_user, client, risk_officer, second_officer, desk_engine
):
    url = reverse("riskdesk:edit_triggers", kwargs={"scope": "strategy:manual"})
    first = as_user(risk_officer).post(url, {"base_version": 0, "reason": "cap", "drawdown": "900"}, follow=True)
    client.logout()

    late = as_user(second_officer).post(url, {"base_version": 0, "reason": "mine", "drawdown": "700"})

    assert "Triggers strategy manual v1 in force: engine acknowledged" in first.content.decode()
    assert late.status_code == 409 and "TRIGGER_STALE_VERSION" in late.content.decode()
    assert list(TriggerSetting.objects.values_list("config", flat=True)) == [{"drawdown": "900"}]


def test_the_trigger_page_shows_the_engines_acknowledgement_and_no_longer_says_not_sent(
    as_user, risk_officer, desk_engine
):
    client = as_user(risk_officer)
    client.post(
        reverse("riskdesk:edit_triggers", kwargs={"scope": "firm"}),
        {"base_version": 0, "reason": "dead man", "heartbeat_timeout_ns": "30000000000"},
    )

    page = client.get(reverse("riskdesk:home")).content.decode()
    form = client.get(reverse("riskdesk:edit_triggers", kwargs={"scope": "firm"}))

    assert "not sent to the engine" not in page
    assert 'data-field="heartbeat_timeout_ns"' in page and 'data-role="trigger-drift"' not in page
    assert form.context["form"].initial["base_version"] == 1
    assert form.context["form"].initial["heartbeat_timeout_ns"] == 30000000000
    assert 'data-status="in_force"' in form.content.decode()


def test_the_four_eyes_flow_over_http_the_proposer_cannot_approve_a_second_officer_can(
    as_user, client, risk_officer, second_officer, desk_engine
):
    url = reverse("riskdesk:edit_limits", kwargs={"scope": "instrument:BTCUSDT"})
    as_user(risk_officer).post(url, {"base_version": 0, "reason": "tight", "max_order_quantity": "0.01"})
    proposed = as_user(risk_officer).post(
        url, {"base_version": 1, "reason": "wider", "max_order_quantity": "0.05"}, follow=True
    )
    pending = LimitVersion.objects.get(version=2)

    own = client.post(reverse("riskdesk:approve_limits", kwargs={"version_id": pending.pk}), follow=True)
    client.logout()
    other = as_user(second_officer).post(
        reverse("riskdesk:approve_limits", kwargs={"version_id": pending.pk}), {"comment": "ok"}, follow=True
    )

    assert "waiting for a second risk officer" in proposed.content.decode()
    assert "LIMIT_SELF_APPROVAL" in own.content.decode()
    assert "in force: engine acknowledged" in other.content.decode()
    assert LimitVersion.objects.get(pk=pending.pk).approved_by == second_officer


def test_the_admin_shows_the_desks_records_but_cannot_change_them(client, admin_user):
    from django.contrib import admin

    from riskdesk.models import LimitVersion as Model

    client.login(username=admin_user.username, password=PASSWORD)
    model_admin = admin.site._registry[Model]

    assert client.get(reverse("admin:riskdesk_limitversion_changelist")).status_code == 200
    assert not model_admin.has_change_permission(None) and not model_admin.has_delete_permission(None)
    assert client.get(reverse("admin:riskdesk_alert_add")).status_code == 403


def test_rejecting_a_change_without_a_comment_is_refused_and_it_stays_pending(
    as_user, client, risk_officer, second_officer, desk_engine
):
    url = reverse("riskdesk:edit_limits", kwargs={"scope": "instrument:BTCUSDT"})
    as_user(risk_officer).post(url, {"base_version": 0, "reason": "tight", "max_order_quantity": "0.01"})
    as_user(risk_officer).post(url, {"base_version": 1, "reason": "wider", "max_order_quantity": "0.05"})
    pending = LimitVersion.objects.get(version=2)
    client.logout()

    response = as_user(second_officer).post(
        reverse("riskdesk:reject_limits", kwargs={"version_id": pending.pk}), {"comment": ""}, follow=True
    )

    assert "LIMIT_COMMENT_REQUIRED" in response.content.decode()
    assert LimitVersion.objects.get(pk=pending.pk).status == "pending_approval"


def test_the_desk_says_so_when_the_engine_does_not_answer(as_user, risk_officer, settings, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "no-keys"

    response = as_user(risk_officer).get(reverse("riskdesk:home"))

    assert response.status_code == 200
    assert 'id="engine-unavailable"' in response.content.decode()


def test_an_automatic_halts_time_to_flat_shows_on_its_alert(as_user, risk_officer, settings, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"  # the alert list needs no engine
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "no-keys"
    alerts.raise_alert(
        kind="trigger_fired",
        severity="critical",
        title="STATE_TRIGGER_DAILY_LOSS: firm ACTIVE -> HALTED",
        detail={"code": "STATE_TRIGGER_DAILY_LOSS", "halt_elapsed_ns": 12_500_000, "orders_canceled": 3},
    )

    html = as_user(risk_officer).get(reverse("riskdesk:live")).content.decode()

    assert "all canceled after 12.5 ms (3 orders)" in html


def test_the_override_expiry_says_it_is_utc_and_is_read_as_utc(as_user, risk_officer, settings, tmp_path):
    import datetime as dt

    from riskdesk.forms import LimitForm

    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "no-keys"
    form = LimitForm(data={"base_version": 0, "reason": "auction", "expires_at": "2026-11-22T10:00"})

    page = as_user(risk_officer).get(reverse("riskdesk:edit_limits", kwargs={"scope": "firm"})).content.decode()

    assert form.is_valid(), form.errors
    assert form.cleaned_data["expires_at"] == dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
    assert "Temporary override until, UTC" in page and "in UTC (not your local time)" in page
