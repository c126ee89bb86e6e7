"""Reads of the trading tables for the desks: positions, P&L series, blotters, bars, working orders.

Every query here is shaped to one index (docs/storage.md lists them); tests/trading/test_selector_plans.py loads
a day of data and checks with EXPLAIN that none of them scans a big table. Time ranges are half-open
[start, end). Pagination is keyset (an opaque `cursor` from the previous page: stable under inserts, and as fast
on page 1,000 as on page 1) or, for a page-number UI, `offset`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet

from trading.models import (
    WORKING_STATUSES,
    Bar1m,
    Bar1s,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    Position,
    ScopeKind,
    Side,
)

MAX_PAGE = 500


class SelectorError(ValueError):
    """Bad filter or pagination input; `code` says which."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- Positions and P&L -----------------------------------------------------------------------------------------


def current_positions(
    *, strategy_id: str | None = None, symbol: str | None = None, include_flat: bool = False
) -> QuerySet[Position]:
    positions = Position.objects.all()
    if strategy_id:
        positions = positions.filter(strategy_id=strategy_id)
    if symbol:
        positions = positions.filter(symbol=symbol)
    if not include_flat:
        positions = positions.exclude(quantity=0)
    return positions.order_by("strategy_id", "symbol")


@dataclass(frozen=True)
class PnlPoint:
    bucket: dt.datetime
    realized: Decimal
    unrealized: Decimal
    fees: Decimal

    @property
    def total(self) -> Decimal:
        return self.realized + self.unrealized - self.fees


MAX_PNL_BUCKETS = 10_000

# One backward probe of the (scope_kind, scope_name, ts, seq) index per bucket: the cost follows the number of
# buckets, not of snapshots (the engine may report P&L on every tick). date_bin aligns buckets to the epoch.
# Parameters: bucket, start, end, bucket (the series: date_bin takes the stride first), then scope_kind, scope_name,
# start, bucket, end.
PNL_SERIES_SQL = """
    SELECT b.bucket, p.realized_pnl, p.unrealized_pnl, p.fees
    FROM generate_series(date_bin(%s, %s, timestamptz 'epoch'), %s, %s) AS b(bucket)
    CROSS JOIN LATERAL (
        SELECT realized_pnl, unrealized_pnl, fees
        FROM trading_pnlsnapshot
        WHERE scope_kind = %s AND scope_name = %s
          AND ts >= greatest(b.bucket, %s) AND ts < least(b.bucket + %s, %s)
        ORDER BY ts DESC, seq DESC
        LIMIT 1
    ) p
    ORDER BY b.bucket
"""


def pnl_series(
    *,
    scope_kind: str,
    scope_name: str = "",
    start: dt.datetime,
    end: dt.datetime,
    bucket: dt.timedelta = dt.timedelta(minutes=1),
) -> list[PnlPoint]:
    """The scope's P&L at the end of each bucket that has an update (last snapshot wins), oldest first.

    P&L is a level, not a flow: the value of a bucket is the last one reported in it, never a sum.
    """
    if scope_kind not in ScopeKind.values:
        raise SelectorError("BAD_SCOPE", f"unknown scope kind {scope_kind!r}")
    _check_range(start, end)
    if bucket <= dt.timedelta(0):
        raise SelectorError("BAD_BUCKET", "bucket must be positive")
    if (end - start) / bucket > MAX_PNL_BUCKETS:
        raise SelectorError("BAD_BUCKET", f"more than {MAX_PNL_BUCKETS} buckets; choose a wider bucket")
    # The series' last bucket starts before `end`: generate_series includes its upper bound.
    last = end - dt.timedelta(microseconds=1)
    params = [bucket, start, last, bucket, scope_kind, scope_name, start, bucket, end]
    with connection.cursor() as cursor:
        cursor.execute(PNL_SERIES_SQL, params)
        return [PnlPoint(*row) for row in cursor.fetchall()]


# --- Blotters ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlotterFilter:
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    symbol: str = ""
    strategy_id: str = ""
    side: str = ""
    statuses: tuple[str, ...] = ()  # orders only
    client_order_id: str = ""

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None:
            _check_range(self.start, self.end)
        if self.side and self.side not in Side.values:
            raise SelectorError("BAD_SIDE", f"side must be one of {', '.join(Side.values)}, got {self.side!r}")
        if unknown := sorted(set(self.statuses) - set(OrderStatus.values)):
            raise SelectorError("BAD_STATUS", f"unknown order status {', '.join(unknown)}")


@dataclass(frozen=True)
class Page:
    rows: list = field(default_factory=list)
    next_cursor: str | None = None  # None on the last page


def _check_range(start: dt.datetime, end: dt.datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise SelectorError("NAIVE_TIME", "time range bounds must be timezone-aware")
    if end <= start:
        raise SelectorError("BAD_RANGE", "end must be after start")


def _encode_cursor(when: dt.datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{when.isoformat()}|{row_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        when, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        parsed = dt.datetime.fromisoformat(when), int(row_id)
    except (ValueError, UnicodeDecodeError):
        raise SelectorError("BAD_CURSOR", "the page cursor is not valid") from None
    if parsed[0].tzinfo is None:
        raise SelectorError("BAD_CURSOR", "the page cursor is not valid")
    return parsed


def _page(queryset: QuerySet, *, time_field: str, limit: int, cursor: str | None, offset: int | None) -> Page:
    """Newest first by (time_field, id). Keyset: `time <= t` is an index condition, the tie on equal times a
    filter on the few rows sharing that instant."""
    if not 1 <= limit <= MAX_PAGE:
        raise SelectorError("BAD_LIMIT", f"limit must be between 1 and {MAX_PAGE}")
    if cursor is not None and offset is not None:
        raise SelectorError("BAD_PAGINATION", "give a cursor or an offset, not both")
    queryset = queryset.order_by(f"-{time_field}", "-id")
    if cursor is not None:
        when, row_id = _decode_cursor(cursor)
        queryset = queryset.filter(**{f"{time_field}__lte": when}).filter(
            Q(**{f"{time_field}__lt": when}) | Q(id__lt=row_id)
        )
    if offset is not None:
        if offset < 0:
            raise SelectorError("BAD_PAGINATION", "offset cannot be negative")
        queryset = queryset[offset:]
    rows = list(queryset[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(getattr(rows[-1], time_field), rows[-1].id) if more else None
    return Page(rows=rows, next_cursor=next_cursor)


def _filtered(queryset: QuerySet, filters: BlotterFilter, time_field: str) -> QuerySet:
    if filters.start is not None:
        queryset = queryset.filter(**{f"{time_field}__gte": filters.start})
    if filters.end is not None:
        queryset = queryset.filter(**{f"{time_field}__lt": filters.end})
    if filters.symbol:
        queryset = queryset.filter(symbol=filters.symbol)
    if filters.strategy_id:
        queryset = queryset.filter(strategy_id=filters.strategy_id)
    if filters.side:
        queryset = queryset.filter(side=filters.side)
    if filters.client_order_id:
        queryset = queryset.filter(client_order_id=filters.client_order_id)
    return queryset


def order_blotter_queryset(filters: BlotterFilter) -> QuerySet[Order]:
    orders = _filtered(Order.objects.all(), filters, "created_at")
    if filters.statuses:
        orders = orders.filter(status__in=filters.statuses)
    return orders


def order_blotter(
    *, filters: BlotterFilter = BlotterFilter(), limit: int = 100, cursor: str | None = None, offset: int | None = None
) -> Page:
    """Orders (current state), newest first by creation time."""
    return _page(order_blotter_queryset(filters), time_field="created_at", limit=limit, cursor=cursor, offset=offset)


def fill_blotter_queryset(filters: BlotterFilter) -> QuerySet[Fill]:
    if filters.statuses:
        raise SelectorError("BAD_FILTER", "fills have no status")
    return _filtered(Fill.objects.all(), filters, "ts")


def fill_blotter(
    *, filters: BlotterFilter = BlotterFilter(), limit: int = 100, cursor: str | None = None, offset: int | None = None
) -> Page:
    """Fills, newest first."""
    return _page(fill_blotter_queryset(filters), time_field="ts", limit=limit, cursor=cursor, offset=offset)


def order_event_blotter(
    *, filters: BlotterFilter = BlotterFilter(), limit: int = 100, cursor: str | None = None, offset: int | None = None
) -> Page:
    """Order events (every state change), newest first; `payload` and the hashes are deferred (compliance reads
    them through its own selectors)."""
    if filters.statuses:
        raise SelectorError("BAD_FILTER", "order events have no status; filter orders instead")
    events = _filtered(OrderEvent.objects.defer("payload", "prev_hash", "row_hash"), filters, "ts")
    return _page(events, time_field="ts", limit=limit, cursor=cursor, offset=offset)


def order_history(*, engine_id: str, client_order_id: str) -> QuerySet[OrderEvent]:
    """One order's events in engine order."""
    return (
        OrderEvent.objects.filter(engine_id=engine_id, client_order_id=client_order_id)
        .defer("payload", "prev_hash", "row_hash")
        .order_by("seq")
    )


def latest_fills(*, limit: int = 50, symbol: str = "", strategy_id: str = "") -> list[Fill]:
    if not 1 <= limit <= MAX_PAGE:
        raise SelectorError("BAD_LIMIT", f"limit must be between 1 and {MAX_PAGE}")
    return fill_blotter(filters=BlotterFilter(symbol=symbol, strategy_id=strategy_id), limit=limit).rows


def working_orders_queryset(*, strategy_id: str = "", symbol: str = "") -> QuerySet[Order]:
    # The exact status list of the partial index trading_order_working, so the planner can use it.
    orders = Order.objects.filter(status__in=WORKING_STATUSES)
    if strategy_id:
        orders = orders.filter(strategy_id=strategy_id)
    if symbol:
        orders = orders.filter(symbol=symbol)
    return orders.order_by("strategy_id", "symbol", "-created_at")


def working_orders(*, strategy_id: str = "", symbol: str = "") -> list[Order]:
    return list(working_orders_queryset(strategy_id=strategy_id, symbol=symbol))


# --- Bars ----------------------------------------------------------------------------------------------------------

BAR_MODELS = {"1s": Bar1s, "1m": Bar1m}
BAR_FIELDS = ("bucket", "open", "high", "low", "close", "volume", "trades")


def bars(*, symbol: str, start: dt.datetime, end: dt.datetime, resolution: str = "1m") -> QuerySet:
    """OHLC of the mid price and traded volume per bucket, oldest first, [start, end), as dicts of BAR_FIELDS.

    On the native path the views are as fresh as the last trading.tasks.refresh_bars run.
    """
    try:
        model = BAR_MODELS[resolution]
    except KeyError:
        raise SelectorError("BAD_RESOLUTION", f"resolution must be one of {', '.join(BAR_MODELS)}") from None
    _check_range(start, end)
    # Dicts, not model instances: a day of 1 m bars is 1,440 rows and a chart wants plain values.
    return model.objects.filter(symbol=symbol, bucket__gte=start, bucket__lt=end).order_by("bucket").values(*BAR_FIELDS)
