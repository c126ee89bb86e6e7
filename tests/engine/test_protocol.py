"""The wire protocol: every message round-trips, and no input makes the codec raise anything but ProtocolError."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.msgpack import Ext

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce, TradingState
from engine.protocol import (
    COMMAND_TYPES,
    EVENT_TYPES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    REPLY_TYPES,
    VENUE_COMMAND_TYPES,
    VENUE_EVENT_TYPES,
    BookDeltas,
    BookDepth,
    BookSnapshot,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Codec,
    CommandAccepted,
    CommandRejected,
    EngineHeartbeat,
    EventEnvelope,
    ExecutionReport,
    HaltCompleted,
    HaltTrading,
    Heartbeat,
    InstrumentRegistry,
    LimitsChanged,
    MarketTrade,
    MassCancelReport,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    OrderSummary,
    PnlUpdated,
    PositionChanged,
    PositionSummary,
    PriceLevel,
    ProtocolError,
    ProtocolErrorCode,
    QueryVenueOrders,
    ReduceTrading,
    ReplaceOrder,
    ReplayBatch,
    RequestReplay,
    RequestStateSnapshot,
    ResumeTrading,
    RiskLimits,
    RiskUtilisation,
    RollbackStrategyParams,
    Scope,
    ScopeKind,
    ScopeLimits,
    ScopeTradingState,
    ScopeTriggerSettings,
    ScopeUtilisation,
    SetLimits,
    SetTriggers,
    StartStrategy,
    StateSnapshot,
    StopStrategy,
    StrategyParamsChanged,
    StrategyState,
    StrategyStateChanged,
    StrategySummary,
    SubmitOrder,
    TopOfBookChanged,
    TradePrinted,
    TradingStateChanged,
    TriggersChanged,
    TriggerSettings,
    UpdateStrategyParams,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenueOrderStatus,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
    VenueRequestSnapshot,
    VenueStatusComplete,
)

Code = ProtocolErrorCode
CMD = {"command_id": "cmd-1", "operator": "alice", "ts": 1_718_000_000_000_000_000}
LIMITS = RiskLimits(
    max_order_quantity=Decimal("5"),
    max_order_notional=Decimal("250000.00"),
    price_collar_pct=Decimal("2.5"),
    price_collar_ticks=200,
    max_position=Decimal("20"),
    max_gross_exposure=Decimal("1000000"),
    max_net_exposure=Decimal("500000"),
    max_open_orders=50,
    max_orders_per_window=100,
    max_messages_per_window=400,
    rate_window_ns=1_000_000_000,
    duplicate_window_ns=500_000_000,
    max_daily_loss=Decimal("25000"),
    restricted_symbols=("USDJPY",),
)
PARAMS = {"half_spread": Decimal("0.5"), "levels": 3, "skew": True, "mode": "passive", "tag": "1.5"}
FILL = OrderFilled(
    strategy_id="mm-btc",
    client_order_id="o-1",
    symbol="BTCUSDT",
    side=Side.BUY,
    exec_id="x-1",
    venue_order_id=7,
    last_price=650_001,
    last_quantity=2,
    leaves_quantity=3,
    cum_quantity=2,
    is_maker=True,
    commission=Decimal("-0.0013"),
    venue_ts=5,
)


def _place(**changes) -> dict:
    fields = {
        "client_order_id": "o-1",
        "account": "acct-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "price": 650_000,
        "quantity": 3,
    }
    return fields | changes


def _submit(**changes) -> dict:
    fields = {
        **CMD,
        "strategy_id": "mm-btc",
        "client_order_id": "o-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "price": Decimal("65000.1"),
        "quantity": Decimal("0.003"),
    }
    return fields | changes


def _report(**changes) -> dict:
    fields = {
        "exec_id": "x-1",
        "client_order_id": "o-1",
        "venue_order_id": 7,
        "account": "acct-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "exec_type": ExecType.TRADE,
        "status": OrderStatus.PARTIALLY_FILLED,
        "price": 650_000,
        "quantity": 5,
        "last_price": 650_000,
        "last_quantity": 2,
        "leaves_quantity": 3,
        "cum_quantity": 2,
        "is_maker": True,
        "ts": 1,
    }
    return fields | changes


TRIGGERS = TriggerSettings(
    daily_loss=Decimal("2500"),
    drawdown=Decimal("4000"),
    drawdown_action=TradingState.REDUCING,
    reject_rate=Decimal("0.25"),
    reject_rate_window_ns=10_000_000_000,
    reject_rate_min_orders=20,
)
UTILISATION = ScopeUtilisation(
    scope=Scope.firm(),
    open_orders=12,
    orders_in_window=40,
    messages_in_window=95,
    rate_window_ns=1_000_000_000,
    position=7,
    position_symbol="BTCUSDT",
    working_buy=6,
    working_sell=5,
    gross_exposure=Decimal("455.0007"),
    net_exposure=Decimal("-120.5"),
    working_exposure=Decimal("715.0011"),
    daily_pnl=Decimal("-3.25"),
    position_quantity=Decimal("0.007"),
)

EXAMPLES = [
    # engine -> venue
    VenuePlaceOrder(**_place(post_only=True, ts=11)),
    VenuePlaceOrder(**_place(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC, price=0)),
    VenueCancelOrder(client_order_id="o-2", orig_client_order_id="o-1", account="acct-1", symbol="BTCUSDT", ts=12),
    VenueReplaceOrder(
        client_order_id="o-3", orig_client_order_id="o-1", account="acct-1", symbol="ESM4", price=21_000, quantity=2
    ),
    VenueMassCancel(client_order_id="mc-1", account="acct-1"),
    VenueMassCancel(client_order_id="mc-2", account="acct-1", symbol="ETHUSDT", ts=3),
    VenueQueryOrder(client_order_id="o-1", account="acct-1", symbol="BTCUSDT"),
    VenueRequestSnapshot(symbol="BTCUSDT", depth=10),
    # venue -> engine
    ExecutionReport(**_report()),
    ExecutionReport(
        **_report(
            exec_type=ExecType.REJECTED,
            status=OrderStatus.REJECTED,
            last_price=0,
            last_quantity=0,
            leaves_quantity=0,
            orig_client_order_id="o-0",
            reason_code="POST_ONLY_WOULD_CROSS",
            text="post-only order would have taken liquidity",
        )
    ),
    BookDeltas(symbol="BTCUSDT", seq=1, ts=2, deltas=((Side.BUY, 650_000, 9), (Side.SELL, 650_001, 0))),
    MassCancelReport(
        client_order_id="mc-1", account="acct-1", canceled=(("o-1", 7), ("o-2", 8)), reason_code="MASS_CANCEL", ts=6
    ),
    MassCancelReport(client_order_id="mc-2", account="acct-1", symbol="ETHUSDT", ts=7),
    VenueCommandRejected(
        command="VenueRequestSnapshot",
        code="UNKNOWN_SYMBOL",
        symbol="DOGEUSDT",
        reason="the venue does not list 'DOGEUSDT'",
        ts=5,
    ),
    TradePrinted(symbol="BTCUSDT", seq=2, ts=3, trade_id=99, price=650_001, quantity=1, aggressor=Side.SELL),
    BookSnapshot(symbol="BTCUSDT", seq=2, ts=4, bids=((650_000, 9), (649_999, 1)), asks=((650_002, 4),)),
    # console -> engine
    SubmitOrder(**_submit(post_only=True)),
    SubmitOrder(**_submit(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC, price=None)),
    CancelOrder(**CMD, client_order_id="o-1", symbol="BTCUSDT"),
    ReplaceOrder(
        **CMD,
        client_order_id="o-2",
        orig_client_order_id="o-1",
        symbol="ESM4",
        price=Decimal("5300.25"),
        quantity=Decimal("2"),
    ),
    CancelAllOrders(**CMD, scope=Scope.strategy("mm-btc")),
    SetLimits(**CMD, scope=Scope.instrument("BTCUSDT"), limits=LIMITS),
    SetLimits(**CMD, scope=Scope.firm(), limits=RiskLimits()),
    HaltTrading(**CMD, scope=Scope.firm(), reason="venue connectivity lost"),
    ReduceTrading(**CMD, scope=Scope.strategy("mm-btc"), reason="daily loss at 80 %"),
    ResumeTrading(**CMD, scope=Scope.instrument("ESM4"), reason="roll completed"),
    StartStrategy(**CMD, strategy_id="mm-btc"),
    StopStrategy(**CMD, strategy_id="mm-btc", reason="end of session", cancel_orders=False),
    UpdateStrategyParams(**CMD, strategy_id="mm-btc", params=PARAMS, base_version=4),
    RollbackStrategyParams(**CMD, strategy_id="mm-btc", version=3),
    Heartbeat(**CMD, last_seq=41),
    RequestReplay(**CMD, from_seq=42),
    RequestStateSnapshot(**CMD),
    # engine -> console replies
    CommandAccepted(command_id="cmd-1", ts=5, event_seq=43, client_order_id="o-1"),
    CommandAccepted(
        command_id="cmd-2",
        ts=6,
        trading_state=TradingState.HALTED,
        strategy_state=StrategyState.RUNNING,
        params_version=5,
    ),
    CommandRejected(command_id="", ts=7, code="MALFORMED", reason="Input data was truncated"),
    ReplayBatch(
        command_id="cmd-3",
        from_seq=42,
        last_seq=43,
        events=(
            EventEnvelope(engine_id="eng-1", seq=42, ts=8, event=FILL),
            EventEnvelope(engine_id="eng-1", seq=43, ts=9, event=EngineHeartbeat(interval_ns=10, firm_state=1)),
        ),
        complete=False,
    ),
    StateSnapshot(
        command_id="cmd-4",
        engine_id="eng-1",
        seq=43,
        ts=10,
        trading_states=(
            ScopeTradingState(scope=Scope.firm(), state=TradingState.ACTIVE),
            ScopeTradingState(
                scope=Scope.strategy("mm-btc"), state=TradingState.REDUCING, operator="bob", reason="loss"
            ),
        ),
        limits=(ScopeLimits(scope=Scope.instrument("BTCUSDT"), limits=LIMITS),),
        strategies=(
            StrategySummary(strategy_id="mm-btc", state=StrategyState.RUNNING, params=PARAMS, params_version=5),
        ),
        orders=(
            OrderSummary(
                strategy_id="mm-btc",
                client_order_id="o-1",
                symbol="BTCUSDT",
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                status=OrderStatus.PARTIALLY_FILLED,
                price=650_002,
                quantity=5,
                leaves_quantity=3,
                cum_quantity=2,
                venue_order_id=7,
            ),
        ),
        positions=(
            PositionSummary(
                strategy_id="mm-btc",
                symbol="BTCUSDT",
                quantity=-2,
                avg_price=Decimal("65000.2"),
                realized_pnl=Decimal("-1.25"),
                unrealized_pnl=Decimal("0.4"),
                fees=Decimal("0.013"),
            ),
        ),
    ),
    StateSnapshot(command_id="cmd-5", engine_id="eng-1", seq=0, ts=11),
    StateSnapshot(
        command_id="cmd-6",
        engine_id="eng-1",
        seq=44,
        ts=12,
        utilisation=(UTILISATION,),
        triggers=(ScopeTriggerSettings(scope=Scope.strategy("mm-btc"), triggers=TRIGGERS),),
    ),
    EventEnvelope(engine_id="eng-1", seq=1, ts=12, event=FILL),
    # engine -> console events
    OrderSubmitted(
        strategy_id="mm-btc",
        client_order_id="o-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=650_001,
        quantity=3,
        command_id="cmd-1",
    ),
    OrderAccepted(strategy_id="mm-btc", client_order_id="o-1", symbol="BTCUSDT", venue_order_id=7, venue_ts=3),
    OrderDenied(
        strategy_id="mm-btc",
        client_order_id="o-1",
        symbol="BTCUSDT",
        code="RISK_MAX_ORDER_QUANTITY",
        reason="6 > 5",
        command_id="cmd-1",
    ),
    OrderRejected(strategy_id="mm-btc", client_order_id="o-1", symbol="BTCUSDT", code="POST_ONLY_WOULD_CROSS"),
    OrderCanceled(
        strategy_id="mm-btc", client_order_id="o-1", symbol="BTCUSDT", canceled_quantity=3, code="SELF_TRADE"
    ),
    OrderExpired(strategy_id="mm-btc", client_order_id="o-1", symbol="BTCUSDT", expired_quantity=3),
    OrderReplaced(
        strategy_id="mm-btc",
        client_order_id="o-2",
        orig_client_order_id="o-1",
        symbol="BTCUSDT",
        price=650_003,
        quantity=4,
        leaves_quantity=2,
    ),
    CancelRejected(
        strategy_id="mm-btc",
        client_order_id="o-2",
        orig_client_order_id="o-1",
        symbol="BTCUSDT",
        code="UNKNOWN_ORDER",
        reason="already filled",
    ),
    FILL,
    PositionChanged(
        strategy_id="mm-btc",
        symbol="BTCUSDT",
        quantity=-2,
        avg_price=Decimal("65000.15"),
        realized_pnl=Decimal("12.5"),
        fees=Decimal("-0.0013"),
    ),
    PnlUpdated(
        scope=Scope.firm(),
        realized_pnl=Decimal("12.5"),
        unrealized_pnl=Decimal("-3.25"),
        currency="USDT",
        fees=Decimal("0.75"),
    ),
    TradingStateChanged(
        scope=Scope.firm(),
        state=TradingState.HALTED,
        previous=TradingState.ACTIVE,
        reason="venue connectivity lost",
        operator="alice",
        command_id="cmd-1",
    ),
    TradingStateChanged(
        scope=Scope.strategy("mm-btc"),
        state=TradingState.REDUCING,
        previous=TradingState.ACTIVE,
        reason="daily loss limit reached",
        code="RISK_DAILY_LOSS",
    ),
    LimitsChanged(scope=Scope.instrument("BTCUSDT"), limits=LIMITS, operator="alice", command_id="cmd-1"),
    StrategyStateChanged(
        strategy_id="mm-btc",
        state=StrategyState.RUNNING,
        previous=StrategyState.STOPPED,
        operator="alice",
        command_id="cmd-1",
    ),
    StrategyParamsChanged(strategy_id="mm-btc", params=PARAMS, version=6, operator="alice", rolled_back_to=3),
    TopOfBookChanged(symbol="BTCUSDT", bid_price=650_000, bid_size=9, ask_price=0, ask_size=0, venue_ts=4),
    EngineHeartbeat(interval_ns=1_000_000_000, firm_state=TradingState.ACTIVE),
    MarketTrade(symbol="BTCUSDT", price=650_001, quantity=2, aggressor=Side.BUY, venue_ts=4, trade_id=99),
    BookDepth(
        symbol="BTCUSDT",
        bids=(PriceLevel(price=650_000, size=9), PriceLevel(price=649_998, size=1)),
        asks=(PriceLevel(price=650_002, size=4),),
        venue_ts=5,
    ),
    BookDepth(symbol="ESM4"),
    HaltCompleted(scope=Scope.strategy("mm-btc"), orders_canceled=3, elapsed_ns=8_000_000, command_id="cmd-1"),
    HaltCompleted(scope=Scope.firm(), orders_canceled=0, elapsed_ns=0, code="RISK_DAILY_LOSS"),
    RiskUtilisation(scopes=(UTILISATION, ScopeUtilisation(scope=Scope.instrument("BTCUSDT"), position=-4))),
    VenueOrderStatus(
        command_id="cmd-1",
        client_order_id="o-1",
        strategy_id="mm-btc",
        symbol="BTCUSDT",
        status=OrderStatus.PARTIALLY_FILLED,
        leaves_quantity=3,
        cum_quantity=2,
        venue_order_id=7,
        engine_status=OrderStatus.NEW,
        engine_leaves_quantity=5,
        venue_ts=6,
    ),
    VenueOrderStatus(
        command_id="cmd-1",
        client_order_id="o-2",
        strategy_id="mm-btc",
        symbol="BTCUSDT",
        status=OrderStatus.REJECTED,
        leaves_quantity=0,
        cum_quantity=0,
        known=False,
        code="UNKNOWN_ORDER",
    ),
    VenueStatusComplete(command_id="cmd-1", requested=3, answered=2, timed_out=True, unanswered=("o-3",)),
    QueryVenueOrders(**CMD, scope=Scope.instrument("BTCUSDT"), timeout_ns=2_000_000_000),
    SetTriggers(**CMD, scope=Scope.strategy("mm-btc"), triggers=TRIGGERS),
    SetTriggers(**CMD, scope=Scope.firm(), triggers=TriggerSettings()),
    TriggersChanged(scope=Scope.strategy("mm-btc"), triggers=TRIGGERS, operator="alice", command_id="cmd-1"),
]


def _first(cls: type) -> msgspec.Struct:
    return next(msg for msg in EXAMPLES if type(msg) is cls)


def _wire(msg: msgspec.Struct) -> dict:
    """The message as the plain map that travels, to be tampered with."""
    return msgspec.msgpack.decode(Codec(InstrumentRegistry([])).encode(msg))


PLACE_WIRE = _wire(_first(VenuePlaceOrder))
SUBMIT_WIRE = _wire(_first(SubmitOrder))
LIMITS_WIRE = _wire(_first(SetLimits))
PARAMS_WIRE = _wire(_first(UpdateStrategyParams))
ENVELOPE_WIRE = _wire(_first(EventEnvelope))


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(InstrumentRegistry.from_toml())


def _raw(message: dict | list | int | str) -> bytes:
    return msgspec.msgpack.encode(message)


def _error_code(decode, data: bytes) -> ProtocolErrorCode:
    with pytest.raises(ProtocolError) as caught:
        decode(data)
    return caught.value.code


# --- coverage of the union ------------------------------------------------------------------------------------


def test_round_trip_examples_cover_every_message_in_the_union() -> None:
    covered = {type(example) for example in EXAMPLES}

    missing = {cls.__name__ for cls in MESSAGE_TYPES} - {cls.__name__ for cls in covered}

    assert missing == set()


def test_message_families_partition_the_union_without_overlap() -> None:
    families = [VENUE_COMMAND_TYPES, VENUE_EVENT_TYPES, COMMAND_TYPES, REPLY_TYPES, EVENT_TYPES, (EventEnvelope,)]

    flattened = [cls for family in families for cls in family]

    assert sorted(cls.__name__ for cls in flattened) == sorted(cls.__name__ for cls in MESSAGE_TYPES)


def test_commands_carry_an_id_the_operator_and_a_timestamp() -> None:
    for cls in COMMAND_TYPES:
        fields = set(cls.__struct_fields__)

        assert {"command_id", "operator", "ts", "v"} <= fields, cls.__name__


# --- round trips ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_message_survives_a_round_trip_through_the_codec(codec: Codec, msg: msgspec.Struct) -> None:
    data = codec.encode(msg)

    decoded = codec.decode(data)

    assert decoded == msg
    assert type(decoded) is type(msg)
    assert codec.encode(decoded) == data


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_message_is_tagged_with_its_name_and_the_protocol_version(codec: Codec, msg: msgspec.Struct) -> None:
    wire = msgspec.msgpack.decode(codec.encode(msg))

    assert wire["type"] == type(msg).__name__
    assert wire["v"] == PROTOCOL_VERSION


@pytest.mark.parametrize(
    ("family", "decoder_name"),
    [
        (VENUE_COMMAND_TYPES, "decode_venue_command"),
        (VENUE_EVENT_TYPES, "decode_venue_event"),
        (COMMAND_TYPES, "decode_command"),
        (REPLY_TYPES, "decode_reply"),
        ((EventEnvelope,), "decode_event"),
    ],
)
def test_each_family_decoder_accepts_its_own_messages_and_refuses_the_others(
    codec: Codec, family: tuple[type, ...], decoder_name: str
) -> None:
    decode = getattr(codec, decoder_name)
    own = [msg for msg in EXAMPLES if type(msg) in family]
    foreign = [msg for msg in EXAMPLES if type(msg) not in family]

    decoded = [decode(codec.encode(msg)) for msg in own]
    codes = {_error_code(decode, codec.encode(msg)) for msg in foreign}

    assert decoded == own
    assert codes == {Code.UNEXPECTED_MESSAGE}


def test_strategy_parameters_keep_their_python_types_across_the_wire(codec: Codec) -> None:
    msg = UpdateStrategyParams(**CMD, strategy_id="mm-btc", params=PARAMS)

    params = codec.decode(codec.encode(msg)).params

    assert {key: type(value) for key, value in params.items() if not isinstance(value, Decimal)} == {
        "levels": int,
        "skew": bool,
        "mode": str,
        "tag": str,
    }
    assert isinstance(params["half_spread"], Decimal)
    assert params["half_spread"] == Decimal("0.5")


def test_a_message_does_not_change_when_the_caller_mutates_what_it_was_built_from() -> None:
    params = {"levels": 3}
    msg = UpdateStrategyParams(**CMD, strategy_id="mm-btc", params=params)

    params["levels"] = 4
    with pytest.raises(AttributeError):
        msg.strategy_id = "other"

    assert msg.params == {"levels": 3}


def test_console_order_prices_and_quantities_convert_to_ticks_and_lots_on_the_instrument_grid(codec: Codec) -> None:
    limit = SubmitOrder(**_submit(price=Decimal("65000.1"), quantity=Decimal("0.003")))
    market = SubmitOrder(**_submit(order_type=OrderType.MARKET, price=None, quantity=Decimal("0.250")))
    es_replace = _first(ReplaceOrder)  # ESM4 5300.25 x 2

    converted = [codec.order_ticks(limit), codec.order_ticks(market), codec.order_ticks(es_replace)]

    assert converted == [(650_001, 3), (0, 250), (21_201, 2)]


def test_venue_messages_have_exactly_the_agreed_fields_and_defaults() -> None:
    nodefault = msgspec.NODEFAULT
    agreed = {
        VenuePlaceOrder: "client_order_id account symbol side order_type time_in_force price quantity "
        "post_only=False ts=0",
        VenueCancelOrder: "client_order_id orig_client_order_id account symbol ts=0",
        VenueReplaceOrder: "client_order_id orig_client_order_id account symbol price quantity ts=0",
        VenueMassCancel: "client_order_id account symbol= ts=0",
        VenueQueryOrder: "client_order_id account symbol",
        VenueRequestSnapshot: "symbol depth=0",
        ExecutionReport: "exec_id client_order_id orig_client_order_id= venue_order_id account symbol side "
        "order_type time_in_force exec_type status price quantity last_price=0 last_quantity=0 leaves_quantity "
        "cum_quantity is_maker=False reason_code= text= ts",
        BookDeltas: "symbol seq ts deltas",
        TradePrinted: "symbol seq ts trade_id price quantity aggressor",
        BookSnapshot: "symbol seq ts bids asks",
        VenueCommandRejected: "command code symbol= client_order_id= reason= ts=0",
    }

    actual = {
        cls: " ".join(
            f.name if f.default is nodefault else f"{f.name}={f.default}"
            for f in msgspec.structs.fields(cls)
            if f.name != "v"
        )
        for cls in agreed
    }

    assert actual == agreed
    assert all(msgspec.structs.fields(cls)[0].default == PROTOCOL_VERSION for cls in agreed)


# --- structural validation on construction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: VenuePlaceOrder(**_place(quantity=0)), Code.NON_POSITIVE_QUANTITY),
        (lambda: VenuePlaceOrder(**_place(quantity=-1)), Code.NON_POSITIVE_QUANTITY),
        (lambda: VenuePlaceOrder(**_place(price=0)), Code.NON_POSITIVE_PRICE),
        (lambda: VenuePlaceOrder(**_place(price=-5)), Code.NON_POSITIVE_PRICE),
        (lambda: VenuePlaceOrder(**_place(order_type=OrderType.MARKET)), Code.INVALID_FIELD),
        (lambda: VenuePlaceOrder(**_place(order_type=OrderType.MARKET, price=0, post_only=True)), Code.INVALID_FIELD),
        (lambda: VenuePlaceOrder(**_place(client_order_id="")), Code.INVALID_FIELD),
        (lambda: VenuePlaceOrder(**_place(account="a" * 65)), Code.FIELD_TOO_LONG),
        (lambda: VenuePlaceOrder(**_place(side=0)), Code.INVALID_FIELD),
        (lambda: VenuePlaceOrder(**_place(ts=-1)), Code.INVALID_FIELD),
        (lambda: VenuePlaceOrder(**_place(quantity=2**63)), Code.INVALID_FIELD),
        (
            lambda: VenueReplaceOrder(
                client_order_id="o-2", orig_client_order_id="o-1", account="a", symbol="ESM4", price=1, quantity=0
            ),
            Code.NON_POSITIVE_QUANTITY,
        ),
        (lambda: ExecutionReport(**_report(last_quantity=0)), Code.INVALID_FIELD),
        (lambda: ExecutionReport(**_report(leaves_quantity=-1)), Code.NON_POSITIVE_QUANTITY),
        (lambda: ExecutionReport(**_report(text="x" * 513)), Code.FIELD_TOO_LONG),
        (lambda: BookDeltas(symbol="BTCUSDT", seq=1, ts=0, deltas=((0, 1, 1),)), Code.INVALID_FIELD),
        (lambda: BookDeltas(symbol="BTCUSDT", seq=0, ts=0, deltas=()), Code.INVALID_FIELD),
        (lambda: BookSnapshot(symbol="BTCUSDT", seq=0, ts=0, bids=((5, 0),), asks=()), Code.INVALID_FIELD),
        (lambda: SubmitOrder(**_submit(quantity=Decimal(0))), Code.NON_POSITIVE_QUANTITY),
        (lambda: SubmitOrder(**_submit(quantity=Decimal("-0.001"))), Code.NON_POSITIVE_QUANTITY),
        (lambda: SubmitOrder(**_submit(price=Decimal("-1"))), Code.NON_POSITIVE_PRICE),
        (lambda: SubmitOrder(**_submit(price=None)), Code.NON_POSITIVE_PRICE),
        (lambda: SubmitOrder(**_submit(price=Decimal("NaN"))), Code.INVALID_FIELD),
        (lambda: SubmitOrder(**_submit(quantity=Decimal("Infinity"))), Code.INVALID_FIELD),
        (lambda: SubmitOrder(**_submit(quantity=Decimal("1E+40"))), Code.INVALID_FIELD),
        (lambda: SubmitOrder(**_submit(operator="")), Code.INVALID_FIELD),
        (lambda: SubmitOrder(**_submit(command_id="c" * 65)), Code.FIELD_TOO_LONG),
        (lambda: Scope(kind=ScopeKind.FIRM, name="acme"), Code.INVALID_FIELD),
        (lambda: Scope(kind=ScopeKind.STRATEGY), Code.INVALID_FIELD),
        (lambda: Scope(kind=ScopeKind.INSTRUMENT, name="X" * 33), Code.FIELD_TOO_LONG),
        (lambda: RiskLimits(max_position=Decimal("-1")), Code.INVALID_FIELD),
        (lambda: RiskLimits(max_open_orders=0), Code.INVALID_FIELD),
        (lambda: RiskLimits(max_orders_per_window=10), Code.INVALID_FIELD),
        (lambda: RiskLimits(restricted_symbols=("ESM4", "ESM4")), Code.INVALID_FIELD),
        (lambda: HaltTrading(**CMD, scope=Scope.firm(), reason=""), Code.INVALID_FIELD),
        (lambda: UpdateStrategyParams(**CMD, strategy_id="s", params={"x": 1.5}), Code.INVALID_FIELD),
        (lambda: UpdateStrategyParams(**CMD, strategy_id="s", params={"x": None}), Code.INVALID_FIELD),
        (lambda: UpdateStrategyParams(**CMD, strategy_id="s", params={"": 1}), Code.INVALID_FIELD),
        (lambda: UpdateStrategyParams(**CMD, strategy_id="s", params={"x": "y" * 257}), Code.FIELD_TOO_LONG),
        (lambda: UpdateStrategyParams(**CMD, strategy_id="s", params={"x": 2**64}), Code.INVALID_FIELD),
        (lambda: RollbackStrategyParams(**CMD, strategy_id="s", version=0), Code.INVALID_FIELD),
        (lambda: RequestReplay(**CMD, from_seq=0), Code.INVALID_FIELD),
        (lambda: EventEnvelope(engine_id="e", seq=0, ts=0, event=FILL), Code.INVALID_FIELD),
    ],
)
def test_an_invalid_message_cannot_be_built_in_process(build, code: ProtocolErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        build()

    assert caught.value.code == code


def test_a_valid_market_order_and_an_empty_mass_cancel_symbol_are_accepted() -> None:
    market = VenuePlaceOrder(**_place(order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC, price=0))
    mass_cancel = VenueMassCancel(client_order_id="mc", account="acct-1")

    assert (market.price, mass_cancel.symbol) == (0, "")


# --- registry checks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        (SubmitOrder(**_submit(price=Decimal("65000.15"))), Code.PRICE_OFF_TICK),
        (SubmitOrder(**_submit(quantity=Decimal("0.0005"))), Code.QUANTITY_OFF_LOT),
        (SubmitOrder(**_submit(symbol="DOGEUSDT")), Code.UNKNOWN_SYMBOL),
        (SubmitOrder(**_submit(price=Decimal("1E+18"))), Code.INVALID_FIELD),
        (
            ReplaceOrder(
                **CMD,
                client_order_id="b",
                orig_client_order_id="a",
                symbol="ESM4",
                price=Decimal("5300.1"),
                quantity=Decimal(1),
            ),
            Code.PRICE_OFF_TICK,
        ),
        (
            ReplaceOrder(
                **CMD,
                client_order_id="b",
                orig_client_order_id="a",
                symbol="USDJPY",
                price=Decimal(150),
                quantity=Decimal(500),
            ),
            Code.QUANTITY_OFF_LOT,
        ),
        (
            SetLimits(
                **CMD, scope=Scope.instrument("BTCUSDT"), limits=RiskLimits(max_order_quantity=Decimal("0.0005"))
            ),
            Code.QUANTITY_OFF_LOT,
        ),
        (
            LimitsChanged(
                scope=Scope.instrument("BTCUSDT"), limits=RiskLimits(max_position=Decimal("1.0001")), operator="alice"
            ),
            Code.QUANTITY_OFF_LOT,
        ),
        (VenuePlaceOrder(**_place(symbol="DOGEUSDT")), Code.UNKNOWN_SYMBOL),
        (VenueMassCancel(client_order_id="mc", account="a", symbol="DOGEUSDT"), Code.UNKNOWN_SYMBOL),
        (ExecutionReport(**_report(symbol="DOGEUSDT")), Code.UNKNOWN_SYMBOL),
        (CancelAllOrders(**CMD, scope=Scope.instrument("DOGEUSDT")), Code.UNKNOWN_SYMBOL),
        (
            SetLimits(**CMD, scope=Scope.firm(), limits=RiskLimits(restricted_symbols=("DOGEUSDT",))),
            Code.UNKNOWN_SYMBOL,
        ),
        (
            EventEnvelope(
                engine_id="e",
                seq=1,
                ts=0,
                event=OrderAccepted(strategy_id="s", client_order_id="o", symbol="DOGEUSDT", venue_order_id=1),
            ),
            Code.UNKNOWN_SYMBOL,
        ),
        (
            StateSnapshot(
                command_id="c",
                engine_id="e",
                seq=0,
                ts=0,
                positions=(PositionSummary(strategy_id="s", symbol="DOGEUSDT", quantity=1),),
            ),
            Code.UNKNOWN_SYMBOL,
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, msgspec.Struct) else str(value),
)
def test_decoding_refuses_what_the_instrument_registry_does_not_allow(
    codec: Codec, msg: msgspec.Struct, code: ProtocolErrorCode
) -> None:
    data = codec.encode(msg)

    decode_code = _error_code(codec.decode, data)
    check_code = _error_code(codec.check, msg)

    assert decode_code == check_code == code


def test_quantity_limits_are_grid_checked_only_at_instrument_scope(codec: Codec) -> None:
    on_grid = SetLimits(
        **CMD,
        scope=Scope.instrument("BTCUSDT"),
        limits=RiskLimits(
            max_order_quantity=Decimal("0.005"), max_position=Decimal("2"), max_daily_loss=Decimal("0.5")
        ),
    )
    firm = SetLimits(**CMD, scope=Scope.firm(), limits=RiskLimits(max_order_quantity=Decimal("0.0005")))

    assert codec.decode(codec.encode(on_grid)) == on_grid
    assert codec.decode(codec.encode(firm)) == firm


@pytest.mark.parametrize("pct", ["0", "100.01", "500"])
def test_a_price_collar_outside_0_to_100_percent_is_refused(pct: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        RiskLimits(price_collar_pct=Decimal(pct))

    assert caught.value.code == Code.INVALID_FIELD
    assert "price_collar_pct" in caught.value.reason


def test_a_price_collar_of_exactly_100_percent_is_allowed() -> None:
    assert RiskLimits(price_collar_pct=Decimal(100)).price_collar_pct == Decimal(100)


@pytest.mark.parametrize(("field", "value"), [("price", 100.1), ("quantity", 0.5), ("price", 100)])
def test_a_number_where_a_decimal_string_is_expected_is_refused_on_decode(
    codec: Codec, field: str, value: float
) -> None:
    wire = dict(SUBMIT_WIRE)
    wire[field] = value

    code = _error_code(codec.decode, _raw(wire))

    assert code == Code.INVALID_FIELD


def test_a_float_money_field_is_refused_on_decode(codec: Codec) -> None:
    wire = _wire(SetLimits(**CMD, scope=Scope.firm(), limits=RiskLimits(max_daily_loss=Decimal("100"))))
    wire["limits"]["max_daily_loss"] = 100.1

    assert _error_code(codec.decode, _raw(wire)) == Code.INVALID_FIELD


@pytest.mark.parametrize(
    ("bids", "asks", "code"),
    [
        (((100, 1), (100, 2)), (), Code.INVALID_FIELD),  # duplicate bid level
        (((99, 1), (100, 2)), (), Code.INVALID_FIELD),  # bids ascending
        ((), ((101, 1), (101, 1)), Code.INVALID_FIELD),  # duplicate ask level
        ((), ((102, 1), (101, 1)), Code.INVALID_FIELD),  # asks descending
        (((0, 1),), (), Code.NON_POSITIVE_PRICE),
        ((), ((0, 3),), Code.NON_POSITIVE_PRICE),
    ],
)
def test_a_book_snapshot_needs_strictly_ordered_levels_with_positive_prices(
    codec: Codec, bids: tuple, asks: tuple, code: ProtocolErrorCode
) -> None:
    wire = _wire(BookSnapshot(symbol="BTCUSDT", seq=1, ts=0, bids=(), asks=()))
    wire["bids"], wire["asks"] = [list(level) for level in bids], [list(level) for level in asks]

    decode_code = _error_code(codec.decode, _raw(wire))
    with pytest.raises(ProtocolError) as built:
        BookSnapshot(symbol="BTCUSDT", seq=1, ts=0, bids=bids, asks=asks)

    assert decode_code == built.value.code == code


def test_the_strategy_scope_name_is_not_taken_for_a_symbol(codec: Codec) -> None:
    msg = HaltTrading(**CMD, scope=Scope.strategy("DOGEUSDT"), reason="test")

    assert codec.decode(codec.encode(msg)) == msg


# --- junk on the wire -------------------------------------------------------------------------------------------


def test_every_truncation_of_a_valid_message_is_reported_as_malformed(codec: Codec) -> None:
    data = codec.encode(_first(ReplayBatch))  # nested envelopes, events, Decimals

    codes = {_error_code(codec.decode, data[:cut]) for cut in range(len(data))}

    assert codes == {Code.MALFORMED}


@pytest.mark.parametrize(
    ("data", "code", "in_reason"),
    [
        (b"", Code.MALFORMED, "truncated"),
        (b"\xc1", Code.MALFORMED, "malformed"),
        (_raw(17), Code.MALFORMED, "Expected `object`"),
        (_raw(["ExecutionReport", 1]), Code.MALFORMED, "Expected `object`"),
        (_raw({"v": 1}), Code.UNKNOWN_MESSAGE, "`type`"),
        (_raw({"type": "PlaceOrderPlease", "v": 1}), Code.UNKNOWN_MESSAGE, "PlaceOrderPlease"),
        (_raw({"type": 5}), Code.INVALID_FIELD, "$.type"),
        (_raw(PLACE_WIRE | {"price": "650000"}), Code.INVALID_FIELD, "$.price"),
        (_raw(PLACE_WIRE | {"side": 2}), Code.INVALID_FIELD, "$.side"),
        (_raw(PLACE_WIRE | {"post_only": 1}), Code.INVALID_FIELD, "$.post_only"),
        (_raw(PLACE_WIRE | {"quantity": 0}), Code.NON_POSITIVE_QUANTITY, "$.quantity"),
        (_raw(PLACE_WIRE | {"quantity": -3}), Code.NON_POSITIVE_QUANTITY, "$.quantity"),
        (_raw(PLACE_WIRE | {"quantity": 2**64 - 1}), Code.INVALID_FIELD, "$.quantity"),
        (_raw(PLACE_WIRE | {"price": 0}), Code.NON_POSITIVE_PRICE, "price"),
        (_raw(PLACE_WIRE | {"symbol": "DOGEUSDT"}), Code.UNKNOWN_SYMBOL, "DOGEUSDT"),
        (_raw(PLACE_WIRE | {"account": "a" * 65}), Code.FIELD_TOO_LONG, "$.account"),
        (_raw(PLACE_WIRE | {"client_order_id": ""}), Code.INVALID_FIELD, "$.client_order_id"),
        (_raw(PLACE_WIRE | {"colour": "red"}), Code.UNKNOWN_FIELD, "colour"),
        (_raw({k: v for k, v in _wire(_first(VenuePlaceOrder)).items() if k != "side"}), Code.MISSING_FIELD, "side"),
        (_raw(PLACE_WIRE | {"v": 2}), Code.UNSUPPORTED_VERSION, "version 2"),
        (_raw(PLACE_WIRE | {"v": 2, "new_field": 1}), Code.UNSUPPORTED_VERSION, "version 2"),
        (_raw(PLACE_WIRE | {"v": "one"}), Code.UNSUPPORTED_VERSION, "'one'"),
        (_raw(SUBMIT_WIRE | {"quantity": "0"}), Code.NON_POSITIVE_QUANTITY, "quantity"),
        (_raw(SUBMIT_WIRE | {"quantity": "-0.003"}), Code.NON_POSITIVE_QUANTITY, "quantity"),
        (_raw(SUBMIT_WIRE | {"quantity": "lots"}), Code.INVALID_FIELD, "$.quantity"),
        (_raw(SUBMIT_WIRE | {"price": "NaN"}), Code.INVALID_FIELD, "price"),
        (_raw(SUBMIT_WIRE | {"price": "65000.15"}), Code.PRICE_OFF_TICK, "price"),
        (_raw(SUBMIT_WIRE | {"quantity": "0.0001"}), Code.QUANTITY_OFF_LOT, "quantity"),
        (_raw(SUBMIT_WIRE | {"price": "1e999999999"}), Code.INVALID_FIELD, "price"),
        (_raw(SUBMIT_WIRE | {"price": "1e-999999999"}), Code.PRICE_OFF_TICK, "price"),
        (_raw(SUBMIT_WIRE | {"price": "65000.1" + "0" * 40 + "1"}), Code.PRICE_OFF_TICK, "price"),
        (_raw(_wire(_first(BookDeltas)) | {"deltas": [[3, 1, 1]]}), Code.INVALID_FIELD, "$.deltas[0][0]"),
        (_raw(_wire(_first(BookDeltas)) | {"deltas": [[1, 1]]}), Code.INVALID_FIELD, "$.deltas[0]"),
        (_raw(_wire(_first(BookSnapshot)) | {"bids": [[1, 0]]}), Code.INVALID_FIELD, "$.bids[0][1]"),
        (_raw(LIMITS_WIRE | {"limits": {"max_open_orders": 5, "x": 1}}), Code.UNKNOWN_FIELD, "$.limits"),
        (_raw(LIMITS_WIRE | {"scope": {"kind": 9, "name": ""}}), Code.INVALID_FIELD, "$.scope.kind"),
        (_raw(LIMITS_WIRE | {"scope": {"kind": 1, "name": "acme"}}), Code.INVALID_FIELD, "Scope.name"),
        (_raw(ENVELOPE_WIRE | {"event": {"type": "Nope"}}), Code.UNKNOWN_MESSAGE, "$.event.type"),
        (
            _raw(ENVELOPE_WIRE | {"event": {"type": "SubmitOrder"}}),
            Code.UNEXPECTED_MESSAGE,
            "$.event.type",
        ),
        (_raw(ENVELOPE_WIRE | {"event": _wire(FILL) | {"fee": 1}}), Code.UNKNOWN_FIELD, "$.event"),
        (_raw(PARAMS_WIRE | {"params": {"x": 1.5}}), Code.INVALID_FIELD, "params"),
        (_raw(PARAMS_WIRE | {"params": {"x": [1]}}), Code.INVALID_FIELD, "params"),
        (
            _raw(PARAMS_WIRE | {"params": {"x": Ext(9, b"1")}}),
            Code.INVALID_FIELD,
            "ext",
        ),
        (
            _raw(PARAMS_WIRE | {"params": {"x": Ext(1, b"abc")}}),
            Code.INVALID_FIELD,
            "dec",
        ),
        (
            _raw(PARAMS_WIRE | {"params": {"x": Ext(1, b"\xff")}}),
            Code.INVALID_FIELD,
            "dec",
        ),
        (
            _raw(PARAMS_WIRE | {"params": {str(i): i for i in range(129)}}),
            Code.INVALID_FIELD,
            "$.params",
        ),
    ],
)
def test_junk_raises_one_protocol_error_with_the_right_code_and_a_reason(
    codec: Codec, data: bytes, code: ProtocolErrorCode, in_reason: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        codec.decode(data)

    assert caught.value.code == code
    assert in_reason in caught.value.reason


def test_a_message_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    small_codec = Codec(InstrumentRegistry.from_toml(), max_message_bytes=64)
    data = small_codec.encode(_first(ExecutionReport))

    code = _error_code(small_codec.decode, data)

    assert code == Code.MESSAGE_TOO_LARGE


def test_deeply_nested_junk_is_refused_without_blowing_the_stack(codec: Codec) -> None:
    data = b"\x91" * 100_000 + b"\x00"  # an array in an array in ... 100 000 deep

    code = _error_code(codec.decode, data)

    assert code == Code.MALFORMED


_DECODERS = ("decode", "decode_command", "decode_reply", "decode_event", "decode_venue_command", "decode_venue_event")
_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _decodes_or_raises_protocol_error(codec: Codec, data: bytes) -> None:
    for name in _DECODERS:
        try:
            getattr(codec, name)(data)
        except ProtocolError as exc:
            assert exc.code in set(ProtocolErrorCode)


@_FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_never_raise_anything_but_protocol_error(codec: Codec, data: bytes) -> None:
    _decodes_or_raises_protocol_error(codec, data)


@_FUZZ
@given(
    index=st.integers(0, len(EXAMPLES) - 1),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_corrupted_valid_messages_never_raise_anything_but_protocol_error(
    codec: Codec, index: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(codec.encode(EXAMPLES[index]))
    for position, byte in edits:
        data[position % len(data)] = byte

    _decodes_or_raises_protocol_error(codec, bytes(data))


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.binary(max_size=8),
    st.sampled_from([cls.__name__ for cls in MESSAGE_TYPES]),
)
_trees = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(["type", "v", "symbol", "x"]), children)
    ),
    max_leaves=12,
)


@_FUZZ
@given(
    index=st.integers(0, len(EXAMPLES) - 1),
    field=st.integers(0, 60),
    value=_trees,
)
def test_valid_messages_with_a_field_replaced_by_anything_never_raise_anything_but_protocol_error(
    codec: Codec, index: int, field: int, value: object
) -> None:
    wire = _wire(EXAMPLES[index])
    wire[list(wire)[field % len(wire)]] = value

    _decodes_or_raises_protocol_error(codec, _raw(wire))


def test_the_protocol_reference_documents_every_message_and_reason_code() -> None:
    reference = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()

    undocumented = [
        name
        for name in [cls.__name__ for cls in MESSAGE_TYPES] + [code.value for code in ProtocolErrorCode]
        if f"| `{name}` |" not in reference
    ]

    assert undocumented == []
