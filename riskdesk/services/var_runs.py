"""VaR per strategy and for the firm, from the current positions and one-minute mid returns (Celery task).

Exposures come from the positions the bridge keeps (trading_position), valued at each symbol's last one-minute mid;
the return history from the top-of-book ticks (trading_tick), last mid per minute, aligned across a scope's symbols
on the minutes all of them quote (`aligned_returns`). Each run stores one VarResult
per scope and method, or a result without a value saying why (no position, too little history).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from console.selectors import instrument_universe
from riskdesk import var
from riskdesk.models import ScopeKind, VarMethod, VarResult
from trading.models import Position

PERIOD_S = 60
LOOKBACK_MINUTES = 3 * 24 * 60
MIN_OBSERVATIONS = {VarMethod.HISTORICAL: 30, VarMethod.PARAMETRIC_EWMA: 30, VarMethod.PARAMETRIC_GARCH: 100}
CENT = Decimal("0.01")


Closes = dict[str, dict[dt.datetime, float]]


def minute_closes(symbols: list[str], *, lookback_minutes: int = LOOKBACK_MINUTES) -> Closes:
    """Per symbol, minute -> the last mid of that minute, for every minute with a quote, oldest first. Symbols
    quote in different minutes: `aligned_returns` puts them on common minutes before they are combined."""
    if not symbols:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT symbol, date_trunc('minute', ts) AS minute,
                   (array_agg((bid_price + ask_price) / 2 ORDER BY ts DESC))[1] AS close
            FROM trading_tick
            WHERE symbol = ANY(%s) AND ts >= now() - make_interval(mins => %s)
              AND bid_price IS NOT NULL AND ask_price IS NOT NULL AND bid_price > 0 AND ask_price > 0
            GROUP BY symbol, date_trunc('minute', ts)
            ORDER BY symbol, date_trunc('minute', ts)
            """,
            [symbols, lookback_minutes],
        )
        closes: Closes = defaultdict(dict)
        for symbol, minute, close in cursor.fetchall():
            closes[symbol][minute] = float(close)
    return dict(closes)


def last_close(series: dict[dt.datetime, float]) -> float:
    return series[max(series)]


def aligned_returns(closes: Closes, symbols: list[str]) -> dict[str, np.ndarray]:
    """Each symbol's simple returns over the same periods, so a portfolio's P&L adds up one period's moves.

    An inner join: only the minutes in which every one of `symbols` has a close are kept, and each return runs
    from one such minute to the next (a period then spans a gap of any symbol, as it already did for a gap of a
    single symbol). Forward-filling a missing minute instead would invent a zero return for the symbol without a
    quote while the others moved, understating the co-movement the VaR measures."""
    if not symbols:
        return {}
    common = sorted(set.intersection(*(set(closes.get(s, {})) for s in symbols)))
    out: dict[str, np.ndarray] = {}
    for symbol in symbols:
        series = np.asarray([closes[symbol][minute] for minute in common], dtype=float)
        out[symbol] = np.diff(series) / series[:-1] if len(series) > 1 else np.zeros(0)
    return out


def exposures(kind: str, name: str, closes: Closes) -> dict[str, float]:
    """Money held per symbol by the scope (signed), at the last close."""
    positions = Position.objects.all()
    if kind == ScopeKind.STRATEGY:
        positions = positions.filter(strategy_id=name)
    multiplier = {i.symbol: float(i.multiplier) for i in instrument_universe()}
    held: dict[str, float] = defaultdict(float)
    for symbol, quantity in positions.values_list("symbol", "quantity"):
        held[symbol] += float(quantity)
    return {
        symbol: quantity * last_close(closes[symbol]) * multiplier.get(symbol, 1.0)
        for symbol, quantity in held.items()
        if quantity and closes.get(symbol)
    }


def compute_var(
    *,
    kind: str,
    name: str,
    method: str,
    confidence: Decimal = Decimal("0.99"),
    horizon_s: int = PERIOD_S,
    requested_by: AbstractBaseUser | None = None,
    closes: Closes | None = None,
) -> VarResult:
    method = VarMethod(method)
    name = "" if kind == ScopeKind.FIRM else name
    if closes is None:
        symbols = list(Position.objects.values_list("symbol", flat=True).distinct())
        closes = minute_closes(symbols)
    exposure = exposures(kind, name, closes)
    # Aligned over the scope's own symbols only: another scope's quote gaps do not cost this one observations.
    pnl = var.portfolio_pnl(exposure, aligned_returns(closes, list(exposure)))
    horizon = max(1, math.ceil(horizon_s / PERIOD_S))
    detail: dict = {"period_s": PERIOD_S, "horizon_periods": horizon, "exposures": _money(exposure)}
    value = None
    if not exposure:
        detail["why_no_value"] = "no position in the scope"
    elif len(pnl) < MIN_OBSERVATIONS[method]:
        detail["why_no_value"] = f"{len(pnl)} one-minute returns, {MIN_OBSERVATIONS[method]} needed"
    else:
        level = float(confidence)
        if method == VarMethod.HISTORICAL:
            value = var.historical_var(pnl, level, horizon)
        elif method == VarMethod.PARAMETRIC_EWMA:
            sigma = var.ewma_volatility(pnl)
            detail |= {"sigma": sigma, "lambda": var.EWMA_LAMBDA}
            value = var.parametric_var(sigma * math.sqrt(horizon), level)
        else:
            # P&L in money can be of any size: fit it scaled to order 1 so the optimiser behaves.
            scale = 1.0 / (float(np.std(pnl)) or 1.0)
            fit = var.fit_garch(pnl, horizon=horizon, scale=scale)
            detail |= {
                "mu": fit.mu,
                "omega": fit.omega,
                "alpha": fit.alpha,
                "beta": fit.beta,
                "sigma": fit.sigma_forecast,
                "loglikelihood": fit.loglikelihood,
            }
            value = var.parametric_var(fit.horizon_sigma, level, mean=fit.mu * horizon)
    return VarResult.objects.create(
        scope_kind=kind,
        scope_name=name,
        method=method,
        confidence=confidence,
        horizon_s=horizon_s,
        value=None if value is None else Decimal(str(value)).quantize(CENT, ROUND_HALF_UP),
        exposure=Decimal(str(sum(abs(v) for v in exposure.values()))).quantize(CENT, ROUND_HALF_UP),
        observations=len(pnl),
        detail=detail,
        requested_by=requested_by,
        computed_at=timezone.now(),
    )


def _money(values: dict[str, float]) -> dict[str, str]:
    return {k: str(Decimal(str(v)).quantize(CENT, ROUND_HALF_UP)) for k, v in values.items()}


def run_var(*, requested_by: AbstractBaseUser | None = None) -> list[VarResult]:
    """Every method for the firm and for each strategy holding a position (one read of the price history)."""
    symbols = list(Position.objects.values_list("symbol", flat=True).distinct())
    closes = minute_closes(symbols)
    scopes = [(ScopeKind.FIRM.value, "")] + [
        (ScopeKind.STRATEGY.value, sid)
        for sid in Position.objects.exclude(quantity=0).values_list("strategy_id", flat=True).distinct()
    ]
    return [
        compute_var(kind=kind, name=name, method=method, requested_by=requested_by, closes=closes)
        for kind, name in scopes
        for method in VarMethod
    ]


def latest_results() -> list[VarResult]:
    """The newest result per (scope, method)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for result in VarResult.objects.order_by("-computed_at", "-id")[:200]:
        key = (result.scope_kind, result.scope_name, result.method)
        if key not in seen:
            seen.add(key)
            out.append(result)
    return sorted(out, key=lambda r: (r.scope_kind != "firm", r.scope_name, r.method))
