"""The trading app's tables: reference data, the engine's event history and the current state derived from it.

Written by `manage.py engine_bridge` (one writer per engine_id) and read through trading.selectors. Prices,
quantities and money are `numeric` (Decimal): the bridge converts engine ticks/lots with the instrument's steps.
Enumerations are stored as the engine enum's *name* (side "BUY"/"SELL", status "PARTIALLY_FILLED", scope kind
"FIRM"...), so a row reads the same in SQL, in the admin and in an export.

The four time-partitioned tables (order events, fills, ticks, trades) are created by raw SQL in
trading/migrations/0003_timeseries.py (native range partitions, or TimescaleDB hypertables when the extension is
installed); their models here are `managed=False` so the ORM and the selectors can read them. See docs/storage.md.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# numeric(30, 12): 18 integer digits, 12 decimals -- every tick/lot step in config/instruments.toml and any
# notional or P&L the firm can reach. One type for prices, sizes and money keeps conversions out of the queries.
DECIMAL = {"max_digits": 30, "decimal_places": 12}
ID_LENGTH = 64  # engine.protocol ID_MAX_LENGTH
SYMBOL_LENGTH = 32
CODE_LENGTH = 64
ENUM_LENGTH = 24


class Side(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(models.TextChoices):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(models.TextChoices):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class OrderStatus(models.TextChoices):
    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_REPLACE = "PENDING_REPLACE"
    # Refused by the engine's pre-trade risk gate (OrderDenied): never reached the venue.
    DENIED = "DENIED"


# Orders that can still trade: the "working orders" view and its partial index.
WORKING_STATUSES = (
    OrderStatus.PENDING_NEW,
    OrderStatus.NEW,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.PENDING_CANCEL,
    OrderStatus.PENDING_REPLACE,
)


class ScopeKind(models.TextChoices):
    FIRM = "FIRM"
    STRATEGY = "STRATEGY"
    INSTRUMENT = "INSTRUMENT"


class TradingState(models.TextChoices):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class StrategyState(models.TextChoices):
    STOPPED = "STOPPED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"


def _price(**kwargs) -> models.DecimalField:
    return models.DecimalField(**DECIMAL, **kwargs)


class TradingDeskAccess(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the trading desk's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_trading_desk", "Can view the trading desk"),
            ("submit_order", "Can submit and cancel manual orders"),
            ("control_strategy", "Can start, stop and re-parameterise strategies"),
        ]


# --- Reference data (synced from config/ by trading.services.reference) ------------------------------------


class Instrument(models.Model):
    symbol = models.CharField(max_length=SYMBOL_LENGTH, unique=True)
    description = models.CharField(max_length=255, blank=True)
    venue = models.CharField(max_length=32, default="SIM")
    currency = models.CharField(max_length=16)
    tick_size = _price()
    lot_size = _price()
    multiplier = _price(default=1)
    price_precision = models.PositiveSmallIntegerField()
    size_precision = models.PositiveSmallIntegerField()
    # False once the symbol leaves config/instruments.toml: history still refers to it, so the row stays.
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "trading_instrument"
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class Account(models.Model):
    code = models.CharField(max_length=ID_LENGTH, unique=True)
    name = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "trading_account"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Strategy(models.Model):
    """A strategy's latest known configuration and state (config at sync, then every engine event)."""

    strategy_id = models.CharField(max_length=ID_LENGTH, unique=True)
    name = models.CharField(max_length=128)
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    account = models.CharField(max_length=ID_LENGTH, blank=True)
    state = models.CharField(max_length=ENUM_LENGTH, choices=StrategyState.choices, default=StrategyState.STOPPED)
    params = models.JSONField(default=dict, blank=True)
    params_version = models.PositiveIntegerField(default=0)
    autostart = models.BooleanField(default=False)
    engine_id = models.CharField(max_length=ID_LENGTH, blank=True)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "trading_strategy"
        ordering = ["strategy_id"]
        verbose_name_plural = "strategies"

    def __str__(self) -> str:
        return self.strategy_id


# --- Event history written by the bridge (one row per engine event; unique by (engine_id, seq)) -------------


class EngineEventRow(models.Model):
    """Columns every bridge-written history row has: which engine event it came from."""

    engine_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()  # the engine's event time (EventEnvelope.ts)

    class Meta:
        abstract = True


class StrategyParamVersion(EngineEventRow):
    """Every StrategyParamsChanged: the parameter history a rollback picks from."""

    strategy_id = models.CharField(max_length=ID_LENGTH)  # engine strategy id (not a FK: history outlives config)
    version = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    operator = models.CharField(max_length=ID_LENGTH, blank=True)
    reason = models.TextField(blank=True)
    rolled_back_to = models.PositiveIntegerField(default=0)
    command_id = models.CharField(max_length=ID_LENGTH, blank=True)

    class Meta:
        db_table = "trading_strategyparamversion"
        ordering = ["strategy_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["engine_id", "seq"], name="trading_paramversion_event")]
        indexes = [models.Index(fields=["strategy_id", "-version"], name="trading_paramversion_strat")]

    def __str__(self) -> str:
        return f"{self.strategy_id} v{self.version}"


class RiskLimitVersion(EngineEventRow):
    """Every LimitsChanged the engine acknowledged (limits as the engine put them in force)."""

    scope_kind = models.CharField(max_length=ENUM_LENGTH, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=ID_LENGTH, blank=True)
    limits = models.JSONField(default=dict)
    operator = models.CharField(max_length=ID_LENGTH, blank=True)
    command_id = models.CharField(max_length=ID_LENGTH, blank=True)

    class Meta:
        db_table = "trading_risklimitversion"
        ordering = ["-ts", "-seq"]
        constraints = [models.UniqueConstraint(fields=["engine_id", "seq"], name="trading_limitversion_event")]
        indexes = [models.Index(fields=["scope_kind", "scope_name", "-ts"], name="trading_limitversion_scope")]

    def __str__(self) -> str:
        return f"{self.scope_kind}:{self.scope_name} @{self.seq}"


class TradingStateChange(EngineEventRow):
    scope_kind = models.CharField(max_length=ENUM_LENGTH, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=ID_LENGTH, blank=True)
    state = models.CharField(max_length=ENUM_LENGTH, choices=TradingState.choices)
    previous = models.CharField(max_length=ENUM_LENGTH, choices=TradingState.choices)
    operator = models.CharField(max_length=ID_LENGTH, blank=True)
    reason = models.TextField(blank=True)
    code = models.CharField(max_length=CODE_LENGTH, blank=True)
    command_id = models.CharField(max_length=ID_LENGTH, blank=True)

    class Meta:
        db_table = "trading_tradingstatechange"
        ordering = ["-ts", "-seq"]
        constraints = [models.UniqueConstraint(fields=["engine_id", "seq"], name="trading_statechange_event")]
        indexes = [models.Index(fields=["-ts"], name="trading_statechange_ts")]

    def __str__(self) -> str:
        return f"{self.scope_kind}:{self.scope_name} {self.previous}->{self.state}"


class PositionSnapshot(EngineEventRow):
    """Every PositionChanged: a position's history."""

    strategy_id = models.CharField(max_length=ID_LENGTH)
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    quantity = _price()
    avg_price = _price(default=0)
    realized_pnl = _price(default=0)
    unrealized_pnl = _price(default=0)
    fees = _price(default=0)

    class Meta:
        db_table = "trading_positionsnapshot"
        ordering = ["-ts", "-seq"]
        constraints = [models.UniqueConstraint(fields=["engine_id", "seq"], name="trading_positionsnap_event")]
        indexes = [models.Index(fields=["strategy_id", "symbol", "ts"], name="trading_positionsnap_key_ts")]

    def __str__(self) -> str:
        return f"{self.strategy_id}/{self.symbol} {self.quantity} @{self.seq}"


class PnlSnapshot(EngineEventRow):
    """Every PnlUpdated: the P&L time series of one scope (firm, strategy or instrument)."""

    scope_kind = models.CharField(max_length=ENUM_LENGTH, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=ID_LENGTH, blank=True)
    realized_pnl = _price(default=0)
    unrealized_pnl = _price(default=0)
    fees = _price(default=0)
    currency = models.CharField(max_length=16, blank=True)

    class Meta:
        db_table = "trading_pnlsnapshot"
        ordering = ["-ts", "-seq"]
        constraints = [models.UniqueConstraint(fields=["engine_id", "seq"], name="trading_pnlsnap_event")]
        # seq breaks ties on equal ts, so "the last value before t" is one backward index probe.
        indexes = [models.Index(fields=["scope_kind", "scope_name", "ts", "seq"], name="trading_pnlsnap_scope_ts_seq")]

    def __str__(self) -> str:
        return f"{self.scope_kind}:{self.scope_name} @{self.seq}"


# --- Current state (upserted by the bridge, guarded by last_seq so a replay never moves it backwards) ---------


class Order(models.Model):
    """Current state of one order; its history is in OrderEvent."""

    engine_id = models.CharField(max_length=ID_LENGTH)
    client_order_id = models.CharField(max_length=ID_LENGTH)
    strategy_id = models.CharField(max_length=ID_LENGTH)
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    side = models.CharField(max_length=ENUM_LENGTH, choices=Side.choices)
    order_type = models.CharField(max_length=ENUM_LENGTH, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=ENUM_LENGTH, choices=TimeInForce.choices)
    price = _price(null=True, blank=True)  # null for a market order
    quantity = _price()
    leaves_quantity = _price(default=0)
    cum_quantity = _price(default=0)
    avg_fill_price = _price(null=True, blank=True)
    status = models.CharField(max_length=ENUM_LENGTH, choices=OrderStatus.choices)
    venue_order_id = models.BigIntegerField(default=0)
    post_only = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    created_ts_ns = models.BigIntegerField()
    updated_ts_ns = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    code = models.CharField(max_length=CODE_LENGTH, blank=True)
    reason = models.TextField(blank=True)
    command_id = models.CharField(max_length=ID_LENGTH, blank=True)

    class Meta:
        db_table = "trading_order"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["engine_id", "client_order_id"], name="trading_order_engine_clordid")
        ]
        indexes = [
            # Blotter: newest first, keyset-paginated on (created_at, id); filtered by symbol/strategy/status.
            models.Index(fields=["-created_at", "-id"], name="trading_order_created"),
            models.Index(fields=["symbol", "-created_at", "-id"], name="trading_order_symbol"),
            models.Index(fields=["strategy_id", "-created_at", "-id"], name="trading_order_strategy"),
            models.Index(fields=["status", "-created_at", "-id"], name="trading_order_status"),
            # Working orders are a handful among 100 K a day: a partial index keeps that page an index scan.
            models.Index(
                fields=["strategy_id", "symbol"],
                name="trading_order_working",
                condition=models.Q(status__in=WORKING_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.symbol} {self.status}"


class Position(models.Model):
    engine_id = models.CharField(max_length=ID_LENGTH)
    strategy_id = models.CharField(max_length=ID_LENGTH)
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    quantity = _price(default=0)
    avg_price = _price(default=0)
    realized_pnl = _price(default=0)
    unrealized_pnl = _price(default=0)
    fees = _price(default=0)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "trading_position"
        ordering = ["strategy_id", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["engine_id", "strategy_id", "symbol"], name="trading_position_key")
        ]
        # The unique key leads with engine_id (one row per engine); the desks ask by strategy or by instrument.
        indexes = [
            models.Index(fields=["strategy_id", "symbol"], name="trading_position_strategy"),
            models.Index(fields=["symbol", "strategy_id"], name="trading_position_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy_id}/{self.symbol} {self.quantity}"


# --- The bridge's own bookkeeping ------------------------------------------------------------------------------


class BridgeCheckpoint(models.Model):
    """The last engine seq whose rows are committed; written in the same transaction as those rows."""

    engine_id = models.CharField(max_length=ID_LENGTH, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "trading_bridgecheckpoint"

    def __str__(self) -> str:
        return f"{self.engine_id}@{self.last_seq}"


class DeadLetter(models.Model):
    """An event the bridge could not decode or store, kept with its reason (never silently dropped)."""

    engine_id = models.CharField(max_length=ID_LENGTH, blank=True)
    seq = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    reason_code = models.CharField(max_length=CODE_LENGTH)
    reason = models.TextField(blank=True)
    raw = models.BinaryField()

    class Meta:
        db_table = "trading_deadletter"
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reason_code} {self.engine_id}@{self.seq}"


# --- Time-partitioned tables (created by SQL in migration 0003; the ORM only reads them) ------------------------
# Each has a bigint identity `id` (the Django pk; in the database the primary key is (id, ts) where there is one,
# because a partitioned table's unique keys must include the partition key).


class OrderEvent(models.Model):
    """Every order state change exactly as the engine published it; append-only (a trigger refuses UPDATE/DELETE).

    row_hash = sha256(prev_hash || payload) chains each engine_id's rows; the first prev_hash is 32 zero bytes.
    """

    id = models.BigIntegerField(primary_key=True)
    engine_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    ts_ns = models.BigIntegerField()
    kind = models.CharField(max_length=64)  # the event's type name, e.g. "OrderFilled"
    client_order_id = models.CharField(max_length=ID_LENGTH, blank=True)
    strategy_id = models.CharField(max_length=ID_LENGTH, blank=True)
    symbol = models.CharField(max_length=SYMBOL_LENGTH, blank=True)
    side = models.CharField(max_length=ENUM_LENGTH, choices=Side.choices, blank=True)
    price = _price(null=True)
    quantity = _price(null=True)
    leaves_quantity = _price(null=True)
    cum_quantity = _price(null=True)
    code = models.CharField(max_length=CODE_LENGTH, blank=True)
    reason = models.TextField(blank=True)
    operator = models.CharField(max_length=ID_LENGTH, blank=True)
    command_id = models.CharField(max_length=ID_LENGTH, blank=True)
    payload = models.BinaryField()
    prev_hash = models.BinaryField()
    row_hash = models.BinaryField()

    class Meta:
        managed = False
        db_table = "trading_orderevent"
        ordering = ["-ts", "-seq"]

    def __str__(self) -> str:
        return f"{self.engine_id}@{self.seq} {self.kind} {self.client_order_id}"


class Fill(models.Model):
    """Every execution (OrderFilled); append-only like OrderEvent."""

    id = models.BigIntegerField(primary_key=True)
    engine_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    ts_ns = models.BigIntegerField()
    exec_id = models.CharField(max_length=ID_LENGTH)
    client_order_id = models.CharField(max_length=ID_LENGTH)
    strategy_id = models.CharField(max_length=ID_LENGTH)
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    side = models.CharField(max_length=ENUM_LENGTH, choices=Side.choices)
    price = _price()
    quantity = _price()
    commission = _price(default=0)
    is_maker = models.BooleanField(default=False)
    venue_order_id = models.BigIntegerField(default=0)
    leaves_quantity = _price(default=0)
    cum_quantity = _price(default=0)

    class Meta:
        managed = False
        db_table = "trading_fill"
        ordering = ["-ts", "-seq"]

    def __str__(self) -> str:
        return f"{self.exec_id} {self.side} {self.quantity} {self.symbol} @ {self.price}"


class Tick(models.Model):
    """Top of book after every change (TopOfBookChanged). An empty side has null price and size."""

    id = models.BigIntegerField(primary_key=True)
    engine_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    ts_ns = models.BigIntegerField()
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    bid_price = _price(null=True)
    bid_size = _price(null=True)
    ask_price = _price(null=True)
    ask_size = _price(null=True)

    class Meta:
        managed = False
        db_table = "trading_tick"
        ordering = ["-ts"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bid_price}/{self.ask_price} @{self.ts}"


class Trade(models.Model):
    """Public market trades (MarketTrade)."""

    id = models.BigIntegerField(primary_key=True)
    engine_id = models.CharField(max_length=ID_LENGTH)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    ts_ns = models.BigIntegerField()
    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    price = _price()
    quantity = _price()
    aggressor_side = models.CharField(max_length=ENUM_LENGTH, choices=Side.choices)
    venue_ts_ns = models.BigIntegerField(default=0)

    class Meta:
        managed = False
        db_table = "trading_trade"
        ordering = ["-ts"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.quantity} @ {self.price} {self.aggressor_side}"


class Bar(models.Model):
    """Fields shared by the bar views: OHLC of the mid price from ticks, volume and trade count from trades."""

    symbol = models.CharField(max_length=SYMBOL_LENGTH)
    bucket = models.DateTimeField()
    open = _price(null=True)
    high = _price(null=True)
    low = _price(null=True)
    close = _price(null=True)
    volume = _price(default=0)
    trades = models.BigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.symbol} {self.bucket:%Y-%m-%d %H:%M:%S} O{self.open} H{self.high} L{self.low} C{self.close}"


class Bar1s(Bar):
    # The views have no id; (symbol, bucket) is unique, and the ORM only needs some column to call the pk.
    symbol = models.CharField(max_length=SYMBOL_LENGTH, primary_key=True)

    class Meta:
        managed = False
        db_table = "trading_bar_1s"
        ordering = ["symbol", "bucket"]


class Bar1m(Bar):
    symbol = models.CharField(max_length=SYMBOL_LENGTH, primary_key=True)

    class Meta:
        managed = False
        db_table = "trading_bar_1m"
        ordering = ["symbol", "bucket"]
