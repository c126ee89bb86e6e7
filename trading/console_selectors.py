"""Reads for the trader's pages (overview, instrument, strategy, blotter) from the bridge-written tables.

Written here, beside the schema's trading/selectors.py, for the queries the pages need that it does not have (see
docs/console.md). Everything returns Decimals as stored; formatting is the templates' job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from compliance.models import AuditAction, AuditEvent
from trading import selectors
from trading.models import (
    Instrument,
    Order,
    PnlSnapshot,
    Position,
    PositionSnapshot,
    Strategy,
    StrategyParamVersion,
    Tick,
    Trade,
    TradingStateChange,
)

MAX_CHART_POINTS = 1500


def start_of_day(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# --- overview -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PnlLine:
    scope_kind: str
    scope_name: str
    realized: Decimal
    unrealized: Decimal
    fees: Decimal

    @property
    def total(self) -> Decimal:
        return self.realized + self.unrealized - self.fees


def positions() -> list[Position]:
    return list(selectors.current_positions(include_flat=True))


def firm_pnl_today() -> PnlLine:
    """The firm's P&L: the newest firm-scope PnlUpdated of today, else the sum over current positions."""
    row = PnlSnapshot.objects.filter(scope_kind="FIRM", ts__gte=start_of_day()).order_by("-ts", "-seq").first()
    if row is not None:
        return PnlLine("FIRM", "", row.realized_pnl, row.unrealized_pnl, row.fees)
    lines = positions()
    return PnlLine(
        "FIRM",
        "",
        sum((p.realized_pnl for p in lines), Decimal(0)),
        sum((p.unrealized_pnl for p in lines), Decimal(0)),
        sum((p.fees for p in lines), Decimal(0)),
    )


def trading_states() -> list[TradingStateChange]:
    """The newest state change of each scope (scopes never changed are ACTIVE)."""
    return list(
        TradingStateChange.objects.order_by("scope_kind", "scope_name", "-ts", "-seq").distinct(
            "scope_kind", "scope_name"
        )
    )


def strategies() -> list[Strategy]:
    return list(Strategy.objects.order_by("strategy_id"))


# --- instrument ---------------------------------------------------------------------------------------------------


def instrument(symbol: str) -> Instrument | None:
    return Instrument.objects.filter(symbol=symbol).first()


def latest_tick(symbol: str) -> Tick | None:
    return Tick.objects.filter(symbol=symbol).order_by("-ts", "-seq").first()


def _bucket_seconds(since: dt.datetime, until: dt.datetime) -> int:
    return max(1, int((until - since).total_seconds() // MAX_CHART_POINTS) + 1)


def mid_series(symbol: str, *, since: dt.datetime, until: dt.datetime | None = None) -> list[tuple[float, str]]:
    """[(unix seconds, last mid in the bucket)] over the day, at most MAX_CHART_POINTS buckets."""
    until = until or timezone.now()
    step = _bucket_seconds(since, until)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT extract(epoch FROM date_bin(make_interval(secs => %s), ts, %s)) AS bucket,
                   (array_agg((bid_price + ask_price) / 2 ORDER BY ts DESC, seq DESC))[1] AS mid
            FROM trading_tick
            WHERE symbol = %s AND ts >= %s AND ts <= %s AND bid_price > 0 AND ask_price > 0
            GROUP BY bucket ORDER BY bucket
            """,
            [step, since, symbol, since, until],
        )
        return [(float(bucket), str(mid)) for bucket, mid in cursor.fetchall()]


def market_trades(symbol: str, *, since: dt.datetime, limit: int = 500) -> list[Trade]:
    return list(Trade.objects.filter(symbol=symbol, ts__gte=since).order_by("-ts", "-seq")[:limit])


def our_quotes(symbol: str, *, since: dt.datetime, limit: int = 1000) -> list[Order]:
    """Our limit orders of the day on this instrument (the quotes the strategy placed), newest first."""
    return list(
        Order.objects.filter(symbol=symbol, created_at__gte=since, order_type="LIMIT", price__isnull=False).order_by(
            "-created_at"
        )[:limit]
    )


def inventory_series(symbol: str, *, since: dt.datetime) -> list[tuple[float, str, str]]:
    """[(unix seconds, net position summed over strategies, realized + unrealized - fees)] after each change."""
    rows = PositionSnapshot.objects.filter(symbol=symbol, ts__gte=since).order_by("ts", "seq")
    held: dict[str, tuple[Decimal, Decimal]] = {}
    out: list[tuple[float, str, str]] = []
    for row in rows.iterator(chunk_size=2000):
        held[row.strategy_id] = (row.quantity, row.realized_pnl + row.unrealized_pnl - row.fees)
        quantity = sum((q for q, _ in held.values()), Decimal(0))
        pnl = sum((p for _, p in held.values()), Decimal(0))
        out.append((row.ts.timestamp(), str(quantity), str(pnl)))
    if len(out) > MAX_CHART_POINTS:
        stride = len(out) // MAX_CHART_POINTS + 1
        out = [*out[::stride], out[-1]]
    return out


def instrument_chart(symbol: str) -> dict[str, list]:
    """The instrument page's chart data for today, as JSON-ready lists of [unix seconds, values...]."""
    since = start_of_day()
    return {
        "mid": mid_series(symbol, since=since),
        "trades": [(t.ts.timestamp(), str(t.price), str(t.quantity), t.aggressor_side)
                   for t in reversed(market_trades(symbol, since=since))],
        "quotes": [(o.created_at.timestamp(), str(o.price), o.side) for o in reversed(our_quotes(symbol, since=since))],
        "inventory": inventory_series(symbol, since=since),
    }  # fmt: skip


def orders_for_ladder(orders: list[Order]) -> list[dict[str, str]]:
    """Our working orders as the ladder script marks them: side, price and what is left."""
    return [
        {"client_order_id": o.client_order_id, "side": o.side, "price": str(o.price), "leaves": str(o.leaves_quantity)}
        for o in orders
    ]


# --- strategy -----------------------------------------------------------------------------------------------------


def strategy(strategy_id: str) -> Strategy | None:
    return Strategy.objects.filter(strategy_id=strategy_id).first()


def param_history(strategy_id: str, limit: int = 100) -> list[StrategyParamVersion]:
    """Newest first. The engine's event carries the operator's reason; rows the bridge wrote before it did have
    none, and theirs is filled in from the audit row of the console command that asked (same command id)."""
    rows = list(StrategyParamVersion.objects.filter(strategy_id=strategy_id).order_by("-version", "-seq")[:limit])
    missing = [row.command_id for row in rows if row.command_id and not row.reason]
    if missing:
        reasons = dict(
            AuditEvent.objects.filter(
                action__in=(AuditAction.STRATEGY_PARAMS_CHANGED, AuditAction.STRATEGY_PARAMS_ROLLED_BACK),
                target=f"strategy:{strategy_id}",
                details__command__command_id__in=missing,
            ).values_list("details__command__command_id", "reason")
        )
        for row in rows:
            row.reason = row.reason or reasons.get(row.command_id, "")
    return rows


def param_version(strategy_id: str, version: int) -> dict | None:
    """The parameters of `version` as last recorded (the newest engine's, should an earlier engine have had one)."""
    row = StrategyParamVersion.objects.filter(strategy_id=strategy_id, version=version).order_by("-seq").first()
    return None if row is None else row.params


# --- blotter (pages come from trading.selectors; the CSV download streams in keyset chunks) ---------------------

ORDER_CSV_COLUMNS = (
    "created_at", "updated_at", "engine_id", "client_order_id", "strategy_id", "symbol", "side", "order_type",
    "time_in_force", "price", "quantity", "leaves_quantity", "cum_quantity", "avg_fill_price", "status",
    "venue_order_id", "code", "reason",
)  # fmt: skip
FILL_CSV_COLUMNS = (
    "ts", "engine_id", "seq", "exec_id", "client_order_id", "strategy_id", "symbol", "side", "price", "quantity",
    "commission", "is_maker", "venue_order_id", "leaves_quantity", "cum_quantity",
)  # fmt: skip


def csv_chunk(
    qs: QuerySet, columns: tuple[str, ...], *, time_field: str, after: tuple | None, size: int = 2000
) -> tuple[list[tuple], tuple | None]:
    """One chunk of a CSV download, newest first, keyset-paginated on (time, id) so each chunk is one index range
    scan however deep the download goes. Returns (rows, key to pass as `after` next, or None at the end)."""
    if after is not None:
        qs = qs.filter(Q(**{f"{time_field}__lt": after[0]}) | Q(**{time_field: after[0], "id__lt": after[1]}))
    rows = list(qs.order_by(f"-{time_field}", "-id").values_list(time_field, "id", *columns)[:size])
    following = (rows[-1][0], rows[-1][1]) if len(rows) == size else None
    return [row[2:] for row in rows], following


# --- alerts -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertLine:
    id: int
    severity: str
    title: str
    detail: str
    raised_at: dt.datetime
    acknowledged: bool


def alerts_for(user, limit: int = 10) -> list[AlertLine]:
    """The newest alerts whose audience includes one of the user's roles (the administrator sees all)."""
    from console.roles import roles_of, sees_alert
    from riskdesk.services.alerts import recent_alerts, summary

    roles = [role.value for role in roles_of(user)]
    out = []
    for alert in recent_alerts(100):
        if sees_alert(roles, alert.audience):
            out.append(
                AlertLine(alert.pk, alert.severity, alert.title, summary(alert.detail), alert.raised_at,
                          alert.acknowledged_at is not None)
            )  # fmt: skip
        if len(out) == limit:
            break
    return out
