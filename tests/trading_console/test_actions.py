"""The trader's actions against a real engine process: each is one engine command, its reply is shown, and it is
audited with who, why and what the engine said (also when the engine refused or was not there)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from compliance.models import AuditAction, AuditEvent
from engine.protocol import OrderStatus, StrategyState
from tests.engine_process import AS_BTC, engine_process  # noqa: F401 - the fixture
from trading.models import Strategy

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

LIMIT_BUY = {"strategy_id": "manual", "symbol": "BTCUSDT", "side": "BUY", "order_type": "LIMIT",
             "time_in_force": "GTC", "quantity": "0.002", "price": "60000.0", "reason": "test bid"}  # fmt: skip


@pytest.fixture
def engine(engine_process, settings):  # noqa: F811
    running = engine_process(strategies=[AS_BTC])
    running.apply_settings(settings)
    return running


@pytest.fixture
def desk_client(trader) -> Client:
    from trading.models import Strategy
    from trading.services.reference import sync_reference_data

    sync_reference_data()
    # As the bridge would have it: the engine's first parameter version is 1.
    Strategy.objects.filter(strategy_id="as-btc").update(params_version=1)
    client = Client()
    client.force_login(trader)
    return client


def audit(action: AuditAction) -> AuditEvent:
    """The newest row of `action`: for a console action, the engine's reply (the attempt is the row before it)."""
    return AuditEvent.objects.filter(action=action).latest("occurred_at", "id")


def test_the_attempt_is_recorded_before_the_command_reaches_the_engine_and_the_reply_after_it(
    engine, desk_client, trader, monkeypatch
):
    from console.engine_client import EngineClient

    recorded_when_sent = []
    request = EngineClient.request

    def request_seeing_the_audit_trail(self, command, *args, **kwargs):
        rows = AuditEvent.objects.filter(details__command_id=command.command_id)
        recorded_when_sent.extend(rows.values_list("details__phase", flat=True))
        return request(self, command, *args, **kwargs)

    monkeypatch.setattr(EngineClient, "request", request_seeing_the_audit_trail)

    result = desk_client.post("/trading/ticket/", LIMIT_BUY).context["result"]

    assert result.ok
    assert recorded_when_sent == ["attempt"]
    attempt, reply = AuditEvent.objects.filter(details__command_id=result.command_id).order_by("id")
    assert attempt.action == reply.action == AuditAction.ORDER_SUBMITTED
    assert attempt.details["phase"] == "attempt" and "result" not in attempt.details
    assert attempt.details["command"]["client_order_id"] == result.reply["client_order_id"]
    assert attempt.actor == reply.actor == trader and attempt.reason == reply.reason == "test bid"
    assert reply.details["phase"] == "reply" and reply.details["result"] == "ACCEPTED"


def test_an_attempt_that_cannot_be_recorded_is_never_sent(engine, desk_client, monkeypatch):
    from trading.services import console

    def audit_trail_down(**kwargs):
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr(console, "record_audit_event", audit_trail_down)

    with pytest.raises(RuntimeError, match="audit trail unavailable"):
        desk_client.post("/trading/ticket/", LIMIT_BUY)

    assert [o for o in engine.snapshot().orders if o.strategy_id == "manual"] == []


def test_a_limit_order_from_the_ticket_is_accepted_by_the_engine_shown_and_audited(engine, desk_client, trader):
    response = desk_client.post("/trading/ticket/", LIMIT_BUY, HTTP_HX_REQUEST="true")

    result = response.context["result"]
    assert response.status_code == 200 and result.ok
    assert "Engine accepted" in response.content.decode()
    working = {o.client_order_id: o for o in engine.snapshot().orders}
    assert result.reply["client_order_id"] in working
    event = audit(AuditAction.ORDER_SUBMITTED)
    assert event.actor == trader and event.reason == "test bid"
    assert event.details["result"] == "ACCEPTED"
    assert event.details["command"]["price"] == "60000.0" and event.details["command"]["side"] == "BUY"
    assert event.target == f"order:{result.reply['client_order_id']}"


def test_a_cancel_the_engine_refuses_shows_its_reason_code_and_is_audited_as_refused(engine, desk_client):
    response = desk_client.post(
        "/trading/orders/cancel/", {"client_order_id": "never-placed", "symbol": "BTCUSDT"}, HTTP_HX_REQUEST="true"
    )

    result = response.context["result"]
    assert response.status_code == 422 and not result.ok
    assert f"Refused: {result.code}" in response.content.decode()
    event = audit(AuditAction.ORDER_CANCELED)
    assert event.details["result"] == result.code != "ACCEPTED"


def test_cancelling_a_working_order_sends_cancel_order_and_the_engine_cancels_it(engine, desk_client):
    placed = desk_client.post("/trading/ticket/", LIMIT_BUY).context["result"].reply["client_order_id"]

    response = desk_client.post("/trading/orders/cancel/", {"client_order_id": placed, "symbol": "BTCUSDT"})

    assert response.status_code == 200 and response.context["result"].ok
    states = {o.client_order_id: o.status for o in engine.snapshot().orders}
    assert placed not in states or states[placed] in (OrderStatus.CANCELED, OrderStatus.PENDING_CANCEL)
    assert audit(AuditAction.ORDER_CANCELED).target == f"order:{placed}"


def test_cancel_all_for_a_strategy_clears_its_working_orders(engine, desk_client):
    for _ in range(2):
        assert desk_client.post("/trading/ticket/", LIMIT_BUY).context["result"].ok

    response = desk_client.post(
        "/trading/orders/cancel-all/",
        {"scope_kind": "STRATEGY", "scope_name": "manual", "confirm": "manual", "reason": "flatten before close"},
    )

    assert response.context["result"].ok
    working = [o for o in engine.snapshot().orders if o.strategy_id == "manual" and o.status == OrderStatus.NEW]
    assert working == []
    event = audit(AuditAction.CANCEL_ALL)
    assert event.target == "strategy:manual" and event.reason == "flatten before close"
    assert event.details["command"]["scope"] == {"kind": "STRATEGY", "name": "manual"}  # names, like the form


def test_a_strategy_is_started_and_stopped_from_its_page_with_the_engines_reply(engine, desk_client, trader):
    started = desk_client.post("/trading/strategy/as-btc/start/", {"reason": "open"}, HTTP_HX_REQUEST="true")
    stopped = desk_client.post(
        "/trading/strategy/as-btc/stop/", {"reason": "news", "cancel_orders": "on"}, HTTP_HX_REQUEST="true"
    )

    assert started.context["result"].ok and started.context["result"].reply["strategy_state"] == "RUNNING"
    assert stopped.context["result"].ok and "strategy STOPPED" in stopped.content.decode()
    (summary,) = [s for s in engine.snapshot().strategies if s.strategy_id == "as-btc"]
    assert summary.state == StrategyState.STOPPED
    assert audit(AuditAction.STRATEGY_STOPPED).reason == "news"
    assert audit(AuditAction.STRATEGY_STARTED).actor == trader


def params_post(**changes) -> dict:
    base = {"p_gamma": "0.05", "p_k": "1.5", "p_sigma": "2.0", "p_horizon_s": "60.0", "p_order_size": "2",
            "p_max_inventory": "20", "p_requote_threshold_ticks": "1", "base_version": "1",
            "reason": "tune"}  # fmt: skip
    shown = [key[2:] for key in base if key.startswith("p_")]
    return {**base, "shown": shown, **changes}


def test_a_valid_parameter_change_becomes_the_engines_next_version(engine, desk_client):
    response = desk_client.post("/trading/strategy/as-btc/params/", params_post(p_gamma="0.07"))

    result = response.context["result"]
    assert response.status_code == 200 and result.ok and result.reply["params_version"] == 2
    (summary,) = [s for s in engine.snapshot().strategies if s.strategy_id == "as-btc"]
    assert summary.params_version == 2 and str(summary.params["gamma"]) == "0.07"
    event = audit(AuditAction.STRATEGY_PARAMS_CHANGED)
    assert event.details["command"]["params"] == {"gamma": "0.07"} and event.reason == "tune"


def test_an_invalid_parameter_is_refused_by_the_engines_schema_and_shown_on_its_field(engine, desk_client):
    response = desk_client.post("/trading/strategy/as-btc/params/", params_post(p_gamma="0"))

    form = response.context["params_form"]
    assert response.status_code == 422
    assert form.errors.as_data()["p_gamma"][0].code == "STRATEGY_PARAM_INVALID"
    assert "STRATEGY_PARAM_INVALID" in response.content.decode()
    (summary,) = [s for s in engine.snapshot().strategies if s.strategy_id == "as-btc"]
    assert summary.params_version == 1  # nothing changed
    assert audit(AuditAction.STRATEGY_PARAMS_CHANGED).details["result"] == "STRATEGY_PARAM_INVALID"


def test_a_cross_field_rule_of_the_schema_is_shown_on_the_form(engine, desk_client):
    response = desk_client.post("/trading/strategy/as-btc/params/", params_post(p_order_size="30"))

    assert response.status_code == 422
    assert "max_inventory" in response.content.decode() and "STRATEGY_PARAM_INVALID" in response.content.decode()


def test_a_rollback_puts_an_earlier_version_back_as_a_new_one(engine, desk_client):
    assert desk_client.post("/trading/strategy/as-btc/params/", params_post(p_gamma="0.07")).context["result"].ok
    Strategy.objects.filter(strategy_id="as-btc").update(params_version=2)  # what the bridge records; none runs here

    response = desk_client.post(
        "/trading/strategy/as-btc/rollback/", {"version": "1", "base_version": "2", "reason": "too wide"}
    )

    assert response.context["result"].ok and response.context["result"].reply["params_version"] == 3
    # The page's next change starts from the version the engine now has, not the one the page was rendered with.
    assert response.context["params_form"].initial["base_version"] == 3
    (summary,) = [s for s in engine.snapshot().strategies if s.strategy_id == "as-btc"]
    assert str(summary.params["gamma"]) == "0.05"
    assert audit(AuditAction.STRATEGY_PARAMS_ROLLED_BACK).reason == "too wide"


def test_a_rollback_from_a_page_older_than_the_engines_version_is_refused_by_the_engine(engine, desk_client):
    assert desk_client.post("/trading/strategy/as-btc/params/", params_post(p_gamma="0.07")).context["result"].ok

    # The console has not yet heard of version 2 (no bridge), so only the engine's compare-and-set can catch this.
    response = desk_client.post(
        "/trading/strategy/as-btc/rollback/", {"version": "1", "base_version": "1", "reason": "too wide"}
    )

    assert response.status_code == 422
    assert response.context["result"].code == "STRATEGY_PARAM_VERSION_CONFLICT"
    (summary,) = [s for s in engine.snapshot().strategies if s.strategy_id == "as-btc"]
    assert summary.params_version == 2 and str(summary.params["gamma"]) == "0.07"


def test_with_no_engine_the_action_says_engine_unavailable_and_the_attempt_is_audited(desk_client, settings, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    call_command("engine_keys", dir=tmp_path / "keys")
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "keys"
    settings.ENGINE_TIMEOUT_MS = 100
    settings.ENGINE_COMMAND_RETRIES = 1

    response = desk_client.post("/trading/ticket/", LIMIT_BUY)

    assert response.status_code == 422
    assert "ENGINE_UNAVAILABLE" in response.content.decode()
    attempt, reply = AuditEvent.objects.filter(action=AuditAction.ORDER_SUBMITTED).order_by("id")
    assert attempt.details["phase"] == "attempt" and attempt.details["command_id"] == reply.details["command_id"]
    assert reply.details["result"] == "ENGINE_UNAVAILABLE"
