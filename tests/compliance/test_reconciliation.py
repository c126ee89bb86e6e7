"""Three-way reconciliation against a real engine process (and its in-process venue) and the real database."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.urls import reverse

from compliance.models import AuditAction, AuditEvent, BreakKind, ReconciliationStatus, ReconciliationTrigger
from compliance.reconciliation import BreakError, resolve_break, run_reconciliation, start_reconciliation
from engine.protocol import OrderType, Side, StateSnapshot, SubmitOrder, TimeInForce
from tests.compliance.rows import insert_fill, insert_order, insert_position
from tests.engine_process import engine_process  # noqa: F401  (fixture)

ENGINE_ID = "recon-engine"


def submit(engine, client, cid: str, *, price: str, quantity: str, tif=TimeInForce.GTC, side=Side.BUY):
    return client.request(
        engine.command(
            SubmitOrder,
            strategy_id="manual",
            client_order_id=cid,
            symbol="BTCUSDT",
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=tif,
            price=Decimal(price),
            quantity=Decimal(quantity),
        )
    )


@pytest.fixture
def trading_engine(engine_process, settings):  # noqa: F811
    """An engine with two resting buy orders and a position from an order that crossed the book."""
    engine = engine_process(engine_id=ENGINE_ID)
    engine.apply_settings(settings)
    client = engine.client()
    submit(engine, client, "rest-1", price="60000.0", quantity="0.002")
    submit(engine, client, "rest-2", price="60001.0", quantity="0.003")
    submit(engine, client, "take-1", price="70000.0", quantity="0.004", tif=TimeInForce.IOC)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = engine.snapshot()
        working = {o.client_order_id for o in snapshot.orders}
        if {"rest-1", "rest-2"} <= working and any(p.quantity for p in snapshot.positions):
            return engine
        time.sleep(0.1)
    raise AssertionError(f"the engine never showed the orders and a position: {engine.snapshot()}")


def mirror_into_db(snapshot: StateSnapshot, codec, *, skip_orders=(), skip_fills=False) -> None:
    """The database as the bridge would leave it for this snapshot."""
    for order in snapshot.orders:
        if order.client_order_id in skip_orders:
            continue
        lots = codec.instruments.get(order.symbol).lots_to_qty
        insert_order(
            engine_id=snapshot.engine_id,
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            quantity=str(lots(order.quantity)),
            leaves=str(lots(order.leaves_quantity)),
            cum=str(lots(order.cum_quantity)),
            status=order.status.name,
            last_seq=1,
        )
    for n, position in enumerate(snapshot.positions):
        qty = codec.instruments.get(position.symbol).lots_to_qty(position.quantity)
        insert_position(
            engine_id=snapshot.engine_id, strategy_id=position.strategy_id, symbol=position.symbol, quantity=str(qty)
        )
        insert_order(
            engine_id=snapshot.engine_id,
            client_order_id=f"filled-{n}",
            strategy_id=position.strategy_id,
            quantity=str(abs(qty)),
            leaves="0",
            cum=str(abs(qty)),
            status="FILLED",
        )
        if not skip_fills:
            insert_fill(
                engine_id=snapshot.engine_id,
                seq=1,
                exec_id=f"x-{n}",
                client_order_id=f"filled-{n}",
                strategy_id=position.strategy_id,
                symbol=position.symbol,
                side="BUY" if qty > 0 else "SELL",
                quantity=str(abs(qty)),
            )


def reconcile():
    return run_reconciliation(run=start_reconciliation(trigger=ReconciliationTrigger.ON_DEMAND, requested_by="t"))


def kinds(run) -> list[str]:
    return sorted(run.breaks.values_list("kind", flat=True))


def test_engine_database_and_venue_that_agree_reconcile_without_breaks(trading_engine, db):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec())

    run = reconcile()

    assert run.status == ReconciliationStatus.DONE, run.error
    assert run.engine_id == ENGINE_ID
    assert run.venue_checked, run.error
    assert run.engine_orders == run.venue_orders == 2
    assert kinds(run) == []


def test_a_working_order_missing_in_the_database_is_a_break(trading_engine, db):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec(), skip_orders={"rest-2"})

    run = reconcile()

    assert kinds(run) == [BreakKind.ORDER_MISSING_IN_DB]
    item = run.breaks.get()
    assert item.client_order_id == "rest-2"
    assert item.severity == "critical"


def test_a_fill_the_engine_never_saw_is_a_break(trading_engine, db):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec())
    insert_fill(engine_id=ENGINE_ID, seq=1, exec_id="x-phantom", client_order_id="phantom", quantity="0.001")

    run = reconcile()

    assert kinds(run) == [BreakKind.FILL_WITHOUT_ORDER, BreakKind.FILLS_POSITION_MISMATCH]
    mismatch = run.breaks.get(kind=BreakKind.FILLS_POSITION_MISMATCH)
    assert Decimal(mismatch.values["from fills"]) - Decimal(mismatch.values["engine"]) == Decimal("0.001")


def test_a_position_that_differs_between_engine_and_database_is_a_break(trading_engine, db):
    snapshot = trading_engine.snapshot()
    mirror_into_db(snapshot, trading_engine.codec())
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE trading_position SET quantity = quantity + 1 WHERE engine_id = %s", [ENGINE_ID])

    run = reconcile()

    assert kinds(run) == [BreakKind.POSITION_MISMATCH]
    assert run.breaks.get().symbol == "BTCUSDT"


def test_an_order_working_in_the_database_but_unknown_to_the_engine_is_a_break(trading_engine, db):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec())
    insert_order(engine_id=ENGINE_ID, client_order_id="stale-1", status="PARTIALLY_FILLED", cum="0.001")

    run = reconcile()

    assert kinds(run) == [BreakKind.ORDER_MISSING_IN_ENGINE]


def test_an_unreachable_engine_fails_the_run_with_the_reason(db, settings, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "no-keys"

    run = reconcile()

    assert run.status == ReconciliationStatus.FAILED
    assert run.error_code == "ENGINE_KEYS_MISSING"


def test_a_break_is_resolved_with_a_comment_and_the_resolution_is_audited(trading_engine, compliance_officer):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec(), skip_orders={"rest-1"})
    item = reconcile().breaks.get()

    with pytest.raises(BreakError, match="RECON_COMMENT_REQUIRED"):
        resolve_break(user=compliance_officer, break_id=item.pk, comment="  ")
    resolve_break(user=compliance_officer, break_id=item.pk, comment="bridge restarted; order replayed")

    item.refresh_from_db()
    assert item.resolved_by == compliance_officer
    assert item.resolution == "bridge restarted; order replayed"
    event = AuditEvent.objects.get(action=AuditAction.RECONCILIATION_RESOLVED)
    assert event.reason == "bridge restarted; order replayed"
    assert event.details["client_order_id"] == "rest-1"
    with pytest.raises(BreakError, match="RECON_ALREADY_RESOLVED"):
        resolve_break(user=compliance_officer, break_id=item.pk, comment="again")


def test_a_run_with_breaks_alerts_compliance_and_risk(trading_engine, db):
    from riskdesk.models import Alert

    mirror_into_db(trading_engine.snapshot(), trading_engine.codec(), skip_orders={"rest-1"})

    run = reconcile()

    alert = Alert.objects.get(kind="reconciliation_break")
    assert alert.severity == "critical"
    assert set(alert.audience) == {"compliance_officer", "risk_officer"}
    assert alert.detail["run"] == run.pk


def test_the_page_resolves_a_break_but_a_trader_cannot(trading_engine, client, compliance_officer, trader):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec(), skip_orders={"rest-1"})
    item = reconcile().breaks.get()
    url = reverse("compliance:resolve_break", args=[item.pk])

    client.force_login(trader)
    assert client.post(url, {"comment": "not mine"}).status_code == 403
    client.force_login(compliance_officer)
    page = client.get(reverse("compliance:reconciliation"))
    response = client.post(url, {"comment": "checked with the venue"})

    assert b"rest-1" in page.content
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.resolution == "checked with the venue"


def test_a_reconciliation_runs_when_the_engine_comes_up_and_again_after_a_restart(engine_process, settings, db):  # noqa: F811
    import redis

    from compliance.reconciliation import ENGINE_LINK_KEY, reconcile_on_engine_start
    from console.services.engine_link import beat_engine

    engine = engine_process(engine_id=ENGINE_ID)
    engine.apply_settings(settings, retries=2)
    store = redis.Redis.from_url(settings.REDIS_URL)
    store.delete(f"{settings.CHANNEL_LAYER_PREFIX}:{ENGINE_LINK_KEY}")
    store.close()

    beat_engine()
    first = reconcile_on_engine_start()
    beat_engine()
    steady = reconcile_on_engine_start()
    engine.kill()
    beat_engine()
    down = reconcile_on_engine_start()
    engine.start()
    beat_engine()
    back = reconcile_on_engine_start()

    assert first is not None and first.trigger == ReconciliationTrigger.ENGINE_START
    assert first.status == ReconciliationStatus.DONE, first.error
    assert steady is None and down is None
    assert back is not None and back.trigger == ReconciliationTrigger.ENGINE_START


def test_an_order_whose_state_differs_between_engine_and_database_is_a_break(trading_engine, db):
    mirror_into_db(trading_engine.snapshot(), trading_engine.codec(), skip_orders={"rest-1"})
    insert_order(engine_id=ENGINE_ID, client_order_id="rest-1", quantity="0.002", leaves="0.001", cum="0.001")

    run = reconcile()

    assert kinds(run) == [BreakKind.ORDER_MISMATCH]
    item = run.breaks.get()
    assert item.values["engine"]["leaves"] == "0.002" and item.values["db"]["cum"] == "0.001"


def test_venue_answers_that_differ_from_the_engine_are_breaks():
    # The in-process venue always agrees with the engine, so the venue leg's comparison is shown on its own: the
    # answers as collected from VenueOrderStatus events (see test_engine_database_and_venue_that_agree...).
    from compliance.reconciliation.compare import OrderView, Sides, VenueView, compare

    working = OrderView("v-1", "manual", "BTCUSDT", "NEW", Decimal("0.002"), Decimal(0))
    sides = Sides(
        engine_seq=10,
        engine_orders={"v-1": working, "v-2": working, "v-3": working},
        engine_positions={},
        db_orders={"v-1": working, "v-2": working, "v-3": working},
        db_positions={},
        fill_positions={},
        venue=[
            VenueView("v-1", "manual", "BTCUSDT", False, "REJECTED", 0, 0, "NEW", Decimal("0.002"), 0),
            VenueView("v-2", "manual", "BTCUSDT", True, "FILLED", 0, Decimal("0.002"), "NEW", Decimal("0.002"), 0),
        ],
        venue_unanswered=("v-3",),
    )

    found = [(f.kind, f.client_order_id, f.severity) for f in compare(sides)]

    assert found == [
        (BreakKind.ORDER_MISSING_AT_VENUE, "v-1", "critical"),
        (BreakKind.VENUE_MISMATCH, "v-2", "critical"),
        (BreakKind.ORDER_MISSING_AT_VENUE, "v-3", "warning"),
    ]
