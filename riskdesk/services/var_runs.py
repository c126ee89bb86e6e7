"""VaR per strategy and for the firm, from the current positions and one-minute mid returns (Celery task).

Exposures come from the positions the bridge keeps (trading_position), valued at each symbol's last one-minute mid;
the return history from the top-of-book ticks (trading_tick), last mid per minute. Each run stores one VarResult
per scope and method, or a result without a value saying why (no position, too little history).
"""

from __future__ import annotations

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


def minute_closes(symbols: list[str], *, lookback_minutes: int = LOOKBACK_MINUTES) -> dict[str, list[float]]:
    """The last mid of every minute with a quote, oldest first, per symbol."""
    if not symbols:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT symbol, (array_agg((bid_price + ask_price) / 2 ORDER BY ts DESC))[1] AS close
            FROM trading_tick
            WHERE symbol = ANY(%s) AND ts >= now() - make_interval(mins => %s)
              AND bid_price IS NOT NULL AND ask_price IS NOT NULL AND bid_price > 0 AND ask_price > 0
            GROUP BY symbol, date_trunc('minute', ts)
            ORDER BY symbol, date_trunc('minute', ts)
            """,
            [symbols, lookback_minutes],
        )
        closes: dict[str, list[float]] = defaultdict(list)
        for symbol, close in cursor.fetchall():
            closes[symbol].append(float(close))
    return dict(closes)


def exposures(kind: str, name: str, closes: dict[str, list[float]]) -> dict[str, float]:
    """Money held per symbol by the scope (signed), at the last close."""
    positions = Position.objects.all()
    if kind == ScopeKind.STRATEGY:
        positions = positions.filter(strategy_id=name)
    multiplier = {i.symbol: float(i.multiplier) for i in instrument_universe()}
    held: dict[str, float] = defaultdict(float)
    for symbol, quantity in positions.values_list("symbol", "quantity"):
        held[symbol] += float(quantity)
    return {
        symbol: quantity * closes[symbol][-1] * multiplier.get(symbol, 1.0)
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
    closes: dict[str, list[float]] | None = None,
) -> VarResult:
    method = VarMethod(method)
    name = "" if kind == ScopeKind.FIRM else name
    if closes is None:
        symbols = list(Position.objects.values_list("symbol", flat=True).distinct())
        closes = minute_closes(symbols)
    exposure = exposures(kind, name, closes)
    returns = {s: np.diff(np.asarray(c)) / np.asarray(c[:-1]) for s, c in closes.items() if len(c) > 1}
    pnl = var.portfolio_pnl(exposure, returns)
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
