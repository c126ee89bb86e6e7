"""QueryVenueOrders and HaltCompleted over FIX: the engine on the FIX gateway against the real venue process asks
each working order's status with an OrderStatusRequest (35=H) and reports the venue's answers, an order the venue
no longer holds included; a halt completes when the venue has acknowledged every cancel."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from engine.clock import WallClock
from engine.config import EngineConfig
from engine.core import Engine
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.protocol import (
    HaltCompleted,
    HaltTrading,
    QueryVenueOrders,
    Scope,
    SubmitOrder,
    VenueCancelOrder,
    VenueOrderStatus,
    VenueQueryOrder,
    VenueStatusComplete,
)
from tests.engine.fix_helpers import VenueProcess, wait_for
from tests.engine.test_fix_gateway import INSTRUMENTS, RecordingGateway, connected, make_gateway

pytestmark = pytest.mark.timeout(240)


class FixDesk:
    def __init__(self, venue: VenueProcess, var_dir) -> None:
        self.gw = connected(make_gateway(venue.port, var_dir))
        self.recording = RecordingGateway(self.gw)
        self.engine = Engine(EngineConfig(account="MM1"), WallClock(), INSTRUMENTS, self.recording)
        self.events: list = []
        self.dropped: list = []

    def pump_until(self, condition, *, drop=lambda msg: False) -> None:
        def step():
            for msg in self.gw.poll():
                if drop(msg):
                    self.dropped.append(msg)
                else:
                    self.engine.handle_venue_message(msg)
            self.events.extend(e.event for e in self.engine.drain())
            return condition()

        wait_for(step)

    def submit(self, cid: str, price: str, strategy_id: str = "manual") -> None:
        self.engine.handle_command(
            SubmitOrder(
                command_id=f"k-{cid}",
                operator="bob",
                ts=time.time_ns(),
                strategy_id=strategy_id,
                client_order_id=cid,
                symbol="BTCUSDT",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=Decimal(price),
                quantity=Decimal("0.005"),
            )
        )

    def of(self, kind) -> list:
        return [e for e in self.events if type(e) is kind]


def test_an_order_status_request_per_working_order_and_an_unknown_order_reported_as_unknown(tmp_path):
    with VenueProcess(tmp_path) as venue:
        desk = FixDesk(venue, tmp_path / "engine")
        try:
            desk.submit("e-1", "59000.0")
            desk.submit("e-2", "58999.0")
            desk.pump_until(lambda: all(o.status == OrderStatus.NEW for o in desk.engine.oms.working_orders()))
            # Canceled at the venue behind the engine's back: its report is dropped on the way.
            desk.gw.send(
                VenueCancelOrder(client_order_id="x-2", orig_client_order_id="e-2", account="MM1", symbol="BTCUSDT")
            )
            desk.pump_until(lambda: desk.dropped, drop=lambda m: getattr(m, "exec_type", None) == ExecType.CANCELED)
            desk.recording.commands.clear()

            desk.engine.handle_command(
                QueryVenueOrders(command_id="q-1", operator="compliance", ts=time.time_ns(), scope=Scope.firm())
            )
            desk.pump_until(lambda: desk.of(VenueStatusComplete))

            assert [(type(c), c.client_order_id) for c in desk.recording.commands] == [
                (VenueQueryOrder, "e-1"),
                (VenueQueryOrder, "e-2"),
            ]
            statuses = {s.client_order_id: s for s in desk.of(VenueOrderStatus)}
            assert (statuses["e-1"].known, statuses["e-1"].status, statuses["e-1"].venue_order_id > 0) == (
                True,
                OrderStatus.NEW,
                True,
            )
            assert (statuses["e-2"].known, statuses["e-2"].code, statuses["e-2"].engine_status) == (
                False,
                "UNKNOWN_ORDER",
                OrderStatus.NEW,
            )
            assert desk.of(VenueStatusComplete) == [VenueStatusComplete(command_id="q-1", requested=2, answered=2)]
            assert desk.engine.oms.get("e-2").is_terminal  # the engine adopted the venue's view
        finally:
            desk.gw.stop()


def test_a_strategy_halt_over_fix_completes_once_the_venue_acknowledged_each_cancel(tmp_path):
    with VenueProcess(tmp_path) as venue:
        desk = FixDesk(venue, tmp_path / "engine")
        try:
            for i in range(3):
                desk.submit(f"a-{i}", str(59_000 - i), strategy_id="alpha")
            desk.submit("b-0", "58000", strategy_id="beta")
            desk.pump_until(lambda: all(o.status == OrderStatus.NEW for o in desk.engine.oms.working_orders()))

            desk.engine.handle_command(
                HaltTrading(
                    command_id="kill-a",
                    operator="risk",
                    ts=time.time_ns(),
                    scope=Scope.strategy("alpha"),
                    reason="drill",
                )
            )
            desk.pump_until(lambda: desk.of(HaltCompleted))

            [done] = desk.of(HaltCompleted)
            assert (done.command_id, done.orders_canceled, done.orders_closed_otherwise) == ("kill-a", 3, 0)
            assert [o.client_order_id for o in desk.engine.oms.working_orders()] == ["b-0"]
        finally:
            desk.gw.stop()
