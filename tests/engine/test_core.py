"""The engine core: one reply per command, the order gate, the kill switch, strategies, events, state hash."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
import recovery_session as rs

from engine.clock import FakeClock
from engine.config import EngineConfig, ScopeTriggers, StrategyConfig
from engine.core import Engine, replay_events_from_journal
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce, TradingState
from engine.gateway import InProcessGateway, NullGateway
from engine.journal import FsyncPolicy, Journal, RecordKind, read_journal
from engine.protocol import (
    BookDeltas,
    BookSnapshot,
    CancelAllOrders,
    CancelOrder,
    Codec,
    CommandAccepted,
    CommandRejected,
    ExecutionReport,
    HaltCompleted,
    HaltTrading,
    Heartbeat,
    MassCancelReport,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    PositionChanged,
    QueryVenueOrders,
    ReduceTrading,
    ReplaceOrder,
    ReplayBatch,
    RequestReplay,
    RequestStateSnapshot,
    ResumeTrading,
    RiskLimits,
    RollbackStrategyParams,
    Scope,
    SetLimits,
    SetTriggers,
    StartStrategy,
    StateSnapshot,
    StopStrategy,
    StrategyParamsChanged,
    SubmitOrder,
    TradingStateChanged,
    TriggerSettings,
    UpdateStrategyParams,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueRequestSnapshot,
)
from engine.trading_state import TradingStateError, TriggerConfig
from engine.venue import Venue

SYMBOL = rs.SYMBOL
START = rs.START_NS


class RecordingGateway(InProcessGateway):
    """The in-process gateway over a real `Venue`, keeping every command the engine sends."""

    __slots__ = ("commands",)

    def __init__(self, venue: Venue, account: str, *, supports_mass_cancel: bool = True) -> None:
        super().__init__(venue, account, supports_mass_cancel=supports_mass_cancel)
        self.commands: list = []

    def send(self, command) -> None:
        self.commands.append(command)
        super().send(command)


class Harness:
    def __init__(
        self, tmp_path=None, *, ring: int = 100_000, autostart: bool = False, supports_mass_cancel: bool = True
    ) -> None:
        self.clock = FakeClock(START)
        self.venue = Venue([SYMBOL], clock=self.clock.now)
        self.gateway = RecordingGateway(self.venue, "MM1", supports_mass_cancel=supports_mass_cancel)
        self.journal = None
        if tmp_path is not None:
            self.journal = Journal(tmp_path / "j", Codec(rs.INSTRUMENTS), policy=FsyncPolicy.NEVER)
        self.config = EngineConfig(
            account="MM1",
            strategies=(StrategyConfig(strategy_id="as1", symbol=SYMBOL, params=rs.AS_PARAMS, autostart=autostart),),
            replay_ring_size=ring,
        )
        self.engine = Engine(self.config, self.clock, rs.INSTRUMENTS, self.gateway, self.journal)
        self.n = 0

    def cmd(self, kind, **fields):
        self.n += 1
        self.clock.advance(1_000)
        return self.engine.handle_command(kind(command_id=f"k{self.n}", operator="bob", ts=self.clock.now(), **fields))

    def pump(self) -> None:
        inbox = self.gateway.inbox
        while inbox:
            rs.deliver(self.engine, inbox.popleft())

    def liquidity(self, side: Side, price: int, lots: int, cid: str) -> None:
        """Another participant's resting order; its market data reaches the engine."""
        msgs = self.venue.handle(
            VenuePlaceOrder(
                client_order_id=cid,
                account="LP",
                symbol=SYMBOL,
                side=side,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=price,
                quantity=lots,
            )
        )
        self.gateway.deliver(msgs)
        self.pump()

    def market(self) -> None:
        self.liquidity(Side.BUY, 9_990, 5, "lp-b")
        self.liquidity(Side.SELL, 10_010, 5, "lp-a")

    def events(self, kind=None) -> list:
        out = [e.event for e in self.engine.outbox]
        return out if kind is None else [e for e in out if type(e) is kind]


def _submit(h: Harness, cid: str, side: Side, price: str, qty: str, *, strategy_id: str = "manual"):
    return h.cmd(
        SubmitOrder,
        strategy_id=strategy_id,
        client_order_id=cid,
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal(price),
        quantity=Decimal(qty),
    )


COMMANDS = [
    (SetLimits, {"scope": Scope.firm(), "limits": RiskLimits(max_open_orders=5)}, CommandAccepted),
    (HaltTrading, {"scope": Scope.firm(), "reason": "r"}, CommandAccepted),
    (ReduceTrading, {"scope": Scope.strategy("as1"), "reason": "r"}, CommandAccepted),
    (ResumeTrading, {"scope": Scope.firm(), "reason": "r"}, CommandAccepted),
    (StartStrategy, {"strategy_id": "as1"}, CommandAccepted),
    (StartStrategy, {"strategy_id": "nope"}, CommandRejected),
    (StopStrategy, {"strategy_id": "as1"}, CommandRejected),  # not running
    (UpdateStrategyParams, {"strategy_id": "as1", "params": {"gamma": Decimal("0.2")}}, CommandAccepted),
    (UpdateStrategyParams, {"strategy_id": "as1", "params": {"gamma": Decimal("-1")}}, CommandRejected),
    (RollbackStrategyParams, {"strategy_id": "as1", "version": 1}, CommandAccepted),
    (RollbackStrategyParams, {"strategy_id": "as1", "version": 9}, CommandRejected),
    (Heartbeat, {}, CommandAccepted),
    (CancelAllOrders, {"scope": Scope.firm()}, CommandAccepted),
    (CancelOrder, {"client_order_id": "missing", "symbol": SYMBOL}, CommandRejected),
    (
        ReplaceOrder,
        {
            "client_order_id": "r2",
            "orig_client_order_id": "missing",
            "symbol": SYMBOL,
            "price": Decimal("1"),
            "quantity": Decimal("0.001"),
        },
        CommandRejected,
    ),
    (RequestStateSnapshot, {}, StateSnapshot),
    (RequestReplay, {"from_seq": 1}, ReplayBatch),
    (QueryVenueOrders, {"scope": Scope.firm()}, CommandAccepted),
    (SetTriggers, {"scope": Scope.firm(), "triggers": TriggerSettings(heartbeat_timeout_ns=10**9)}, CommandAccepted),
    (
        SetTriggers,
        {"scope": Scope.strategy("as1"), "triggers": TriggerSettings(heartbeat_timeout_ns=1)},
        CommandRejected,
    ),
]


@pytest.mark.parametrize(("kind", "fields", "reply_type"), COMMANDS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_console_command_gets_exactly_one_reply_of_the_expected_kind(kind, fields, reply_type):
    h = Harness()

    reply = h.cmd(kind, **fields)

    assert type(reply) is reply_type
    assert reply.command_id == f"k{h.n}"


def test_the_operators_reason_for_a_parameter_change_and_a_rollback_reaches_the_event_and_the_history():
    h = Harness()

    h.cmd(UpdateStrategyParams, strategy_id="as1", params={"gamma": Decimal("0.2")}, reason="tighter in the open")
    h.cmd(RollbackStrategyParams, strategy_id="as1", version=1, reason="spread too wide")

    changes = h.events(StrategyParamsChanged)
    assert [(e.version, e.reason, e.rolled_back_to) for e in changes] == [
        (2, "tighter in the open", 0),
        (3, "spread too wide", 1),
    ]
    history = h.engine._strategy("as1").strategy.param_set.history
    assert [entry.reason for entry in history[-2:]] == ["tighter in the open", "spread too wide"]


def test_a_rollback_based_on_a_version_no_longer_in_force_is_refused_and_changes_nothing():
    h = Harness()
    h.cmd(UpdateStrategyParams, strategy_id="as1", params={"gamma": Decimal("0.2")})  # version 2
    h.cmd(UpdateStrategyParams, strategy_id="as1", params={"gamma": Decimal("0.3")})  # version 3, by someone else

    stale = h.cmd(RollbackStrategyParams, strategy_id="as1", version=1, base_version=2)
    current = h.cmd(RollbackStrategyParams, strategy_id="as1", version=1, base_version=3)

    assert type(stale) is CommandRejected
    assert stale.code == "STRATEGY_PARAM_VERSION_CONFLICT"
    assert type(current) is CommandAccepted
    assert current.params_version == 4
    assert [e.version for e in h.events(StrategyParamsChanged)] == [2, 3, 4]


def test_a_repeated_command_id_returns_the_first_reply_and_changes_nothing(tmp_path):
    h = Harness(tmp_path)
    first = h.engine.handle_command(
        SetLimits(command_id="same", operator="bob", ts=1, scope=Scope.firm(), limits=RiskLimits(max_open_orders=3))
    )
    h.engine.drain()
    before = (h.engine.state_hash(), h.journal.last_seq)

    again = h.engine.handle_command(
        SetLimits(command_id="same", operator="bob", ts=2, scope=Scope.firm(), limits=RiskLimits(max_open_orders=9))
    )

    assert again is first
    assert (h.engine.state_hash(), h.journal.last_seq) == before
    assert h.engine.outbox == []


def test_a_manual_order_the_risk_gate_refuses_is_a_denied_event_and_leaves_no_order_and_sends_nothing():
    h = Harness()
    h.cmd(SetLimits, scope=Scope.firm(), limits=RiskLimits(max_order_quantity=Decimal("0.005")))

    reply = _submit(h, "m1", Side.BUY, "99.00", "0.006")

    assert type(reply) is CommandRejected
    assert reply.code == "RISK_MAX_ORDER_QTY"
    [denied] = h.events(OrderDenied)
    assert (denied.client_order_id, denied.code, denied.command_id) == ("m1", "RISK_MAX_ORDER_QTY", reply.command_id)
    assert h.engine.oms.get("m1") is None
    assert h.gateway.sent == 0


def test_a_manual_order_at_the_limit_is_registered_sent_and_acknowledged():
    h = Harness()
    h.cmd(SetLimits, scope=Scope.firm(), limits=RiskLimits(max_order_quantity=Decimal("0.005")))

    reply = _submit(h, "m1", Side.BUY, "99.00", "0.005")
    h.pump()

    assert type(reply) is CommandAccepted
    assert reply.client_order_id == "m1"
    assert [type(e) for e in h.events() if type(e) in (OrderSubmitted, OrderAccepted)] == [
        OrderSubmitted,
        OrderAccepted,
    ]
    assert h.engine.oms.get("m1").status == OrderStatus.NEW
    assert h.venue.open_order("MM1", "m1") is not None


def test_halting_a_strategy_cancels_its_working_orders_at_once_and_leaves_others():
    h = Harness()
    _submit(h, "a1", Side.BUY, "99.00", "0.001", strategy_id="alpha")
    _submit(h, "a2", Side.SELL, "101.00", "0.001", strategy_id="alpha")
    _submit(h, "b1", Side.BUY, "98.00", "0.001", strategy_id="beta")
    h.pump()
    h.engine.drain()

    reply = h.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")
    h.pump()

    assert reply.trading_state == TradingState.HALTED
    assert type(h.events()[0]) is TradingStateChanged
    assert sorted(e.client_order_id for e in h.events(OrderCanceled)) == ["a1", "a2"]
    assert [o.client_order_id for o in h.venue.open_orders("MM1")] == ["b1"]


def _working_orders_of_two_strategies(h: Harness) -> None:
    _submit(h, "a1", Side.BUY, "99.00", "0.001", strategy_id="alpha")
    _submit(h, "a2", Side.SELL, "101.00", "0.001", strategy_id="alpha")
    _submit(h, "b1", Side.BUY, "98.00", "0.001", strategy_id="beta")
    h.pump()
    h.engine.drain()
    h.gateway.commands.clear()


def test_a_firm_halt_cancels_every_working_order_with_one_mass_cancel_counted_once_in_the_message_window():
    h = Harness()
    _working_orders_of_two_strategies(h)
    before = h.engine.risk.snapshot()

    h.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    h.pump()

    [mass] = h.gateway.commands
    assert (type(mass), mass.account, mass.symbol) == (VenueMassCancel, "MM1", "")
    assert sorted(e.client_order_id for e in h.events(OrderCanceled)) == ["a1", "a2", "b1"]
    assert h.venue.open_orders("MM1") == [] and h.engine.oms.working_orders() == []
    assert len(h.engine.risk.snapshot()["firm_windows"][1]) == len(before["firm_windows"][1]) + 1
    assert h.engine.oms.anomalies == {}


def test_a_firm_halt_is_closed_by_the_venues_one_mass_cancel_report_and_completes_with_every_order_counted():
    h = Harness()
    _working_orders_of_two_strategies(h)

    h.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    answers = [m for m in h.gateway.inbox if type(m) is not BookDeltas]
    h.pump()

    [report] = answers
    assert type(report) is MassCancelReport
    assert sorted(order_id for order_id, _ in report.canceled) == ["a1", "a2", "b1"]
    [done] = h.events(HaltCompleted)
    assert (done.scope, done.orders_canceled) == (Scope.firm(), 3)


def test_an_instrument_halt_mass_cancels_only_that_symbol():
    h = Harness()
    _working_orders_of_two_strategies(h)

    h.cmd(HaltTrading, scope=Scope.instrument(SYMBOL), reason="kill")
    h.pump()

    assert [(type(c), c.symbol) for c in h.gateway.commands] == [(VenueMassCancel, SYMBOL)]
    assert h.venue.open_orders("MM1") == []


def test_a_strategy_halt_never_mass_cancels_since_other_strategies_share_the_account():
    h = Harness()
    _working_orders_of_two_strategies(h)

    h.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")
    h.pump()

    assert [(type(c), c.orig_client_order_id) for c in h.gateway.commands] == [
        (VenueCancelOrder, "a1"),
        (VenueCancelOrder, "a2"),
    ]
    assert [o.client_order_id for o in h.venue.open_orders("MM1")] == ["b1"]


def test_a_gateway_without_mass_cancel_gets_one_cancel_per_order_on_a_firm_halt():
    h = Harness(supports_mass_cancel=False)
    _working_orders_of_two_strategies(h)

    h.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    h.pump()

    assert [type(c) for c in h.gateway.commands] == [VenueCancelOrder] * 3
    assert h.venue.open_orders("MM1") == []


def test_an_order_not_yet_acknowledged_at_the_halt_gets_its_own_cancel_ahead_of_the_mass_cancel():
    h = Harness()
    _working_orders_of_two_strategies(h)
    _submit(h, "a3", Side.BUY, "97.00", "0.001", strategy_id="alpha")  # its NEW is still in the inbox
    h.gateway.commands.clear()

    h.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    h.pump()

    assert [(type(c), getattr(c, "orig_client_order_id", "")) for c in h.gateway.commands] == [
        (VenueCancelOrder, "a3"),
        (VenueMassCancel, ""),
    ]
    assert sorted(e.client_order_id for e in h.events(OrderCanceled)) == ["a1", "a2", "a3", "b1"]
    assert h.engine.oms.working_orders() == [] and h.engine.oms.anomalies == {}


def test_an_engine_that_halted_with_a_mass_cancel_recovers_and_replays_its_events_identically(tmp_path):
    h = Harness(tmp_path)
    _working_orders_of_two_strategies(h)
    h.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    h.pump()
    h.cmd(ResumeTrading, scope=Scope.firm(), reason="checked")
    _submit(h, "a4", Side.BUY, "99.00", "0.001", strategy_id="alpha")
    h.pump()
    published = h.engine.drain()

    recovered = Engine.recover(
        h.config, FakeClock(START), rs.INSTRUMENTS, NullGateway(supports_mass_cancel=True), tmp_path / "j"
    )
    from_seq = published[0].seq  # the halt's TradingStateChanged
    regenerated = replay_events_from_journal(
        h.config, rs.INSTRUMENTS, tmp_path / "j", from_seq, supports_mass_cancel=True
    )

    assert recovered.state_hash() == h.engine.state_hash()
    assert regenerated == published


def test_a_halted_scope_denies_new_orders_but_allows_cancels_and_latches_until_resumed():
    h = Harness()
    _submit(h, "b1", Side.BUY, "98.00", "0.001", strategy_id="beta")
    h.pump()
    h.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")

    denied = _submit(h, "a3", Side.BUY, "99.00", "0.001", strategy_id="alpha")
    canceled = h.cmd(CancelOrder, client_order_id="b1", symbol=SYMBOL)
    h.cmd(Heartbeat)
    still = h.engine.trading_states.state(Scope.strategy("alpha"))
    h.cmd(ResumeTrading, scope=Scope.strategy("alpha"), reason="checked")
    allowed = _submit(h, "a4", Side.BUY, "99.00", "0.001", strategy_id="alpha")

    assert (type(denied), denied.code) == (CommandRejected, "STATE_HALTED")
    assert type(canceled) is CommandAccepted
    assert still == TradingState.HALTED
    assert type(allowed) is CommandAccepted


def test_a_running_strategy_quotes_both_sides_on_a_book_update_through_the_gate():
    h = Harness(autostart=True)

    h.market()

    submitted = h.events(OrderSubmitted)
    assert sorted(e.side for e in submitted) == [Side.SELL, Side.BUY]
    assert all(e.strategy_id == "as1" for e in submitted)
    bid = next(e for e in submitted if e.side == Side.BUY)
    ask = next(e for e in submitted if e.side == Side.SELL)
    assert 9_990 <= bid.price < ask.price <= 10_010
    assert len(h.venue.open_orders("MM1")) == 2


def test_a_fill_moves_the_position_and_the_strategy_requotes_around_its_inventory():
    h = Harness(autostart=True)
    h.market()
    ask = next(o for o in h.venue.open_orders("MM1") if o.side == Side.SELL)
    h.engine.drain()

    h.liquidity(Side.BUY, ask.price, 2, "taker")  # lifts our ask

    fills = h.events(OrderFilled)
    assert [(f.side, f.last_quantity) for f in fills] == [(Side.SELL, 2)]
    [position] = h.events(PositionChanged)
    assert position.quantity == -2
    assert h.engine.portfolio.position("as1", SYMBOL) == -2
    assert h.engine.strategy("as1").position == -2


def test_event_sequence_numbers_are_contiguous_from_one_across_inputs():
    h = Harness(autostart=True)
    h.market()
    _submit(h, "m1", Side.BUY, "99.00", "0.001")
    h.cmd(HaltTrading, scope=Scope.firm(), reason="r")
    h.pump()

    seqs = [e.seq for e in h.engine.drain()]

    assert seqs == list(range(1, len(seqs) + 1))
    assert h.engine.seq == len(seqs)


def test_every_input_is_in_the_journal_in_order_and_read_only_commands_are_not(tmp_path):
    h = Harness(tmp_path)
    h.market()
    h.cmd(Heartbeat)
    h.cmd(RequestStateSnapshot)
    h.engine.on_timer(h.clock.now() + 5)

    kinds = [r.kind for r in read_journal(tmp_path / "j", Codec(rs.INSTRUMENTS))]

    assert kinds == [RecordKind.START, RecordKind.MARKET_DATA, RecordKind.MARKET_DATA, RecordKind.COMMAND, 4]
    assert h.engine.journal_seq == 5


def test_equal_inputs_give_equal_state_hashes_and_a_change_changes_it():
    a, b = Harness(autostart=True), Harness(autostart=True)
    for h in (a, b):
        h.market()

    same = a.engine.state_hash() == b.engine.state_hash()
    a.cmd(SetLimits, scope=Scope.firm(), limits=RiskLimits(max_open_orders=7))

    assert same
    assert a.engine.state_hash() != b.engine.state_hash()


def test_a_state_snapshot_lists_working_orders_limits_and_strategies_at_the_current_seq():
    h = Harness()
    h.cmd(SetLimits, scope=Scope.firm(), limits=RiskLimits(max_open_orders=7))
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.pump()

    snap = h.cmd(RequestStateSnapshot)

    assert snap.seq == h.engine.seq
    assert [o.client_order_id for o in snap.orders] == ["m1"]
    assert snap.limits[0].limits.max_open_orders == 7
    assert [s.strategy_id for s in snap.strategies] == ["as1"]


def test_request_replay_answers_from_the_ring_and_refuses_what_fell_out_of_it():
    h = Harness(ring=3)
    h.market()
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.pump()
    last = h.engine.seq

    recent = h.cmd(RequestReplay, from_seq=last - 1)
    too_old = h.cmd(RequestReplay, from_seq=1)

    assert [e.seq for e in recent.events] == [last - 1, last]
    assert (type(too_old), too_old.code) == (CommandRejected, "JOURNAL_REPLAY_UNAVAILABLE")


def test_events_older_than_the_ring_can_be_regenerated_from_the_journal(tmp_path):
    h = Harness(tmp_path, autostart=True)
    h.market()
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.pump()
    published = h.engine.drain()

    regenerated = replay_events_from_journal(h.config, rs.INSTRUMENTS, tmp_path / "j", 2)

    assert regenerated == [e for e in published if e.seq >= 2]


def test_a_market_data_gap_asks_the_venue_for_a_snapshot_and_no_quote_is_made_off_the_stale_book():
    h = Harness(autostart=True)
    h.market()
    h.engine.drain()
    lost, later = (
        next(m for m in h.venue.handle(_lp_order(side, price, cid)) if type(m) is BookDeltas)
        for side, price, cid in ((Side.BUY, 9_995, "lp-x"), (Side.SELL, 10_005, "lp-y"))
    )

    h.engine.handle_market_data(later)  # `lost` never arrives: a gap
    quotes_while_stale = h.events(OrderSubmitted)
    request = h.gateway.inbox[-1]
    h.pump()

    assert lost.seq + 1 == later.seq
    assert quotes_while_stale == []
    assert type(request) is BookSnapshot
    book = h.engine.book(SYMBOL)
    assert (book.size_at(Side.BUY, 9_995), book.size_at(Side.SELL, 10_005)) == (3, 3)


def _lp_order(side: Side, price: int, cid: str) -> VenuePlaceOrder:
    return VenuePlaceOrder(
        client_order_id=cid,
        account="LP",
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=price,
        quantity=3,
    )


def test_a_timer_tick_publishes_pnl_per_strategy_and_firm_and_utilisation_and_a_heartbeat_once_per_interval():
    h = Harness()

    h.engine.on_timer(START + 2_000_000_000)
    first = [type(e).__name__ for e in h.events()]
    h.engine.drain()
    h.engine.on_timer(START + 2_500_000_000)
    second = [type(e).__name__ for e in h.events()]

    assert first == ["PnlUpdated", "PnlUpdated", "RiskUtilisation", "EngineHeartbeat"]
    assert second == ["PnlUpdated", "PnlUpdated"]


def _fill_one_bid_lot(h: Harness) -> None:
    bid = next(o for o in h.venue.open_orders("MM1") if o.side == Side.BUY)
    h.liquidity(Side.SELL, bid.price, 1, "taker")  # someone sells 1 lot into our bid


@pytest.mark.parametrize(("own_in_book", "chases"), [(True, False), (False, True)])
def test_a_strategy_on_a_venue_feed_is_told_its_own_orders_so_a_fill_does_not_make_it_chase_them(own_in_book, chases):
    h = Harness(autostart=True)
    h.engine._own_in_book = own_in_book  # what EngineConfig.market_data_includes_own_orders sets
    # A 60 s horizon: one lot of inventory skews the quotes by a tick or two, enough to show a chase.
    params = {"gamma": Decimal("0.01"), "horizon_mode": "FIXED", "horizon_s": Decimal(60)}
    h.cmd(UpdateStrategyParams, strategy_id="as1", params=params)
    h.market()  # the market: 9990 / 10010, mid 10000

    _fill_one_bid_lot(h)
    for i in range(3):  # more book updates from others, away from the touch
        h.liquidity(Side.BUY, 9_980 - i, 1, f"far-{i}")

    mid = h.engine.strategy("as1")._mid
    assert h.engine.portfolio.position("as1", SYMBOL) == 1
    # Told its own orders, the strategy sees the market's mid; not told, its skewed ask became "the market's" best
    # ask, which lowered the mid, which lowered the ask... (8.5 ticks of drift here).
    assert (mid != 10_000.0) is chases
    if not chases:
        asks = [o.price for o in h.venue.open_orders("MM1") if o.side == Side.SELL]
        assert asks == [10_001]


def test_the_market_data_source_says_whether_the_book_carries_our_orders():
    assert EngineConfig().market_data_includes_own_orders is True
    assert Harness().engine._own_in_book is True
    assert (
        Engine(EngineConfig(market_data_includes_own_orders=False), FakeClock(START), rs.INSTRUMENTS, None)._own_in_book
        is False
    )


def test_a_reducing_strategy_only_quotes_the_side_that_reduces_and_draws_no_denials():
    h = Harness(autostart=True)
    h.market()
    h.cmd(ReduceTrading, scope=Scope.strategy("as1"), reason="inventory")
    h.engine.drain()

    _fill_one_bid_lot(h)  # long 1 lot: only selling at most 1 lot reduces it
    for i in range(5):
        h.liquidity(Side.BUY, 9_991 + i, 1, f"up-{i}")  # the market moves: the strategy requotes each time
    h.pump()

    assert h.events(OrderDenied) == []
    resting = [(o.side, o.quantity - o.cum_quantity) for o in h.venue.open_orders("MM1")]
    assert resting == [(Side.SELL, 1)]


def test_a_reducing_scope_with_a_flat_position_quotes_nothing_and_cancels_what_rests():
    h = Harness(autostart=True)
    h.market()
    h.engine.drain()

    h.cmd(ReduceTrading, scope=Scope.instrument(SYMBOL), reason="flat it")
    h.liquidity(Side.BUY, 9_995, 1, "move")
    h.pump()

    assert h.events(OrderDenied) == []
    assert h.venue.open_orders("MM1") == []


def _report(cid: str, exec_type, status, *, n: int, cum: int = 0, last: int = 0, reason: str = "", orig: str = ""):
    return ExecutionReport(
        exec_id=f"x{n}",
        client_order_id=cid,
        orig_client_order_id=orig,
        venue_order_id=7,
        account="MM1",
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        exec_type=exec_type,
        status=status,
        price=9_900,
        quantity=2,
        last_price=9_900 if last else 0,
        last_quantity=last,
        leaves_quantity=2 - cum,
        cum_quantity=cum,
        reason_code=reason,
        ts=START,
    )


def test_a_cancel_refused_as_unknown_for_an_order_we_hold_live_queries_it_and_books_the_fill_we_missed():
    h = Harness()
    h.gateway = NullGateway()
    h.engine.gateway = h.gateway
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.engine.handle_execution_report(_report("m1", ExecType.NEW, OrderStatus.NEW, n=1))
    h.cmd(CancelOrder, client_order_id="m1", symbol=SYMBOL)
    cancel = h.gateway.last
    h.engine.drain()

    # The venue filled the order and the report was lost; the cancel finds nothing.
    h.engine.handle_execution_report(
        _report(
            cancel.client_order_id,
            ExecType.CANCEL_REJECTED,
            OrderStatus.REJECTED,
            n=2,
            reason="UNKNOWN_ORDER",
            orig="m1",
        )
    )
    query = h.gateway.last
    h.engine.handle_execution_report(_report("m1", ExecType.ORDER_STATUS, OrderStatus.FILLED, n=3, cum=2, last=2))

    assert (type(query), query.client_order_id) == (VenueQueryOrder, "m1")
    assert [(f.client_order_id, f.last_quantity) for f in h.events(OrderFilled)] == [("m1", 2)]
    assert h.engine.portfolio.position("manual", SYMBOL) == 2
    assert h.engine.oms.get("m1").status == OrderStatus.FILLED


def test_a_cancel_refused_for_another_reason_sends_no_query():
    h = Harness()
    h.gateway = NullGateway()
    h.engine.gateway = h.gateway
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.engine.handle_execution_report(_report("m1", ExecType.NEW, OrderStatus.NEW, n=1))
    h.cmd(CancelOrder, client_order_id="m1", symbol=SYMBOL)
    cancel = h.gateway.last
    sent = h.gateway.sent

    h.engine.handle_execution_report(
        _report(cancel.client_order_id, ExecType.CANCEL_REJECTED, OrderStatus.NEW, n=2, reason="TOO_LATE", orig="m1")
    )

    assert h.gateway.sent == sent


def test_a_refused_status_query_is_not_answered_with_another_query():
    h = Harness()
    h.gateway = NullGateway()
    h.engine.gateway = h.gateway
    _submit(h, "m1", Side.BUY, "99.00", "0.002")
    h.engine.handle_execution_report(_report("m1", ExecType.NEW, OrderStatus.NEW, n=1))
    sent = h.gateway.sent

    h.engine.handle_venue_message(
        VenueCommandRejected(command="VenueQueryOrder", code="SESSION_DOWN", symbol=SYMBOL, client_order_id="m1")
    )

    assert h.gateway.sent == sent
    assert h.engine.state_view()["venue_rejects"] == {"SESSION_DOWN": 1}


def test_cancels_count_against_the_strategy_and_symbol_message_windows_as_well_as_the_firm():
    h = Harness()
    _submit(h, "m1", Side.BUY, "99.00", "0.002", strategy_id="alpha")
    h.pump()
    before = h.engine.risk.snapshot()

    h.cmd(CancelOrder, client_order_id="m1", symbol=SYMBOL)

    after = h.engine.risk.snapshot()
    assert len(after["firm_windows"][1]) == len(before["firm_windows"][1]) + 1
    assert [name for name, w in after["strategy_windows"] if w[1]] == ["alpha"]
    assert [name for name, w in after["symbol_windows"] if w[1]] == [SYMBOL]


def test_trading_state_triggers_come_from_the_engine_config_at_start_up():
    config = EngineConfig(
        triggers=(
            ScopeTriggers(scope=Scope.firm(), triggers=TriggerConfig(heartbeat_timeout_ns=5_000_000_000)),
            ScopeTriggers(scope=Scope.strategy("as1"), triggers=TriggerConfig(daily_loss=Decimal(100))),
        )
    )

    engine = Engine(config, FakeClock(START), rs.INSTRUMENTS, NullGateway())
    engine.on_timer(START + 6_000_000_000)  # no console heartbeat for 6 s

    assert engine.trading_states.triggers(Scope.strategy("as1")).daily_loss == Decimal(100)
    assert engine.trading_states.state(Scope.firm()) == TradingState.HALTED


def test_a_bad_trigger_in_the_engine_config_fails_at_start_up():
    config = EngineConfig(
        triggers=(
            ScopeTriggers(scope=Scope.strategy("as1"), triggers=TriggerConfig(heartbeat_timeout_ns=5_000_000_000)),
        )
    )

    with pytest.raises(TradingStateError):
        Engine(config, FakeClock(START), rs.INSTRUMENTS, NullGateway())


def test_a_venue_command_rejection_is_journaled_counted_and_never_reaches_a_book(tmp_path):
    h = Harness(tmp_path)
    h.market()
    book_before = h.engine.book(SYMBOL).depth()
    [rejection] = h.venue.handle(VenueRequestSnapshot(symbol="NOPE"))

    h.engine.handle_venue_message(rejection)

    assert type(rejection) is VenueCommandRejected
    assert h.engine.book(SYMBOL).depth() == book_before
    assert h.engine.state_view()["venue_rejects"] == {"UNKNOWN_SYMBOL": 1}
    assert [r.kind for r in read_journal(tmp_path / "j", Codec(rs.INSTRUMENTS))][-1] == RecordKind.VENUE_REJECT
    recovered = Engine.recover(h.config, FakeClock(START), rs.INSTRUMENTS, NullGateway(), tmp_path / "j")
    assert recovered.state_hash() == h.engine.state_hash()


def test_a_snapshot_taken_while_a_feed_is_stale_restores_its_buffer_and_both_engines_heal_alike(tmp_path):
    h = Harness(tmp_path, autostart=True)
    h.engine.snapshot_dir = tmp_path / "snaps"
    h.market()
    lost, later = (
        next(m for m in h.venue.handle(_lp_order(side, price, cid)) if type(m) is BookDeltas)
        for side, price, cid in ((Side.BUY, 9_995, "lp-x"), (Side.SELL, 10_005, "lp-y"))
    )
    h.engine.handle_market_data(later)  # buffered behind the gap
    h.engine.snapshot()
    snapshot_seq = h.engine.journal_seq
    copy = tmp_path / "copy"  # the recovered engine appends to its own copy of the files
    copy.mkdir()
    shutil.copy(tmp_path / "j", copy / "j")
    shutil.copytree(tmp_path / "snaps", copy / "snaps")

    recovered = Engine.recover(
        h.config, FakeClock(START), rs.INSTRUMENTS, NullGateway(), copy / "j", snapshot_dir=copy / "snaps"
    )
    for engine in (h.engine, recovered):
        engine.handle_market_data(lost)  # the hole is filled: the buffered message applies after it

    assert recovered.recovered_from == snapshot_seq
    assert recovered.state_hash() == h.engine.state_hash()
    assert recovered.book(SYMBOL).size_at(Side.SELL, 10_005) == 3
