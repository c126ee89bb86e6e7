"""The engine's FIX gateway (engine.fix.initiator.FixGateway) against the real venue process.

Orders filled, canceled, replaced, mass-canceled and queried over FIX; the venue SIGKILLed and restarted mid-session
(the gateway reconnects, sequence numbers carry on from the persistent stores, `on_reconnect` runs on the polling
thread and the status of every working order is asked and answered); the gateway itself restarted while the venue
canceled its orders (the reports reach it by resend, once); the engine's firm kill switch as one
OrderMassCancelRequest.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import msgspec
import pytest
import quickfix as fix

from engine.clock import WallClock
from engine.config import EngineConfig
from engine.core import Engine
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.fix import convert
from engine.fix.initiator import FixGateway
from engine.fix.settings import FixSessionConfig
from engine.instruments import InstrumentRegistry
from engine.protocol import (
    CommandAccepted,
    HaltTrading,
    MassCancelReport,
    Scope,
    SubmitOrder,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)
from tests.engine.fix_helpers import WAIT_S, VenueProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(240)

INSTRUMENTS = InstrumentRegistry.from_toml()


def make_gateway(port: int, var_dir, **kwargs) -> FixGateway:
    config = FixSessionConfig(
        role="initiator", sender_comp_id="ENGINE", target_comp_ids=("VENUE",), port=port, reconnect_s=1
    )
    return FixGateway(config, INSTRUMENTS, var_dir=var_dir, **kwargs)


def connected(gw: FixGateway) -> FixGateway:
    gw.start()
    if not gw.wait_connected(WAIT_S):
        gw.stop()
        raise AssertionError("the gateway did not log on")
    return gw


def order(cl_id: str, side: Side, price: int, quantity: int, order_type=OrderType.LIMIT, tif=TimeInForce.GTC):
    return VenuePlaceOrder(
        client_order_id=cl_id,
        account="MM1",
        symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        time_in_force=tif,
        price=price,
        quantity=quantity,
    )


class Inbox:
    """What the engine thread would have polled, and bounded waits on it."""

    def __init__(self, gw: FixGateway) -> None:
        self.gw = gw
        self.messages: list = []

    def wait(self, predicate) -> list:
        def done():
            self.messages.extend(self.gw.poll())
            return predicate(self.messages)

        wait_for(done)
        return self.messages

    def reports(self, cl_id: str, exec_type: ExecType) -> list:
        return [m for m in self.messages if getattr(m, "exec_type", None) == exec_type and m.client_order_id == cl_id]

    def wait_report(self, cl_id: str, exec_type: ExecType):
        self.wait(lambda _: self.reports(cl_id, exec_type))
        return self.reports(cl_id, exec_type)[0]


def test_an_order_is_filled_over_fix_against_the_background_flow(tmp_path):
    with VenueProcess(tmp_path, flow=True) as venue:
        gw = connected(make_gateway(venue.port, tmp_path / "engine"))
        try:
            inbox = Inbox(gw)

            gw.send(order("buy-1", Side.BUY, 0, 1, OrderType.MARKET, TimeInForce.IOC))
            fill = inbox.wait_report("buy-1", ExecType.TRADE)

            assert (fill.status, fill.last_quantity, fill.cum_quantity) == (OrderStatus.FILLED, 1, 1)
            assert fill.last_price > 0
            assert not fill.is_maker
        finally:
            gw.stop()


def test_cancel_replace_status_and_mass_cancel_over_fix(tmp_path):
    with VenueProcess(tmp_path) as venue:
        gw = connected(make_gateway(venue.port, tmp_path / "engine"))
        try:
            inbox = Inbox(gw)
            for i in range(3):
                gw.send(order(f"o-{i}", Side.BUY, 590_000 + i, 5))
            inbox.wait(lambda m: sum(r.exec_type == ExecType.NEW for r in m) == 3)

            gw.send(
                VenueCancelOrder(client_order_id="c-0", orig_client_order_id="o-0", account="MM1", symbol="BTCUSDT")
            )
            canceled = inbox.wait_report("c-0", ExecType.CANCELED)
            gw.send(
                VenueReplaceOrder(
                    client_order_id="o-1b",
                    orig_client_order_id="o-1",
                    account="MM1",
                    symbol="BTCUSDT",
                    price=590_005,
                    quantity=7,
                )
            )
            replaced = inbox.wait_report("o-1b", ExecType.REPLACED)
            gw.send(VenueQueryOrder(client_order_id="o-1b", account="MM1", symbol="BTCUSDT"))
            status = inbox.wait_report("o-1b", ExecType.ORDER_STATUS)
            gw.send(
                VenueCancelOrder(client_order_id="c-x", orig_client_order_id="o-0", account="MM1", symbol="BTCUSDT")
            )
            refused = inbox.wait_report("c-x", ExecType.CANCEL_REJECTED)
            gw.send(VenueMassCancel(client_order_id="kill-1", account="MM1"))
            inbox.wait(lambda m: any(isinstance(r, MassCancelReport) for r in m))
            wait_for(lambda: gw.mass_cancel_reports)
            (mass,) = [r for r in inbox.messages if isinstance(r, MassCancelReport)]

            assert (canceled.orig_client_order_id, canceled.status) == ("o-0", OrderStatus.CANCELED)
            assert (replaced.orig_client_order_id, replaced.price, replaced.quantity) == ("o-1", 590_005, 7)
            assert (status.status, status.price, status.leaves_quantity) == (OrderStatus.NEW, 590_005, 7)
            assert (refused.reason_code, refused.symbol, refused.side) == ("UNKNOWN_ORDER", "BTCUSDT", Side.BUY)
            assert (mass.client_order_id, mass.account, mass.reason_code) == ("kill-1", "MM1", "MASS_CANCEL")
            assert sorted(order_id for order_id, _ in mass.canceled) == ["o-1b", "o-2"]
            assert all(venue_order_id > 0 for _, venue_order_id in mass.canceled)
            assert inbox.reports("kill-1", ExecType.CANCELED) == []
            assert list(gw.mass_cancel_reports) == [("kill-1", 2)]
        finally:
            gw.stop()


def test_a_mass_cancel_over_a_session_with_two_accounts_is_answered_by_one_report_named_for_the_engine(tmp_path):
    with VenueProcess(tmp_path) as venue:
        gw = connected(make_gateway(venue.port, tmp_path / "engine", account="MM1"))
        try:
            inbox = Inbox(gw)
            # Another account on the same session, used first: the venue's first per-account cancel is its.
            gw.send(msgspec.structs.replace(order("x-1", Side.BUY, 590_000, 5), account="MM2"))
            gw.send(order("o-1", Side.BUY, 590_001, 5))
            gw.send(order("o-2", Side.SELL, 610_000, 5))
            inbox.wait(lambda m: sum(r.exec_type == ExecType.NEW for r in m) == 3)

            gw.send(VenueMassCancel(client_order_id="kill-2", account="MM1"))
            inbox.wait(lambda m: any(isinstance(r, MassCancelReport) for r in m))
            gw.send(order("o-3", Side.BUY, 590_000, 1))  # a later report: everything the venue sent before is in
            inbox.wait_report("o-3", ExecType.NEW)

            [mass] = [r for r in inbox.messages if isinstance(r, MassCancelReport)]
            assert (mass.client_order_id, mass.account) == ("kill-2", "MM1")
            assert sorted(order_id for order_id, _ in mass.canceled) == ["o-1", "o-2", "x-1"]
            assert list(gw.mass_cancel_reports) == [("kill-2", 3)]
            assert gw.duplicates_dropped == 0
        finally:
            gw.stop()


def _mass_report(request_id: str, canceled: tuple, *, poss_dup: bool = False):
    report = MassCancelReport(client_order_id=request_id, account="MM1", canceled=canceled, ts=1_700_000_000 * 10**9)
    msg = convert.mass_cancel_report_to_fix(report)
    if poss_dup:
        msg.getHeader().setField(fix.PossDupFlag(True))
    return msg


@pytest.fixture
def offline_gateway(tmp_path):
    """A gateway built with the engine's account and never started (a restarted one that has sent nothing yet); fed
    35=r messages as QuickFIX's thread would. Its own comp id and an explicit stop: QuickFIX registers the session id
    process-wide until the initiator is gone, and another test's gateway must be able to take ENGINE->VENUE."""
    config = FixSessionConfig(
        role="initiator", sender_comp_id="ENGINE-OFFLINE", target_comp_ids=("VENUE",), port=free_port()
    )
    gw = FixGateway(config, INSTRUMENTS, var_dir=tmp_path / "offline", account="MM1")
    yield gw
    gw.stop()


def test_a_mass_cancel_report_for_a_request_this_process_never_sent_is_named_with_the_engines_account(
    offline_gateway,
):
    offline_gateway._inbound(_mass_report("MASS-7", (("o-1", 11),)))

    [report] = offline_gateway.poll()
    assert (report.client_order_id, report.account, report.canceled) == ("MASS-7", "MM1", (("o-1", 11),))


def test_only_a_possdup_resend_of_the_same_mass_cancel_report_is_dropped(offline_gateway):
    offline_gateway._inbound(_mass_report("MASS-1", (("o-1", 11),)))
    offline_gateway._inbound(_mass_report("MASS-1", (("o-1", 11),), poss_dup=True))
    offline_gateway._inbound(_mass_report("MASS-1", (("o-2", 12),)))

    assert [r.canceled for r in offline_gateway.poll()] == [(("o-1", 11),), (("o-2", 12),)]
    assert offline_gateway.duplicates_dropped == 1


def test_a_command_sent_while_the_session_is_down_is_refused_at_once_with_a_reason(tmp_path):
    gw = make_gateway(1, tmp_path / "engine")  # never started: no session
    try:
        gw.send(order("o-1", Side.BUY, 10, 1))

        (refused,) = gw.poll()
        assert type(refused) is VenueCommandRejected
        assert (refused.code, refused.client_order_id) == ("GATEWAY_DISCONNECTED", "o-1")
        assert refused.command == "VenuePlaceOrder"
    finally:
        gw.stop()  # QuickFIX keeps the session id registered process-wide until the initiator is gone


def test_the_venue_killed_and_restarted_mid_session_resumes_the_session_and_working_orders_are_reconciled(tmp_path):
    venue = VenueProcess(tmp_path).start()
    restarted = None
    reconnects: list[str] = []
    poller = threading.current_thread().name
    gw = make_gateway(venue.port, tmp_path / "engine", on_reconnect=lambda: reconnects.append(poller))
    try:
        connected(gw)
        inbox = Inbox(gw)
        gw.send(order("w-1", Side.BUY, 590_000, 5))
        gw.send(order("w-2", Side.SELL, 610_000, 5))
        inbox.wait(lambda m: sum(getattr(r, "exec_type", None) == ExecType.NEW for r in m) == 2)
        sent_before, expected_before = gw.seq_nums()

        venue.proc.kill()  # SIGKILL: no logout, no cancel-on-disconnect, books lost
        venue.proc.wait(WAIT_S)
        wait_for(lambda: not gw.connected)
        restarted = VenueProcess(tmp_path, port=venue.port).start()
        wait_for(lambda: gw.connected)
        inbox.wait(lambda _: len(reconnects) == 2)  # first logon and the reconnection, both seen by poll()
        for cl_id in ("w-1", "w-2"):  # what the engine's on_reconnect does: ask for every working order
            gw.send(VenueQueryOrder(client_order_id=cl_id, account="MM1", symbol="BTCUSDT"))
        statuses = [inbox.wait_report(cl_id, ExecType.ORDER_STATUS) for cl_id in ("w-1", "w-2")]
        gw.send(order("w-3", Side.BUY, 590_000, 1))
        after = inbox.wait_report("w-3", ExecType.NEW)
        sent_after, expected_after = gw.seq_nums()

        assert "boot=2" in restarted.ready_line
        assert reconnects == [poller, poller]  # on the thread that polls, never on QuickFIX's
        assert sent_after > sent_before + 3  # no reset to 1: our logon and three orders followed the old numbers
        assert expected_after > expected_before
        assert [(s.status, s.reason_code) for s in statuses] == [(OrderStatus.REJECTED, "UNKNOWN_ORDER")] * 2
        assert after.venue_order_id != 0
        exec_ids = [m.exec_id for m in inbox.messages if hasattr(m, "exec_id")]
        assert len(exec_ids) == len(set(exec_ids))  # nothing twice, across both venue lives
    finally:
        gw.stop()
        venue.kill()
        if restarted is not None:
            restarted.kill()


def test_reports_sent_while_the_gateway_was_away_arrive_by_resend_after_it_restarts_and_only_once(tmp_path):
    with VenueProcess(tmp_path) as venue:
        first = connected(make_gateway(venue.port, tmp_path / "engine"))
        try:
            inbox = Inbox(first)
            first.send(order("r-1", Side.BUY, 590_000, 5))
            first.send(order("r-2", Side.BUY, 590_001, 5))
            inbox.wait(lambda m: sum(r.exec_type == ExecType.NEW for r in m) == 2)
        finally:
            first.stop()  # logout: the venue cancels both orders while we are away
        second = connected(make_gateway(venue.port, tmp_path / "engine"))  # same store: resumes the session
        try:
            later = Inbox(second)

            later.wait(lambda m: sum(r.exec_type == ExecType.CANCELED for r in m) == 2)
            second.send(order("r-3", Side.BUY, 590_000, 1))
            later.wait_report("r-3", ExecType.NEW)

            canceled = [r for r in later.messages if r.exec_type == ExecType.CANCELED]
            assert sorted(r.orig_client_order_id for r in canceled) == ["r-1", "r-2"]
            assert all(r.reason_code == "MASS_CANCEL" for r in canceled)
            assert len({r.exec_id for r in later.messages}) == len(later.messages)
        finally:
            second.stop()


def test_the_engine_reconciles_its_working_orders_over_fix_after_the_venue_is_killed_and_restarted(tmp_path):
    venue = VenueProcess(tmp_path).start()
    restarted = None
    holder: dict = {}

    def ask_status_of_working_orders() -> None:  # what the live loop wires to on_reconnect
        engine = holder["engine"]
        for working in engine.oms.working_orders():
            holder["gateway"].send(engine.oms.query_message(working.client_order_id))

    gw = holder["gateway"] = make_gateway(venue.port, tmp_path / "engine", on_reconnect=ask_status_of_working_orders)
    engine = holder["engine"] = Engine(EngineConfig(account="MM1"), WallClock(), INSTRUMENTS, gw)

    def pump_until(condition) -> None:
        def step():
            for msg in gw.poll():
                engine.handle_venue_message(msg)
            return condition()

        wait_for(step)

    try:
        connected(gw)
        pump_until(lambda: True)
        reply = engine.handle_command(
            SubmitOrder(
                command_id="k1",
                operator="bob",
                ts=time.time_ns(),
                strategy_id="manual",
                client_order_id="e-1",
                symbol="BTCUSDT",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=Decimal("59000.0"),
                quantity=Decimal("0.005"),
            )
        )
        pump_until(lambda: engine.oms.get("e-1").status == OrderStatus.NEW)
        working_before = [o.client_order_id for o in engine.oms.working_orders()]

        venue.proc.kill()
        venue.proc.wait(WAIT_S)
        wait_for(lambda: not gw.connected)
        restarted = VenueProcess(tmp_path, port=venue.port).start()
        pump_until(lambda: not engine.oms.working_orders())

        assert type(reply) is CommandAccepted
        assert working_before == ["e-1"]
        assert engine.oms.get("e-1").is_terminal  # the venue no longer knows it: closed by reconciliation
    finally:
        gw.stop()
        venue.kill()
        if restarted is not None:
            restarted.kill()


class RecordingGateway:
    """The FIX gateway as the engine sees it, keeping what the engine sends."""

    def __init__(self, gw: FixGateway) -> None:
        self.gw = gw
        self.supports_mass_cancel = gw.supports_mass_cancel
        self.commands: list = []

    def send(self, command) -> None:
        self.commands.append(command)
        self.gw.send(command)


def test_a_firm_halt_over_fix_sends_one_order_mass_cancel_request_and_every_working_order_ends_canceled(tmp_path):
    with VenueProcess(tmp_path) as venue:
        gw = connected(make_gateway(venue.port, tmp_path / "engine"))
        recording = RecordingGateway(gw)
        engine = Engine(EngineConfig(account="MM1"), WallClock(), INSTRUMENTS, recording)

        def pump_until(condition) -> None:
            def step():
                for msg in gw.poll():
                    engine.handle_venue_message(msg)
                return condition()

            wait_for(step)

        try:
            for i in range(6):
                engine.handle_command(
                    SubmitOrder(
                        command_id=f"k{i}",
                        operator="bob",
                        ts=time.time_ns(),
                        strategy_id="alpha" if i % 2 else "beta",
                        client_order_id=f"e-{i}",
                        symbol="BTCUSDT",
                        side=Side.BUY,
                        order_type=OrderType.LIMIT,
                        time_in_force=TimeInForce.GTC,
                        price=Decimal(59_000 - i),
                        quantity=Decimal("0.005"),
                    )
                )
            pump_until(lambda: all(o.status == OrderStatus.NEW for o in engine.oms.working_orders()))
            recording.commands.clear()

            reply = engine.handle_command(
                HaltTrading(command_id="kill", operator="bob", ts=time.time_ns(), scope=Scope.firm(), reason="drill")
            )
            pump_until(lambda: not engine.oms.working_orders() and gw.mass_cancel_reports)

            [mass] = recording.commands
            assert type(reply) is CommandAccepted
            assert (type(mass), mass.symbol) == (VenueMassCancel, "")
            assert list(gw.mass_cancel_reports) == [(mass.client_order_id, 6)]
            assert [engine.oms.get(f"e-{i}").status for i in range(6)] == [OrderStatus.CANCELED] * 6
            assert engine.oms.anomalies == {}
        finally:
            gw.stop()


def test_while_the_venue_stays_away_the_gateway_backs_off_and_still_logs_on_when_it_comes_back(tmp_path):
    port = free_port()
    gw = make_gateway(port, tmp_path / "engine")
    venue = None
    try:
        gw.start()  # nothing listens yet

        wait_for(lambda: gw.backoff_pauses >= 1)
        venue = VenueProcess(tmp_path, port=port).start()
        wait_for(lambda: gw.connected, timeout=WAIT_S * 2)

        assert gw.connected
        assert gw.backoff_pauses >= 1
    finally:
        gw.stop()
        if venue is not None:
            venue.kill()
