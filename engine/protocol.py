"""Every message between the console, the engine and the venue, and their MessagePack codec (any thread: immutable).

This is the only module where a message is defined and the only engine module the Django side imports.
Each message is a frozen `msgspec.Struct` in one tagged union (tag field `type` = class name) carrying a
protocol version `v`. Evolution rule: append fields with defaults, never rename, renumber or retype; a change
that old readers cannot ignore bumps `PROTOCOL_VERSION`. Unknown fields are refused (`forbid_unknown_fields`)
so a newer sender talking to an older reader fails loudly instead of having half its message dropped.

Validation is split in two:
- structural checks (ranges, non-empty ids, string lengths, enum members, cross-field rules) live on the
  messages themselves: msgspec `Meta` constraints enforce them in C while decoding, and a `__post_init__`
  generated from the same constraints enforces them for messages built in-process, so an invalid message
  cannot exist anywhere;
- checks that need reference data (known symbol, price on the tick grid, quantity on the lot grid) live in
  `Codec`, which owns the `InstrumentRegistry`.

Whatever bytes arrive, `Codec.decode*` either returns a valid message or raises `ProtocolError` with a reason
code and the msgspec path of the offending field; it never raises anything else.

Units: venue messages and engine events carry integer ticks and lots (the engine's own units); console
commands carry `Decimal` prices and quantities (the operator's units), converted on the instrument grid by
`Codec.order_ticks` via `Instrument.price_to_ticks` / `qty_to_lots`. Money is `Decimal`. Timestamps are
integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, get_args

import msgspec
from msgspec import Meta

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce, TradingState
from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentError, InstrumentRegistry

PROTOCOL_VERSION = 1

MAX_INT64 = 2**63 - 1
ID_MAX_LENGTH = 64
SYMBOL_MAX_LENGTH = 32
CODE_MAX_LENGTH = 64
TEXT_MAX_LENGTH = 512
MAX_PARAMS = 128
PARAM_TEXT_MAX_LENGTH = 256
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Decimals at the edge are bounded (|value| < 10**19) so that grid arithmetic stays exact and cheap: "1e999999999"
# would make `divmod` against a tick size raise or crawl. Tiny values need no bound: they are simply off the grid.
DECIMAL_MAX_ADJUSTED_EXPONENT = 18

# The wire values of `Side`, mapped to the members: the one definition the engine uses both to check a side
# (`side in SIDES`, a dict lookup on plain ints, cheaper than building the enum) and to turn an int into a Side.
SIDES: dict[int, Side] = {int(side): side for side in Side}

# `VenueRequestSnapshot.depth` meaning "every level" (the books' own API spells that `depth(None)`).
FULL_DEPTH = 0
# Levels per side in a `BookDepth` event.
MAX_DEPTH_LEVELS = 10

# Ext type code carrying a strategy parameter Decimal: str-encoded Decimals would be indistinguishable from
# str parameters once decoded into `dict[str, Any]`.
_EXT_PARAM_DECIMAL = 1


class ProtocolErrorCode(StrEnum):
    MALFORMED = "MALFORMED"  # not MessagePack, truncated, or not a map
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"  # tag missing or names no message
    UNEXPECTED_MESSAGE = "UNEXPECTED_MESSAGE"  # a real message, but not of the family this decoder accepts
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"  # wrong type, out of range, empty id, inconsistent fields
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    QUANTITY_OFF_LOT = "QUANTITY_OFF_LOT"
    NON_POSITIVE_QUANTITY = "NON_POSITIVE_QUANTITY"
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"


class ProtocolError(EngineError):
    """A message that is not valid protocol. `code` is a `ProtocolErrorCode`; `reason` names the field."""

    def __init__(self, code: ProtocolErrorCode, reason: str) -> None:
        super().__init__(code, reason)


class ScopeKind(IntEnum):
    FIRM = 1
    STRATEGY = 2
    INSTRUMENT = 3


class StrategyState(IntEnum):
    STOPPED = 1
    RUNNING = 2
    FAILED = 3


# Field types. The Meta constraints are checked by msgspec on decode and, through `_install_validator`,
# by `__post_init__` on construction.
Id = Annotated[str, Meta(min_length=1, max_length=ID_MAX_LENGTH)]
OptionalId = Annotated[str, Meta(max_length=ID_MAX_LENGTH)]
Symbol = Annotated[str, Meta(min_length=1, max_length=SYMBOL_MAX_LENGTH)]
OptionalSymbol = Annotated[str, Meta(max_length=SYMBOL_MAX_LENGTH)]
Code = Annotated[str, Meta(min_length=1, max_length=CODE_MAX_LENGTH)]
OptionalCode = Annotated[str, Meta(max_length=CODE_MAX_LENGTH)]
Reason = Annotated[str, Meta(min_length=1, max_length=TEXT_MAX_LENGTH)]
Text = Annotated[str, Meta(max_length=TEXT_MAX_LENGTH)]
Nanos = Annotated[int, Meta(ge=0, le=MAX_INT64)]
Ticks = Annotated[int, Meta(ge=0, le=MAX_INT64)]
PositiveTicks = Annotated[int, Meta(ge=1, le=MAX_INT64)]
Lots = Annotated[int, Meta(ge=0, le=MAX_INT64)]
PositiveLots = Annotated[int, Meta(ge=1, le=MAX_INT64)]
SignedLots = Annotated[int, Meta(ge=-MAX_INT64, le=MAX_INT64)]
Seq = Annotated[int, Meta(ge=1, le=MAX_INT64)]
Count = Annotated[int, Meta(ge=0, le=MAX_INT64)]
PositiveCount = Annotated[int, Meta(ge=1, le=MAX_INT64)]
# A Decimal on the wire. Decimals travel as strings only, but msgspec would also turn a MessagePack float (or int)
# into a Decimal without a word: 100.1 sent as a float is not the decimal the sender meant. Declaring the field
# `Decimal | float` makes the decoder keep any number as a float, which `_check_decimal` (run for every Decimal
# field, on decode and on construction) refuses with INVALID_FIELD. Every value that passes is a Decimal.
Dec = Decimal | float
ParamValue = Decimal | int | str | bool
# `Any` on the wire because msgspec cannot tell a str-encoded Decimal from a str in a union; `_check_params`
# enforces the value types and the Ext code carries Decimals.
Params = Annotated[dict[str, Any], Meta(max_length=MAX_PARAMS)]
Level = tuple[Ticks, PositiveLots]
Delta = tuple[Side, Ticks, Lots]


class _ParamDecimal(Decimal):
    """A Decimal strategy parameter; a distinct type only so the encoder sends it as an Ext, not a str."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Decimal('{self}')"


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every protocol struct: frozen, keyword-only, validated on construction and decode."""

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:  # replaced per class by `_install_validator`
        pass

    def _check(self) -> None:
        """Cross-field rules of one class; runs after the generated range/length checks."""


class _Message(_Struct, frozen=True, tag_field="type", tag=True):
    """A top-level message: tagged with its class name and stamped with the protocol version."""

    v: int = PROTOCOL_VERSION


# --- shared value structs --------------------------------------------------------------------------------------


class Scope(_Struct, frozen=True, kw_only=True):
    """What a limit, kill-switch state or cancel-all applies to. FIRM has an empty name; STRATEGY names a
    strategy id; INSTRUMENT names a symbol (checked against the registry by the Codec)."""

    kind: ScopeKind
    name: OptionalId = ""

    @classmethod
    def firm(cls) -> Scope:
        return cls(kind=ScopeKind.FIRM)

    @classmethod
    def strategy(cls, strategy_id: str) -> Scope:
        return cls(kind=ScopeKind.STRATEGY, name=strategy_id)

    @classmethod
    def instrument(cls, symbol: str) -> Scope:
        return cls(kind=ScopeKind.INSTRUMENT, name=symbol)

    def _check(self) -> None:
        if self.kind == ScopeKind.FIRM:
            if self.name:
                raise _error(
                    ProtocolErrorCode.INVALID_FIELD, self, "name", f"FIRM scope has no name, got {self.name!r}"
                )
        elif not self.name:
            raise _error(ProtocolErrorCode.INVALID_FIELD, self, "name", f"{self.kind.name} scope needs a name")
        elif self.kind == ScopeKind.INSTRUMENT and len(self.name) > SYMBOL_MAX_LENGTH:
            raise _error(ProtocolErrorCode.FIELD_TOO_LONG, self, "name", f"symbol longer than {SYMBOL_MAX_LENGTH}")


class RiskLimits(_Struct, frozen=True, kw_only=True):
    """Pre-trade risk limits for one scope. None = no limit at this scope (tighter scopes still apply).

    Quantities are in instrument units, money in the instrument's (or, at FIRM scope, the firm's) currency.
    `price_collar_pct` is a percentage (Decimal("5") = 5 %) around the reference price; `price_collar_ticks`
    an absolute band; both may be set and the tighter wins. Rates count within `rate_window_ns`.
    """

    max_order_quantity: Dec | None = None
    max_order_notional: Dec | None = None
    price_collar_pct: Dec | None = None
    price_collar_ticks: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    max_position: Dec | None = None
    max_gross_exposure: Dec | None = None
    max_net_exposure: Dec | None = None
    max_open_orders: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    max_orders_per_window: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    max_messages_per_window: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    rate_window_ns: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    duplicate_window_ns: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    max_daily_loss: Dec | None = None
    restricted_symbols: Annotated[tuple[Symbol, ...], Meta(max_length=1024)] = ()

    _DECIMALS: ClassVar[tuple[str, ...]] = (
        "max_order_quantity",
        "max_order_notional",
        "price_collar_pct",
        "max_position",
        "max_gross_exposure",
        "max_net_exposure",
        "max_daily_loss",
    )

    def _check(self) -> None:
        for name in self._DECIMALS:
            value = getattr(self, name)
            if value is not None:
                _check_decimal(self, name, value, ProtocolErrorCode.INVALID_FIELD, _NON_NEGATIVE)
        pct = self.price_collar_pct
        if pct is not None and (pct.is_zero() or pct > 100):
            # A 0 % collar denies every order and one above 100 % lets a sell through at a negative price: both are
            # typing mistakes (0.5 meant as 50?), not limits.
            raise _error(ProtocolErrorCode.INVALID_FIELD, self, "price_collar_pct", f"must be in (0, 100], got {pct}")
        if (self.max_orders_per_window is not None or self.max_messages_per_window is not None) and (
            self.rate_window_ns is None
        ):
            raise _error(ProtocolErrorCode.INVALID_FIELD, self, "rate_window_ns", "a rate limit needs a window")
        _check_strings(self, "restricted_symbols", self.restricted_symbols, SYMBOL_MAX_LENGTH)
        if len(set(self.restricted_symbols)) != len(self.restricted_symbols):
            raise _error(ProtocolErrorCode.INVALID_FIELD, self, "restricted_symbols", "duplicate symbol")


class TriggerSettings(_Struct, frozen=True, kw_only=True):
    """Automatic kill-switch triggers of one scope (the wire form of `engine.trading_state.TriggerConfig`). None
    disables a trigger; each trips the scope into its `*_action` (REDUCING or HALTED) when reached:
    - `daily_loss`: daily P&L <= -daily_loss (money, >= 0); `drawdown`: peak-to-trough drawdown >= drawdown;
    - `reject_rate`: venue rejects / orders sent within `reject_rate_window_ns` >= reject_rate, in (0, 1], once
      `reject_rate_min_orders` orders were sent in the window;
    - `heartbeat_timeout_ns`: no console heartbeat for that long (FIRM scope only).
    Which scope may carry which trigger (no P&L triggers on an instrument, the heartbeat on the firm only) is the
    engine's check: `SetTriggers` is refused with STATE_BAD_TRIGGER_CONFIG otherwise."""

    daily_loss: Dec | None = None
    daily_loss_action: TradingState = TradingState.HALTED
    drawdown: Dec | None = None
    drawdown_action: TradingState = TradingState.HALTED
    reject_rate: Dec | None = None
    reject_rate_window_ns: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    reject_rate_min_orders: PositiveCount = 1
    reject_rate_action: TradingState = TradingState.HALTED
    heartbeat_timeout_ns: Annotated[int, Meta(ge=1, le=MAX_INT64)] | None = None
    heartbeat_action: TradingState = TradingState.HALTED

    def _check(self) -> None:
        for name in ("daily_loss", "drawdown", "reject_rate"):
            value = getattr(self, name)
            if value is not None:
                _check_decimal(self, name, value, ProtocolErrorCode.INVALID_FIELD, _NON_NEGATIVE)
        for name in ("daily_loss_action", "drawdown_action", "reject_rate_action", "heartbeat_action"):
            if getattr(self, name) == TradingState.ACTIVE:
                raise _error(ProtocolErrorCode.INVALID_FIELD, self, name, "a trigger acts by REDUCING or HALTED")
        rate = self.reject_rate
        if rate is not None:
            if rate.is_zero() or rate > 1:
                raise _error(ProtocolErrorCode.INVALID_FIELD, self, "reject_rate", f"must be in (0, 1], got {rate}")
            if self.reject_rate_window_ns is None:
                raise _error(ProtocolErrorCode.INVALID_FIELD, self, "reject_rate_window_ns", "a rate needs a window")

    @property
    def empty(self) -> bool:
        """No trigger set: the scope's triggers are removed."""
        return (
            self.daily_loss is None
            and self.drawdown is None
            and self.reject_rate is None
            and self.heartbeat_timeout_ns is None
        )


class ScopeTriggerSettings(_Struct, frozen=True, kw_only=True):
    scope: Scope
    triggers: TriggerSettings


class ScopeTradingState(_Struct, frozen=True, kw_only=True):
    scope: Scope
    state: TradingState
    operator: OptionalId = ""
    reason: Text = ""


class ScopeLimits(_Struct, frozen=True, kw_only=True):
    scope: Scope
    limits: RiskLimits


class StrategySummary(_Struct, frozen=True, kw_only=True):
    strategy_id: Id
    state: StrategyState
    params: Params = {}
    params_version: Count = 0

    def _check(self) -> None:
        _check_params(self)


class OrderSummary(_Struct, frozen=True, kw_only=True):
    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    price: Ticks
    quantity: PositiveLots
    leaves_quantity: Lots
    cum_quantity: Lots
    venue_order_id: Count = 0


class PositionSummary(_Struct, frozen=True, kw_only=True):
    strategy_id: Id
    symbol: Symbol
    quantity: SignedLots
    avg_price: Dec = Decimal(0)
    realized_pnl: Dec = Decimal(0)
    unrealized_pnl: Dec = Decimal(0)
    fees: Dec = Decimal(0)  # cumulative commissions (negative = rebates); net P&L = realized + unrealized - fees

    def _check(self) -> None:
        for name in ("avg_price", "realized_pnl", "unrealized_pnl", "fees"):
            _check_decimal(self, name, getattr(self, name), ProtocolErrorCode.INVALID_FIELD, _SIGNED)


class PriceLevel(_Struct, frozen=True, kw_only=True):
    """One aggregated book level: price in ticks, total size in lots."""

    price: PositiveTicks
    size: PositiveLots


class ScopeUtilisation(_Struct, frozen=True, kw_only=True):
    """What one scope's limits are measured against right now, as the risk gate measures it (docs/risk.md).

    - `open_orders`: working orders in the scope (PENDING_NEW included: an order counts the moment it is sent);
    - `orders_in_window` / `messages_in_window`: new orders / all messages (orders, cancels, replaces, queries)
      sent within the last `rate_window_ns` (the scope's own window, else the 1 s retention);
    - `position`: the worst-case position in lots, current position plus every same-side working lot, for the
      symbol and side where it is largest in magnitude (`position_symbol`): an instrument scope's net position
      over all strategies, a strategy's own position per symbol, the firm's net per symbol; the gate compares
      exactly this with `max_position`;
    - `gross_exposure` / `net_exposure`: positions valued at the mark plus, worst case over symbols and sides,
      the working orders that would grow them (net: signed, the side that moves it furthest from zero);
    - `working_buy` / `working_sell`: working lots per side, and `working_exposure` their gross value;
    - `daily_pnl`: realized plus unrealized since the start of the trading day (firm and strategy scopes; an
      instrument scope sums its strategies' P&L in that symbol).
    Money is in the firm's currency."""

    scope: Scope
    open_orders: Count = 0
    orders_in_window: Count = 0
    messages_in_window: Count = 0
    rate_window_ns: Count = 0
    position: SignedLots = 0
    position_symbol: OptionalSymbol = ""
    working_buy: Lots = 0
    working_sell: Lots = 0
    gross_exposure: Dec = Decimal(0)
    net_exposure: Dec = Decimal(0)
    working_exposure: Dec = Decimal(0)
    daily_pnl: Dec = Decimal(0)
    position_quantity: Dec = Decimal(0)  # `position` in instrument units of `position_symbol`, as `max_position` is

    def _check(self) -> None:
        for name in ("gross_exposure", "working_exposure"):
            _check_decimal(self, name, getattr(self, name), ProtocolErrorCode.INVALID_FIELD, _NON_NEGATIVE)
        for name in ("net_exposure", "daily_pnl", "position_quantity"):
            _check_decimal(self, name, getattr(self, name), ProtocolErrorCode.INVALID_FIELD, _SIGNED)


# --- engine -> venue commands (int ticks and lots) --------------------------------------------------------------


class VenuePlaceOrder(_Message, frozen=True, kw_only=True):
    """New order. `price` is 0 for MARKET and positive for LIMIT; post-only applies to LIMIT only."""

    client_order_id: Id
    account: Id
    symbol: Symbol
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: Ticks
    quantity: PositiveLots
    post_only: bool = False
    ts: Nanos = 0

    def _check(self) -> None:
        _check_order_shape(self, self.order_type, self.price > 0, self.price, self.post_only)


class VenueCancelOrder(_Message, frozen=True, kw_only=True):
    client_order_id: Id
    orig_client_order_id: Id
    account: Id
    symbol: Symbol
    ts: Nanos = 0


class VenueReplaceOrder(_Message, frozen=True, kw_only=True):
    client_order_id: Id
    orig_client_order_id: Id
    account: Id
    symbol: Symbol
    price: PositiveTicks
    quantity: PositiveLots
    ts: Nanos = 0


class VenueMassCancel(_Message, frozen=True, kw_only=True):
    """Cancel every open order of `account` on `symbol` ("" = all symbols)."""

    client_order_id: Id
    account: Id
    symbol: OptionalSymbol = ""
    ts: Nanos = 0


class VenueQueryOrder(_Message, frozen=True, kw_only=True):
    client_order_id: Id
    account: Id
    symbol: Symbol


class VenueRequestSnapshot(_Message, frozen=True, kw_only=True):
    """Ask for the book of `symbol`: `depth` levels per side, or every level when `depth` is FULL_DEPTH (0).

    On the wire 0 means "all levels", whereas the engine's books read `depth(0)` as "no levels" and `depth(None)` as
    all: the venue translates FULL_DEPTH to None and never hands a wire depth of 0 to a book. Answered by a
    `BookSnapshot`, or a `VenueCommandRejected` (UNKNOWN_SYMBOL) for a symbol the venue does not list.
    """

    symbol: Symbol
    depth: Count = 0  # FULL_DEPTH = every level


# --- venue -> engine events -------------------------------------------------------------------------------------


class ExecutionReport(_Message, frozen=True, kw_only=True):
    """Order state change at the venue (FIX 35=8 semantics; `exec_type` is tag 150, `status` tag 39)."""

    exec_id: Id
    client_order_id: Id
    orig_client_order_id: OptionalId = ""
    venue_order_id: Count
    account: Id
    symbol: Symbol
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    exec_type: ExecType
    status: OrderStatus
    price: Ticks
    quantity: Lots
    last_price: Ticks = 0
    last_quantity: Lots = 0
    leaves_quantity: Lots
    cum_quantity: Lots
    is_maker: bool = False
    reason_code: OptionalCode = ""
    text: Text = ""
    ts: Nanos

    def _check(self) -> None:
        if self.exec_type == ExecType.TRADE and (self.last_quantity <= 0 or self.last_price <= 0):
            raise _error(ProtocolErrorCode.INVALID_FIELD, self, "last_quantity", "a TRADE report needs a fill")


class MassCancelReport(_Message, frozen=True, kw_only=True):
    """The venue canceled these open orders of `account` for mass cancel `client_order_id` (FIX 35=r
    OrderMassCancelReport with its AffectedOrdGrp: tag 41 and 535 per order). One message for the whole kill, in
    place of one CANCELED ExecutionReport per order: each order is named by the client order id the venue knows it
    by and its venue order id, and is canceled for all its leaves. A refused mass cancel is still an ExecutionReport
    (CANCEL_REJECTED) or a VenueCommandRejected, never this. Market data the cancels caused follows it."""

    client_order_id: Id
    account: Id
    symbol: OptionalSymbol = ""
    canceled: tuple[tuple[Id, Count], ...] = ()
    reason_code: OptionalCode = ""
    ts: Nanos

    def _check(self) -> None:
        for order_id, venue_order_id in self.canceled:
            if not (0 < len(order_id) <= ID_MAX_LENGTH) or not (0 <= venue_order_id <= MAX_INT64):
                raise _error(
                    ProtocolErrorCode.INVALID_FIELD, self, "canceled", f"bad order {(order_id, venue_order_id)!r}"
                )


class BookDeltas(_Message, frozen=True, kw_only=True):
    """Level changes: each delta is (side, price, new total size at that price); size 0 removes the level.
    `seq` is the symbol's market-data sequence number, shared with `TradePrinted`, contiguous from 1."""

    symbol: Symbol
    seq: Seq
    ts: Nanos
    deltas: tuple[Delta, ...]

    def _check(self) -> None:
        for side, price, size in self.deltas:
            if side not in SIDES or not (0 <= price <= MAX_INT64) or not (0 <= size <= MAX_INT64):
                raise _error(ProtocolErrorCode.INVALID_FIELD, self, "deltas", f"bad delta {(side, price, size)!r}")


class TradePrinted(_Message, frozen=True, kw_only=True):
    symbol: Symbol
    seq: Seq
    ts: Nanos
    trade_id: Count
    price: PositiveTicks
    quantity: PositiveLots
    aggressor: Side


class BookSnapshot(_Message, frozen=True, kw_only=True):
    """The whole book (or `depth` levels of it) as of market-data sequence number `seq` (0 = before any)."""

    symbol: Symbol
    seq: Count
    ts: Nanos
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    def _check(self) -> None:
        _check_levels(self, "bids", self.bids, -1)
        _check_levels(self, "asks", self.asks, 1)


class VenueCommandRejected(_Message, frozen=True, kw_only=True):
    """The venue could not act on a command and no ExecutionReport can say so (FIX BusinessMessageReject, 35=j):
    a snapshot request for a symbol it does not list, an order command whose ids cannot be echoed in a report
    (empty or too long), or an object that is not a venue command. Nothing changed at the venue.

    `command` is the refused message's type name; `client_order_id` and `symbol` echo the command's when they are
    valid protocol values, else they are empty (the `reason` then says what was wrong)."""

    command: Code
    code: Code
    symbol: OptionalSymbol = ""
    client_order_id: OptionalId = ""
    reason: Text = ""
    ts: Nanos = 0


# --- console -> engine commands (each gets exactly one reply) -------------------------------------------------


class _Command(_Message, frozen=True, kw_only=True):
    """A command: `command_id` makes it idempotent (a repeat gets the first reply), `operator` is the
    authenticated user it is executed for, `ts` when the console sent it."""

    command_id: Id
    operator: Id
    ts: Nanos


class SubmitOrder(_Command, frozen=True, kw_only=True):
    """New order in instrument units. LIMIT needs a positive `price`; MARKET has `price=None`."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Dec
    price: Dec | None = None
    post_only: bool = False

    def _check(self) -> None:
        _check_decimal(self, "quantity", self.quantity, ProtocolErrorCode.NON_POSITIVE_QUANTITY, _POSITIVE)
        if self.price is not None:
            _check_decimal(self, "price", self.price, ProtocolErrorCode.NON_POSITIVE_PRICE, _POSITIVE)
        _check_order_shape(self, self.order_type, self.price is not None, self.price, self.post_only)


class CancelOrder(_Command, frozen=True, kw_only=True):
    client_order_id: Id
    symbol: Symbol


class ReplaceOrder(_Command, frozen=True, kw_only=True):
    """Change price and/or quantity of `orig_client_order_id`; the order is known as `client_order_id` after."""

    client_order_id: Id
    orig_client_order_id: Id
    symbol: Symbol
    price: Dec
    quantity: Dec

    def _check(self) -> None:
        _check_decimal(self, "quantity", self.quantity, ProtocolErrorCode.NON_POSITIVE_QUANTITY, _POSITIVE)
        _check_decimal(self, "price", self.price, ProtocolErrorCode.NON_POSITIVE_PRICE, _POSITIVE)


class CancelAllOrders(_Command, frozen=True, kw_only=True):
    scope: Scope


class SetLimits(_Command, frozen=True, kw_only=True):
    """Replace the whole limit set of `scope` (not a patch: fields left None remove that limit there)."""

    scope: Scope
    limits: RiskLimits


class SetTriggers(_Command, frozen=True, kw_only=True):
    """Replace the automatic triggers of `scope` (not a patch; every threshold None removes them). Latches of
    triggers that stay configured are kept: reconfiguring is not a way around a tripped trigger."""

    scope: Scope
    triggers: TriggerSettings


class HaltTrading(_Command, frozen=True, kw_only=True):
    """Kill switch: HALTED denies every new order in `scope` and cancels its open orders."""

    scope: Scope
    reason: Reason


class ReduceTrading(_Command, frozen=True, kw_only=True):
    """REDUCING: only orders that reduce the position are allowed in `scope`."""

    scope: Scope
    reason: Reason


class ResumeTrading(_Command, frozen=True, kw_only=True):
    scope: Scope
    reason: Reason


class StartStrategy(_Command, frozen=True, kw_only=True):
    strategy_id: Id


class StopStrategy(_Command, frozen=True, kw_only=True):
    strategy_id: Id
    reason: Text = ""
    cancel_orders: bool = True


class UpdateStrategyParams(_Command, frozen=True, kw_only=True):
    """New parameter version for a strategy. `base_version`, when set, makes it compare-and-set: the engine
    rejects it if the current version differs, so two operators cannot silently overwrite each other."""

    strategy_id: Id
    params: Params
    base_version: Annotated[int, Meta(ge=0, le=MAX_INT64)] | None = None
    reason: Text = ""  # why the operator changed them; carried into StrategyParamsChanged for the history

    def _check(self) -> None:
        _check_params(self)


class RollbackStrategyParams(_Command, frozen=True, kw_only=True):
    """Re-apply the parameters of an earlier `version` (creating a new version); `base_version` is compare-and-set
    as for `UpdateStrategyParams`."""

    strategy_id: Id
    version: PositiveCount
    reason: Text = ""
    base_version: Annotated[int, Meta(ge=0, le=MAX_INT64)] | None = None


class Heartbeat(_Command, frozen=True, kw_only=True):
    last_seq: Count = 0  # last event sequence number the console has seen, so the engine can spot a lagging reader


class RequestReplay(_Command, frozen=True, kw_only=True):
    """Resend published events from `from_seq` on; answered by `ReplayBatch` or `CommandRejected`."""

    from_seq: Seq


class RequestStateSnapshot(_Command, frozen=True, kw_only=True):
    """Answered by `StateSnapshot`."""


class QueryVenueOrders(_Command, frozen=True, kw_only=True):
    """Ask the venue the status of every working order in `scope` (FIX OrderStatusRequest, 35=H). Answered by
    `CommandAccepted`; then one `VenueOrderStatus` per answer and a final `VenueStatusComplete` once every order
    is answered or `timeout_ns` (engine clock; 0 = the engine's `venue_query_timeout_ns`) has passed."""

    scope: Scope
    timeout_ns: Count = 0


# --- engine -> console events (published inside EventEnvelope) -------------------------------------------------


class OrderSubmitted(_Message, frozen=True, kw_only=True):
    """The engine accepted the order (risk passed) and sent it to the venue."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: Ticks
    quantity: PositiveLots
    post_only: bool = False
    command_id: OptionalId = ""


class OrderAccepted(_Message, frozen=True, kw_only=True):
    """The venue acknowledged the order; it is working."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    venue_order_id: Count
    venue_ts: Nanos = 0


class OrderDenied(_Message, frozen=True, kw_only=True):
    """The engine refused the order before it reached the venue (risk, kill switch, unknown strategy...)."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    code: Code
    reason: Text = ""
    command_id: OptionalId = ""


class OrderRejected(_Message, frozen=True, kw_only=True):
    """The venue refused the order."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    code: Code
    reason: Text = ""
    venue_ts: Nanos = 0


class OrderCanceled(_Message, frozen=True, kw_only=True):
    """The order is gone; `code` says why when it was not the owner's request (MASS_CANCEL, SELF_TRADE, IOC...)."""

    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    canceled_quantity: Lots
    code: OptionalCode = ""
    venue_ts: Nanos = 0


class OrderExpired(_Message, frozen=True, kw_only=True):
    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    expired_quantity: Lots
    venue_ts: Nanos = 0


class OrderReplaced(_Message, frozen=True, kw_only=True):
    strategy_id: Id
    client_order_id: Id
    orig_client_order_id: Id
    symbol: Symbol
    price: Ticks
    quantity: PositiveLots
    leaves_quantity: Lots
    venue_ts: Nanos = 0


class CancelRejected(_Message, frozen=True, kw_only=True):
    """The venue refused a cancel or replace of `orig_client_order_id`; the order is unchanged."""

    strategy_id: Id
    client_order_id: Id
    orig_client_order_id: Id
    symbol: Symbol
    code: Code
    reason: Text = ""
    venue_ts: Nanos = 0


class OrderFilled(_Message, frozen=True, kw_only=True):
    strategy_id: Id
    client_order_id: Id
    symbol: Symbol
    side: Side
    exec_id: Id
    venue_order_id: Count
    last_price: PositiveTicks
    last_quantity: PositiveLots
    leaves_quantity: Lots
    cum_quantity: PositiveLots
    is_maker: bool = False
    commission: Dec = Decimal(0)
    venue_ts: Nanos = 0

    def _check(self) -> None:
        _check_decimal(self, "commission", self.commission, ProtocolErrorCode.INVALID_FIELD, _SIGNED)


class PositionChanged(_Message, frozen=True, kw_only=True):
    """`quantity` is the signed position in lots (short < 0)."""

    strategy_id: Id
    symbol: Symbol
    quantity: SignedLots
    avg_price: Dec
    realized_pnl: Dec
    fees: Dec = Decimal(0)  # cumulative commissions of this strategy in this symbol (not in realized_pnl)

    def _check(self) -> None:
        _check_decimal(self, "avg_price", self.avg_price, ProtocolErrorCode.INVALID_FIELD, _NON_NEGATIVE)
        _check_decimal(self, "realized_pnl", self.realized_pnl, ProtocolErrorCode.INVALID_FIELD, _SIGNED)
        _check_decimal(self, "fees", self.fees, ProtocolErrorCode.INVALID_FIELD, _SIGNED)


class PnlUpdated(_Message, frozen=True, kw_only=True):
    scope: Scope
    realized_pnl: Dec
    unrealized_pnl: Dec
    currency: Annotated[str, Meta(max_length=16)] = ""
    fees: Dec = Decimal(0)  # cumulative commissions in the scope (not in realized_pnl)

    def _check(self) -> None:
        _check_decimal(self, "realized_pnl", self.realized_pnl, ProtocolErrorCode.INVALID_FIELD, _SIGNED)
        _check_decimal(self, "unrealized_pnl", self.unrealized_pnl, ProtocolErrorCode.INVALID_FIELD, _SIGNED)
        _check_decimal(self, "fees", self.fees, ProtocolErrorCode.INVALID_FIELD, _SIGNED)


class TradingStateChanged(_Message, frozen=True, kw_only=True):
    """Kill-switch transition. `operator` is empty when the engine tripped it itself; `code` then says why."""

    scope: Scope
    state: TradingState
    previous: TradingState
    reason: Reason
    operator: OptionalId = ""
    code: OptionalCode = ""
    command_id: OptionalId = ""


class LimitsChanged(_Message, frozen=True, kw_only=True):
    scope: Scope
    limits: RiskLimits
    operator: Id
    command_id: OptionalId = ""


class TriggersChanged(_Message, frozen=True, kw_only=True):
    """Triggers now in force for `scope` (after a `SetTriggers`)."""

    scope: Scope
    triggers: TriggerSettings
    operator: Id
    command_id: OptionalId = ""


class StrategyStateChanged(_Message, frozen=True, kw_only=True):
    strategy_id: Id
    state: StrategyState
    previous: StrategyState
    operator: OptionalId = ""
    reason: Text = ""
    command_id: OptionalId = ""


class StrategyParamsChanged(_Message, frozen=True, kw_only=True):
    """Parameters now in force. `rolled_back_to` is the earlier version they were copied from (0 = new)."""

    strategy_id: Id
    params: Params
    version: PositiveCount
    operator: Id
    rolled_back_to: Count = 0
    command_id: OptionalId = ""
    reason: Text = ""

    def _check(self) -> None:
        _check_params(self)


class TopOfBookChanged(_Message, frozen=True, kw_only=True):
    """Best bid/ask in ticks and lots; an empty side has price 0 and size 0."""

    symbol: Symbol
    bid_price: Ticks
    bid_size: Lots
    ask_price: Ticks
    ask_size: Lots
    venue_ts: Nanos = 0


class EngineHeartbeat(_Message, frozen=True, kw_only=True):
    """Sent every `interval_ns`; a console missing a few of them treats the engine as down."""

    interval_ns: PositiveCount
    firm_state: TradingState


class MarketTrade(_Message, frozen=True, kw_only=True):
    """A public trade printed by the venue (ours included), from its `TradePrinted`."""

    symbol: Symbol
    price: PositiveTicks
    quantity: PositiveLots
    aggressor: Side
    venue_ts: Nanos = 0
    trade_id: Count = 0


class BookDepth(_Message, frozen=True, kw_only=True):
    """The top `depth_levels` (10) levels per side, best first; sent at most every `depth_interval_ns` per symbol
    and only when the book changed since the last one. An empty side is an empty tuple."""

    symbol: Symbol
    bids: Annotated[tuple[PriceLevel, ...], Meta(max_length=MAX_DEPTH_LEVELS)] = ()
    asks: Annotated[tuple[PriceLevel, ...], Meta(max_length=MAX_DEPTH_LEVELS)] = ()
    venue_ts: Nanos = 0

    def _check(self) -> None:
        _check_levels(self, "bids", [(level.price, level.size) for level in self.bids], -1)
        _check_levels(self, "asks", [(level.price, level.size) for level in self.asks], 1)
        for name in ("bids", "asks"):
            if len(getattr(self, name)) > MAX_DEPTH_LEVELS:
                raise _error(ProtocolErrorCode.INVALID_FIELD, self, name, f"more than {MAX_DEPTH_LEVELS} levels")


class HaltCompleted(_Message, frozen=True, kw_only=True):
    """Every order that was working in `scope` when it was HALTED is now closed at the venue: canceled
    (`orders_canceled`), or filled / expired / rejected before the cancel reached it (`orders_closed_otherwise`).
    `elapsed_ns` is engine-clock time from the halt (the `HaltTrading` command, or the automatic trigger) to the
    last acknowledgement; 0 orders gives an immediate HaltCompleted with elapsed 0. `command_id` is the
    HaltTrading's, empty for an automatic trigger (whose reason code is then in `code`)."""

    scope: Scope
    orders_canceled: Count
    elapsed_ns: Nanos
    command_id: OptionalId = ""
    orders_closed_otherwise: Count = 0
    code: OptionalCode = ""


class RiskUtilisation(_Message, frozen=True, kw_only=True):
    """Every `utilisation_interval_ns`: the firm, then every strategy and instrument scope that has limits."""

    scopes: tuple[ScopeUtilisation, ...]


class VenueOrderStatus(_Message, frozen=True, kw_only=True):
    """The venue's answer about one order asked for by `QueryVenueOrders` (`command_id`). `known` is False when
    the venue does not know the order (status REJECTED, quantities 0); the `engine_*` fields are the engine's own
    view when it asked, so a difference is a reconciliation break (the engine then adopts the venue's view, as it
    does for any status report)."""

    command_id: Id
    client_order_id: Id
    strategy_id: Id
    symbol: Symbol
    status: OrderStatus
    leaves_quantity: Lots
    cum_quantity: Lots
    venue_order_id: Count = 0
    known: bool = True
    engine_status: OrderStatus | None = None
    engine_leaves_quantity: Lots = 0
    engine_cum_quantity: Lots = 0
    code: OptionalCode = ""
    venue_ts: Nanos = 0


class VenueStatusComplete(_Message, frozen=True, kw_only=True):
    """End of a `QueryVenueOrders`: `requested` queries sent, `answered` answers received. When `timed_out` the
    engine stopped waiting; `unanswered` lists the client order ids with no answer (refused or timed out)."""

    command_id: Id
    requested: Count
    answered: Count
    timed_out: bool = False
    unanswered: Annotated[tuple[Id, ...], Meta(max_length=100_000)] = ()

    def _check(self) -> None:
        _check_strings(self, "unanswered", self.unanswered, ID_MAX_LENGTH)


Event = (
    OrderSubmitted
    | OrderAccepted
    | OrderDenied
    | OrderRejected
    | OrderCanceled
    | OrderExpired
    | OrderReplaced
    | CancelRejected
    | OrderFilled
    | PositionChanged
    | PnlUpdated
    | TradingStateChanged
    | LimitsChanged
    | StrategyStateChanged
    | StrategyParamsChanged
    | TopOfBookChanged
    | EngineHeartbeat
    | MarketTrade
    | BookDepth
    | HaltCompleted
    | RiskUtilisation
    | VenueOrderStatus
    | VenueStatusComplete
    | TriggersChanged
)


class EventEnvelope(_Message, frozen=True, kw_only=True):
    """One event on the PUB stream. `seq` is engine-wide, contiguous from 1: a gap means lost events
    (recover with `RequestReplay(from_seq=last_seen + 1)`)."""

    engine_id: Id
    seq: Seq
    ts: Nanos
    event: Event


# --- engine -> console replies (exactly one per command) -------------------------------------------------------


class CommandAccepted(_Message, frozen=True, kw_only=True):
    """The command was applied. `event_seq` is the sequence number of the last event it caused (0 if none),
    so the console can wait for its PUB stream to reach it; the other fields summarise the resulting state
    where the command has one (0 / None when not applicable)."""

    command_id: Id
    ts: Nanos
    event_seq: Count = 0
    client_order_id: OptionalId = ""
    trading_state: TradingState | None = None
    strategy_state: StrategyState | None = None
    params_version: Count = 0


class CommandRejected(_Message, frozen=True, kw_only=True):
    """The command was not applied. `command_id` is empty when the command could not even be decoded."""

    command_id: OptionalId
    ts: Nanos
    code: Code
    reason: Text = ""


class ReplayBatch(_Message, frozen=True, kw_only=True):
    """Reply to `RequestReplay`: events from `from_seq` on, in order. `complete` is False when the batch was
    cut short; ask again from the last seq + 1. `last_seq` is the newest seq at the time of the reply."""

    command_id: Id
    from_seq: Seq
    last_seq: Count
    events: tuple[EventEnvelope, ...]
    complete: bool = True


class StateSnapshot(_Message, frozen=True, kw_only=True):
    """Reply to `RequestStateSnapshot`: the engine state including every event up to `seq`; the console
    resumes the PUB stream at `seq + 1`."""

    command_id: Id
    engine_id: Id
    seq: Count
    ts: Nanos
    trading_states: tuple[ScopeTradingState, ...] = ()
    limits: tuple[ScopeLimits, ...] = ()
    strategies: tuple[StrategySummary, ...] = ()
    orders: tuple[OrderSummary, ...] = ()
    positions: tuple[PositionSummary, ...] = ()
    utilisation: tuple[ScopeUtilisation, ...] = ()
    triggers: tuple[ScopeTriggerSettings, ...] = ()


VenueCommand = (
    VenuePlaceOrder | VenueCancelOrder | VenueReplaceOrder | VenueMassCancel | VenueQueryOrder | VenueRequestSnapshot
)
VenueEvent = ExecutionReport | BookDeltas | TradePrinted | BookSnapshot | VenueCommandRejected | MassCancelReport
Command = (
    SubmitOrder
    | CancelOrder
    | ReplaceOrder
    | CancelAllOrders
    | SetLimits
    | HaltTrading
    | ReduceTrading
    | ResumeTrading
    | StartStrategy
    | StopStrategy
    | UpdateStrategyParams
    | RollbackStrategyParams
    | Heartbeat
    | RequestReplay
    | RequestStateSnapshot
    | QueryVenueOrders
    | SetTriggers
)
Reply = CommandAccepted | CommandRejected | ReplayBatch | StateSnapshot
Message = VenueCommand | VenueEvent | Command | Reply | EventEnvelope | Event

VENUE_COMMAND_TYPES: tuple[type[_Message], ...] = get_args(VenueCommand)
VENUE_EVENT_TYPES: tuple[type[_Message], ...] = get_args(VenueEvent)
COMMAND_TYPES: tuple[type[_Message], ...] = get_args(Command)
REPLY_TYPES: tuple[type[_Message], ...] = get_args(Reply)
EVENT_TYPES: tuple[type[_Message], ...] = get_args(Event)
MESSAGE_TYPES: tuple[type[_Message], ...] = get_args(Message)
_VALUE_TYPES = (
    Scope,
    RiskLimits,
    ScopeTradingState,
    ScopeLimits,
    StrategySummary,
    OrderSummary,
    PositionSummary,
    PriceLevel,
    ScopeUtilisation,
    TriggerSettings,
    ScopeTriggerSettings,
)
_TAGS = frozenset(cls.__name__ for cls in MESSAGE_TYPES)


# --- structural validation helpers ---------------------------------------------------------------------------


def _error(code: ProtocolErrorCode, obj: object, field: str, detail: str) -> ProtocolError:
    return ProtocolError(code, f"{type(obj).__name__}.{field}: {detail}")


_POSITIVE, _NON_NEGATIVE, _SIGNED = "positive", "non-negative", "signed"


def _check_decimal(obj: object, name: str, value: Decimal, code: ProtocolErrorCode, sign: str) -> None:
    """A finite Decimal within DECIMAL_* bounds, with the required `sign` (`code` when the sign is wrong).

    Written with Decimal's own predicates (is_zero, is_signed) rather than comparisons against 0: it runs for
    every money field of every fill and position event, and the predicates cost a fraction of a mixed compare.
    """
    try:
        finite = value.is_finite()
    except AttributeError:  # not a Decimal (float, int, None...): types are only checked by msgspec on decode
        finite = False
    if not finite:
        raise _error(ProtocolErrorCode.INVALID_FIELD, obj, name, f"expected a finite decimal, got {value!r}")
    zero = value.is_zero()
    if not zero and value.adjusted() > DECIMAL_MAX_ADJUSTED_EXPONENT:
        raise _error(ProtocolErrorCode.INVALID_FIELD, obj, name, f"decimal {value} out of range")
    if sign is _POSITIVE and (zero or value.is_signed()):
        raise _error(code, obj, name, f"must be positive, got {value}")
    if sign is _NON_NEGATIVE and value.is_signed() and not zero:
        raise _error(code, obj, name, f"must not be negative, got {value}")


def _check_order_shape(obj: object, order_type: OrderType, has_price: bool, price: object, post_only: bool) -> None:
    if order_type == OrderType.LIMIT and not has_price:
        raise _error(
            ProtocolErrorCode.NON_POSITIVE_PRICE, obj, "price", f"a LIMIT order needs a positive price, got {price}"
        )
    if order_type == OrderType.MARKET:
        if has_price:
            raise _error(ProtocolErrorCode.INVALID_FIELD, obj, "price", f"a MARKET order has no price, got {price}")
        if post_only:
            raise _error(ProtocolErrorCode.INVALID_FIELD, obj, "post_only", "a MARKET order cannot be post-only")


def _check_levels(obj: object, name: str, levels: Any, sign: int) -> None:
    """Book levels (price, size) strictly ordered best first (bids descending: sign -1, asks ascending: +1): a
    reader loads them as they come, so a repeated price would silently overwrite a level and an unsorted side
    would misplace the top."""
    previous = None
    for price, size in levels:
        if not (1 <= price <= MAX_INT64):
            code = ProtocolErrorCode.NON_POSITIVE_PRICE if price < 1 else ProtocolErrorCode.INVALID_FIELD
            raise _error(code, obj, name, f"bad level price {(price, size)!r}")
        if not (1 <= size <= MAX_INT64):
            # INVALID_FIELD, as the decoder reports it (msgspec checks PositiveLots inside the tuple).
            raise _error(ProtocolErrorCode.INVALID_FIELD, obj, name, f"bad level size {(price, size)!r}")
        if previous is not None and (price - previous) * sign <= 0:
            order = "descending" if sign < 0 else "ascending"
            raise _error(
                ProtocolErrorCode.INVALID_FIELD,
                obj,
                name,
                f"level price {price} after {previous}: {name} must be strictly {order}",
            )
        previous = price


def _check_strings(obj: object, name: str, values: tuple[str, ...], max_length: int) -> None:
    for value in values:
        if not isinstance(value, str) or not value:
            raise _error(ProtocolErrorCode.INVALID_FIELD, obj, name, f"expected non-empty strings, got {value!r}")
        if len(value) > max_length:
            raise _error(ProtocolErrorCode.FIELD_TOO_LONG, obj, name, f"{value[:20]!r}... longer than {max_length}")


def _check_params(obj: Any) -> None:
    """Strategy parameters: bounded str keys; values bool, int64, bounded str or finite Decimal.

    Copies the dict (a caller keeping a reference cannot change a frozen message afterwards) and tags Decimal
    values so they travel as an Ext and come back as Decimal, not str."""
    params = obj.params
    if not isinstance(params, dict):
        raise _error(ProtocolErrorCode.INVALID_FIELD, obj, "params", f"expected a dict, got {type(params).__name__}")
    if len(params) > MAX_PARAMS:
        raise _error(ProtocolErrorCode.INVALID_FIELD, obj, "params", f"more than {MAX_PARAMS} parameters")
    checked: dict[str, ParamValue] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise _error(ProtocolErrorCode.INVALID_FIELD, obj, "params", f"bad parameter name {key!r}")
        if len(key) > ID_MAX_LENGTH:
            raise _error(ProtocolErrorCode.FIELD_TOO_LONG, obj, f"params[{key[:20]!r}...]", "name too long")
        kind = type(value)
        if kind is bool:
            pass
        elif kind is int:
            if not -MAX_INT64 <= value <= MAX_INT64:
                raise _error(ProtocolErrorCode.INVALID_FIELD, obj, f"params[{key!r}]", "integer out of int64 range")
        elif kind is str:
            if len(value) > PARAM_TEXT_MAX_LENGTH:
                raise _error(ProtocolErrorCode.FIELD_TOO_LONG, obj, f"params[{key!r}]", "text too long")
        elif isinstance(value, Decimal):
            _check_decimal(obj, f"params[{key!r}]", value, ProtocolErrorCode.INVALID_FIELD, _SIGNED)
            checked[key] = value if kind is _ParamDecimal else _ParamDecimal(value)
            continue
        else:
            raise _error(
                ProtocolErrorCode.INVALID_FIELD,
                obj,
                f"params[{key!r}]",
                f"expected Decimal, int, str or bool, got {kind.__name__}",
            )
        checked[key] = value
    msgspec.structs.force_setattr(obj, "params", checked)


def _bound_code(field: str) -> ProtocolErrorCode:
    """The reason code for a value below its lower bound: quantities and prices get their own."""
    if field.endswith(("quantity", "size")):
        return ProtocolErrorCode.NON_POSITIVE_QUANTITY
    if field.endswith("price"):
        return ProtocolErrorCode.NON_POSITIVE_PRICE
    return ProtocolErrorCode.INVALID_FIELD


def _range_error(obj: object, field: str, value: Any, low: int | None, high: int | None) -> ProtocolError:
    """The error for an int outside [low, high] or a str whose length is; runs only on the failure path."""
    if isinstance(value, str):
        if high is not None and len(value) > high:
            return _error(ProtocolErrorCode.FIELD_TOO_LONG, obj, field, f"longer than {high} characters")
        return _error(ProtocolErrorCode.INVALID_FIELD, obj, field, "must not be empty")
    if low is not None and value < low:
        return _error(_bound_code(field), obj, field, f"must be >= {low}, got {value}")
    return _error(ProtocolErrorCode.INVALID_FIELD, obj, field, f"must be <= {high}, got {value}")


def _install_validator(cls: type[_Struct]) -> None:
    """Give `cls` a `_validate` that enforces its Meta constraints and enum fields, then calls `_check`.

    Generated as straight-line code (as `dataclasses` generates `__init__`) because it runs on every message
    built or decoded, venue fills included, and one chained comparison per field is the cheapest check Python
    has. Only values are checked, not Python types: msgspec checks types on decode, and in-process callers are
    type-checked code (a wrong type fails with TypeError at the comparison).
    """
    body: list[str] = []
    namespace: dict[str, Any] = {"_range_error": _range_error, "_error": _error, "ProtocolErrorCode": ProtocolErrorCode}
    for field in msgspec.inspect.type_info(cls).fields:
        ftype, name = field.type, field.name
        optional = isinstance(ftype, msgspec.inspect.UnionType)
        if optional:
            members = [t for t in ftype.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(members) != 1:
                continue
            ftype = members[0]
        guard = f"self.{name} is not None and " if optional else ""
        if isinstance(ftype, msgspec.inspect.IntType):
            low = ftype.ge if ftype.ge is not None else (ftype.gt + 1 if ftype.gt is not None else None)
            high = ftype.le if ftype.le is not None else (ftype.lt - 1 if ftype.lt is not None else None)
            value = f"self.{name}"
        elif isinstance(ftype, msgspec.inspect.StrType):
            low, high, value = ftype.min_length or None, ftype.max_length, f"len(self.{name})"
        elif isinstance(ftype, msgspec.inspect.EnumType):
            namespace[f"_{name}_members"] = frozenset(ftype.cls)
            body.append(
                f"    if {guard}self.{name} not in _{name}_members: raise _error(ProtocolErrorCode.INVALID_FIELD, "
                f"self, {name!r}, f'{{self.{name}!r}} is not a {ftype.cls.__name__}')"
            )
            continue
        else:
            continue
        if low is None and high is None:
            continue
        bounds = " <= ".join(str(part) for part in (low, value, high) if part is not None)
        body.append(f"    if {guard}not ({bounds}): raise _range_error(self, {name!r}, self.{name}, {low!r}, {high!r})")
    body.append("    self._check()")
    source = "def _validate(self):\n" + "\n".join(body) + "\n"
    cls._validator_source = source  # kept for debugging: print(SomeMessage._validator_source)
    exec(compile(source, f"<{cls.__name__} validator>", "exec"), namespace)
    cls._validate = namespace["_validate"]


# Messages carrying a (scope, limits) pair, and the limits that are quantities in instrument units.
_LIMIT_HOLDERS = frozenset({SetLimits, LimitsChanged, ScopeLimits})
_LIMIT_QUANTITIES = ("max_order_quantity", "max_position")

# What `Codec.check` visits in each class, worked out once so decoding a fill does not walk all its fields.
_SYMBOL, _SCOPE_NAME, _SYMBOLS, _NESTED, _NESTED_MANY = range(5)


def _registry_plan(cls: type[_Struct]) -> tuple[tuple[str, int], ...]:
    def holds_struct(t: msgspec.inspect.Type) -> bool:
        members = t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)
        return any(isinstance(m, msgspec.inspect.StructType) for m in members)

    plan: list[tuple[str, int]] = []
    for field in msgspec.inspect.type_info(cls).fields:
        ftype = field.type
        if field.name == "symbol":
            # A rejection echoes the symbol it refused, which is typically one the registry does not know.
            if cls is not VenueCommandRejected:
                plan.append((field.name, _SYMBOL))
        elif cls is Scope and field.name == "name":
            plan.append((field.name, _SCOPE_NAME))
        elif field.name == "restricted_symbols":
            plan.append((field.name, _SYMBOLS))
        elif holds_struct(ftype):
            plan.append((field.name, _NESTED))
        elif isinstance(ftype, msgspec.inspect.VarTupleType) and holds_struct(ftype.item_type):
            plan.append((field.name, _NESTED_MANY))
    return tuple(plan)


_REGISTRY_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}
for _cls in (*_VALUE_TYPES, *MESSAGE_TYPES):
    _install_validator(_cls)
    _REGISTRY_PLANS[_cls] = _registry_plan(_cls)


# --- codec ------------------------------------------------------------------------------------------------------

_ERROR_RE = re.compile(r"^(?P<detail>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_TAG_RE = re.compile(r"^Invalid value '(?P<tag>.*)'$", re.DOTALL)
_FIELD_RE = re.compile(r"\.(\w+)(?:\[[^\]]*\])*$")


class _Header(msgspec.Struct):
    """Just the version, read only after a full decode failed, to report a version mismatch as such."""

    v: Any = PROTOCOL_VERSION  # Any: a version of the wrong type is still a version mismatch


def _enc_hook(obj: Any) -> Any:
    if type(obj) is _ParamDecimal:
        return msgspec.msgpack.Ext(_EXT_PARAM_DECIMAL, str(obj).encode("ascii"))
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code != _EXT_PARAM_DECIMAL:
        raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, f"unknown MessagePack ext type {code}")
    try:
        return _ParamDecimal(bytes(data).decode("ascii"))
    except (ValueError, ArithmeticError):
        raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, "strategy parameter is not a decimal") from None


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_HEADER_DECODER = msgspec.msgpack.Decoder(_Header)


def _translate(exc: msgspec.MsgspecError, data: bytes) -> ProtocolError:
    """Turn a msgspec error into a ProtocolError, keeping msgspec's sentence and path in the reason."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return ProtocolError(ProtocolErrorCode.MALFORMED, str(exc))
    try:
        header = _HEADER_DECODER.decode(data)
    except (msgspec.MsgspecError, ProtocolError):
        header = None
    # A message from another protocol version usually fails on its new or changed fields first; name the real
    # cause.
    if header is not None and header.v != PROTOCOL_VERSION:
        return ProtocolError(
            ProtocolErrorCode.UNSUPPORTED_VERSION, f"protocol version {header.v!r}, expected {PROTOCOL_VERSION}"
        )
    text = str(exc)
    match = _ERROR_RE.match(text)
    detail, path = match["detail"], match["path"] or "$"
    if detail.startswith("Object contains unknown field"):
        code = ProtocolErrorCode.UNKNOWN_FIELD
    elif detail.startswith("Object missing required field `type`"):
        code = ProtocolErrorCode.UNKNOWN_MESSAGE
    elif detail.startswith("Object missing required field"):
        code = ProtocolErrorCode.MISSING_FIELD
    elif detail.startswith("Expected `object`") and path == "$":
        code = ProtocolErrorCode.MALFORMED
    elif path.endswith(".type") and (tag := _TAG_RE.match(detail)):
        code = ProtocolErrorCode.UNEXPECTED_MESSAGE if tag["tag"] in _TAGS else ProtocolErrorCode.UNKNOWN_MESSAGE
    elif detail.startswith("Expected `str` of length <="):
        code = ProtocolErrorCode.FIELD_TOO_LONG
    elif (field := _FIELD_RE.search(path)) and re.match(r"^Expected `int` >=", detail):
        code = _bound_code(field[1])
    else:
        code = ProtocolErrorCode.INVALID_FIELD
    return ProtocolError(code, text if match["path"] else f"{text} - at `$`")


class Codec:
    """Encodes messages to MessagePack and decodes bytes back into validated messages.

    Safe to share between threads: it holds only immutable state and msgspec encoders/decoders built once, whose
    methods are thread-safe since msgspec 0.16 (msgspec PR #402). Only the outermost message's `v` is checked;
    messages nested in an envelope or a replay batch travel in that frame's version.
    """

    __slots__ = ("_decoders", "_instruments", "_max_bytes")

    def __init__(self, instruments: InstrumentRegistry, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._instruments = instruments
        self._max_bytes = max_message_bytes
        self._decoders = {
            kind: msgspec.msgpack.Decoder(union, ext_hook=_ext_hook)
            for kind, union in (
                ("message", Message),
                ("command", Command),
                ("reply", Reply),
                ("event", EventEnvelope),
                ("venue_command", VenueCommand),
                ("venue_event", VenueEvent),
            )
        }

    @property
    def instruments(self) -> InstrumentRegistry:
        return self._instruments

    def encode(self, msg: Message) -> bytes:
        """MessagePack bytes of `msg`. Registry checks are the receiver's job (see `check` to run them here)."""
        return _ENCODER.encode(msg)

    def decode(self, data: bytes) -> Message:
        """Any protocol message. Raises ProtocolError, and nothing else, for anything that is not one."""
        return self._decode(data, "message")

    def decode_command(self, data: bytes) -> Command:
        return self._decode(data, "command")

    def decode_reply(self, data: bytes) -> Reply:
        return self._decode(data, "reply")

    def decode_event(self, data: bytes) -> EventEnvelope:
        """One frame of the PUB stream."""
        return self._decode(data, "event")

    def decode_venue_command(self, data: bytes) -> VenueCommand:
        return self._decode(data, "venue_command")

    def decode_venue_event(self, data: bytes) -> VenueEvent:
        return self._decode(data, "venue_event")

    def _decode(self, data: bytes, kind: str) -> Any:
        try:
            if len(data) > self._max_bytes:
                raise ProtocolError(ProtocolErrorCode.MESSAGE_TOO_LARGE, f"{len(data)} bytes, limit {self._max_bytes}")
            try:
                msg = self._decoders[kind].decode(data)
            except msgspec.MsgspecError as exc:
                raise _translate(exc, data) from None
            if msg.v != PROTOCOL_VERSION:
                raise ProtocolError(
                    ProtocolErrorCode.UNSUPPORTED_VERSION, f"protocol version {msg.v!r}, expected {PROTOCOL_VERSION}"
                )
            self.check(msg)
            return msg
        except ProtocolError:
            raise
        except Exception as exc:
            # The decoder is the trust boundary: no sequence of bytes may take down the thread reading a socket.
            # Anything msgspec or the checks did not anticipate is reported as malformed input.
            raise ProtocolError(ProtocolErrorCode.MALFORMED, f"{type(exc).__name__}: {exc}") from exc

    # Registry checks ---------------------------------------------------------------------------------------

    def check(self, msg: msgspec.Struct) -> None:
        """Checks that need reference data: symbols are known, console order prices and quantities sit on the
        instrument's grid. Decoding runs it; call it before `encode` to refuse a bad message at the sender."""
        for field, action in _REGISTRY_PLANS[type(msg)]:
            value = getattr(msg, field)
            if action == _SYMBOL:
                if value:  # "" means "every symbol" where the field allows it (VenueMassCancel)
                    self._instrument(value, msg, field)
            elif action == _SCOPE_NAME:
                if msg.kind == ScopeKind.INSTRUMENT:
                    self._instrument(value, msg, field)
            elif action == _SYMBOLS:
                for symbol in value:
                    self._instrument(symbol, msg, field)
            elif action == _NESTED:
                if value is not None:
                    self.check(value)
            else:
                for item in value:
                    self.check(item)
        kind = type(msg)
        if kind is SubmitOrder or kind is ReplaceOrder:
            self.order_ticks(msg)
        elif kind in _LIMIT_HOLDERS and msg.scope.kind == ScopeKind.INSTRUMENT:
            self.limit_lots(msg.scope.name, msg.limits, msg)

    def limit_lots(self, symbol: str, limits: RiskLimits, msg: object) -> None:
        """Instrument-scope quantity limits must sit on the instrument's lot grid, as an order's quantity must: a
        max of 0.0005 on a 0.001 lot is a typo that would deny every order, or round one way or the other at the
        risk check. Money limits and the collar are not quantities and are not on a grid; FIRM and STRATEGY scopes
        span instruments with different lots, so only INSTRUMENT scope is checked."""
        instrument = self._instrument(symbol, msg, "scope")
        for field in _LIMIT_QUANTITIES:
            value = getattr(limits, field)
            if value is not None:
                self._steps(instrument.qty_to_lots, instrument.lots_to_qty, value, msg, field)

    def order_ticks(self, cmd: SubmitOrder | ReplaceOrder) -> tuple[int, int]:
        """(price in ticks, quantity in lots) of a console order; price 0 for MARKET."""
        instrument = self._instrument(cmd.symbol, cmd, "symbol")
        price = 0
        if cmd.price is not None:
            price = self._steps(instrument.price_to_ticks, instrument.ticks_to_price, cmd.price, cmd, "price")
        return price, self._steps(instrument.qty_to_lots, instrument.lots_to_qty, cmd.quantity, cmd, "quantity")

    def _instrument(self, symbol: str, msg: object, field: str) -> Instrument:
        try:
            return self._instruments.get(symbol)
        except InstrumentError:
            raise _error(ProtocolErrorCode.UNKNOWN_SYMBOL, msg, field, f"unknown symbol {symbol!r}") from None

    @staticmethod
    def _steps(convert: Any, back: Any, value: Decimal, msg: object, field: str) -> int:
        try:
            steps = convert(value)
            # Converting back and comparing exactly catches what `divmod` in the 28-digit decimal context can
            # round away: "1e-999999999" has a remainder that underflows to 0 and would become 0 ticks.
            exact = back(steps) == value
        except ArithmeticError as exc:  # decimal.InvalidOperation: quotient beyond the context's 28 digits
            raise _error(ProtocolErrorCode.INVALID_FIELD, msg, field, f"{value} cannot be put on the grid") from exc
        except InstrumentError as exc:
            code = ProtocolErrorCode(exc.code) if exc.code in ProtocolErrorCode.__members__ else None
            raise _error(code or ProtocolErrorCode.INVALID_FIELD, msg, field, exc.reason) from None
        if not exact:
            code = ProtocolErrorCode.PRICE_OFF_TICK if field == "price" else ProtocolErrorCode.QUANTITY_OFF_LOT
            raise _error(code, msg, field, f"{value} is not on the instrument's grid")
        if steps > MAX_INT64:
            raise _error(ProtocolErrorCode.INVALID_FIELD, msg, field, f"{value} is beyond the int64 grid")
        return steps


__all__ = [
    "COMMAND_TYPES",
    "EVENT_TYPES",
    "FULL_DEPTH",
    "MAX_DEPTH_LEVELS",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "REPLY_TYPES",
    "SIDES",
    "VENUE_COMMAND_TYPES",
    "VENUE_EVENT_TYPES",
    "BookDeltas",
    "BookDepth",
    "BookSnapshot",
    "CancelAllOrders",
    "CancelOrder",
    "CancelRejected",
    "Codec",
    "Command",
    "CommandAccepted",
    "CommandRejected",
    "EngineHeartbeat",
    "Event",
    "EventEnvelope",
    "ExecType",
    "ExecutionReport",
    "HaltCompleted",
    "HaltTrading",
    "Heartbeat",
    "Instrument",
    "InstrumentRegistry",
    "LimitsChanged",
    "MarketTrade",
    "MassCancelReport",
    "Message",
    "OrderAccepted",
    "OrderCanceled",
    "OrderDenied",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderReplaced",
    "OrderStatus",
    "OrderSubmitted",
    "OrderSummary",
    "OrderType",
    "PnlUpdated",
    "PositionChanged",
    "PositionSummary",
    "PriceLevel",
    "ProtocolError",
    "ProtocolErrorCode",
    "QueryVenueOrders",
    "ReduceTrading",
    "ReplaceOrder",
    "ReplayBatch",
    "Reply",
    "RequestReplay",
    "RequestStateSnapshot",
    "ResumeTrading",
    "RiskLimits",
    "RiskUtilisation",
    "RollbackStrategyParams",
    "Scope",
    "ScopeKind",
    "ScopeLimits",
    "ScopeTradingState",
    "ScopeTriggerSettings",
    "ScopeUtilisation",
    "SetLimits",
    "SetTriggers",
    "Side",
    "StartStrategy",
    "StateSnapshot",
    "StopStrategy",
    "StrategyParamsChanged",
    "StrategyState",
    "StrategyStateChanged",
    "StrategySummary",
    "SubmitOrder",
    "TimeInForce",
    "TopOfBookChanged",
    "TradePrinted",
    "TradingState",
    "TradingStateChanged",
    "TriggerSettings",
    "TriggersChanged",
    "UpdateStrategyParams",
    "VenueCancelOrder",
    "VenueCommand",
    "VenueCommandRejected",
    "VenueEvent",
    "VenueMassCancel",
    "VenueOrderStatus",
    "VenuePlaceOrder",
    "VenueQueryOrder",
    "VenueReplaceOrder",
    "VenueRequestSnapshot",
    "VenueStatusComplete",
]
