"""VaR runs on the database: positions from trading_position, one-minute mids from trading_tick, every method,
for the firm and each strategy; on demand through the real Celery worker."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from riskdesk.models import VarMethod, VarResult
from riskdesk.services import var_runs
from trading.models import Position


def insert_minute_mids(symbol: str, mids: list[float] | dict[int, float], *, minutes: int | None = None) -> None:
    """One top-of-book tick per minute, the newest a minute ago (two ticks in a minute: the later one counts).
    `mids` as {minute index: mid} of `minutes` leaves the other minutes without a quote."""
    now = timezone.now().replace(second=30, microsecond=0)
    rows = []
    count = len(mids) if minutes is None else minutes
    for i, mid in mids.items() if isinstance(mids, dict) else enumerate(mids):
        ts = now - dt.timedelta(minutes=count - i)
        rows.append(("e1", i * 2 + 1, ts - dt.timedelta(seconds=10), 0, symbol, mid - 50, 1, mid - 40, 1))
        rows.append(("e1", i * 2 + 2, ts, 0, symbol, mid - 0.05, 1, mid + 0.05, 1))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price, ask_size) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


@pytest.fixture
def btc_history(db):
    rng = np.random.default_rng(7)
    mids = list(np.round(65000 * np.cumprod(1 + rng.normal(0, 0.001, 400)), 1))
    insert_minute_mids("BTCUSDT", mids)
    return mids


def test_minute_closes_are_the_last_mid_of_each_minute(btc_history):
    closes = var_runs.minute_closes(["BTCUSDT"])["BTCUSDT"]

    assert list(closes.values()) == pytest.approx(btc_history)


def test_every_method_gives_a_var_for_the_firm_and_the_strategy_holding_the_position(btc_history):
    Position.objects.create(engine_id="e1", strategy_id="as-btc", symbol="BTCUSDT", quantity=Decimal("0.5"))

    results = var_runs.run_var()

    assert {(r.scope_kind, r.scope_name, r.method) for r in results} == {
        (kind, name, method) for kind, name in [("firm", ""), ("strategy", "as-btc")] for method in VarMethod
    }
    exposure = Decimal("0.5") * Decimal(str(btc_history[-1]))
    for result in results:
        assert result.exposure == exposure.quantize(Decimal("0.01"))
        assert result.observations == len(btc_history) - 1
        # 0.1 % per minute on ~32,500 of exposure: a 99 % one-minute loss of roughly 2.33 x 32.5.
        assert Decimal(40) < result.value < Decimal(120), (result.method, result.value)


def test_a_scope_without_a_position_says_why_it_has_no_var(btc_history):
    result = var_runs.compute_var(kind="firm", name="", method=VarMethod.HISTORICAL)

    assert result.value is None and result.detail["why_no_value"] == "no position in the scope"


def test_too_little_history_for_garch_is_reported_not_guessed(db):
    insert_minute_mids("BTCUSDT", [65000.0 + i for i in range(50)])
    Position.objects.create(engine_id="e1", strategy_id="as-btc", symbol="BTCUSDT", quantity=Decimal("1"))

    garch = var_runs.compute_var(kind="firm", name="", method=VarMethod.PARAMETRIC_GARCH)
    historical = var_runs.compute_var(kind="firm", name="", method=VarMethod.HISTORICAL)

    assert garch.value is None and garch.detail["why_no_value"] == "49 one-minute returns, 100 needed"
    assert historical.value is not None


def test_var_on_demand_runs_in_the_celery_worker(transactional_db, celery_worker_process, risk_officer):
    from riskdesk.tasks import compute_var

    insert_minute_mids("BTCUSDT", [65000.0 + (i % 7) * 10 for i in range(60)])
    Position.objects.create(engine_id="e1", strategy_id="as-btc", symbol="BTCUSDT", quantity=Decimal("1"))

    ids = compute_var.delay(risk_officer.pk).get(timeout=120)

    assert len(ids) == 2 * len(VarMethod)
    assert set(VarResult.objects.filter(pk__in=ids).values_list("requested_by", flat=True)) == {risk_officer.pk}


def test_two_symbols_quoting_in_different_minutes_are_combined_only_over_the_minutes_both_quote(db):
    from riskdesk import var

    rng = np.random.default_rng(11)
    btc = {m: float(x) for m, x in enumerate(np.round(65000 * np.cumprod(1 + rng.normal(0, 0.001, 40)), 1))}
    eth = {m: float(x) for m, x in enumerate(np.round(3000 * np.cumprod(1 + rng.normal(0, 0.002, 40)), 2))}
    for minute in (5, 17):
        del btc[minute]
    for minute in (9, 30):
        del eth[minute]
    insert_minute_mids("BTCUSDT", btc, minutes=40)
    insert_minute_mids("ETHUSDT", eth, minutes=40)
    Position.objects.create(engine_id="e1", strategy_id="as-btc", symbol="BTCUSDT", quantity=Decimal("1"))
    Position.objects.create(engine_id="e1", strategy_id="as-eth", symbol="ETHUSDT", quantity=Decimal("-10"))

    result = var_runs.compute_var(kind="firm", name="", method=VarMethod.HISTORICAL)

    common = sorted(set(btc) & set(eth))
    b, e = np.array([btc[m] for m in common]), np.array([eth[m] for m in common])
    pnl = btc[39] * np.diff(b) / b[:-1] - 10 * eth[39] * np.diff(e) / e[:-1]
    assert result.observations == len(common) - 1 == 35
    assert result.value == Decimal(str(var.historical_var(pnl, 0.99, 1))).quantize(Decimal("0.01"))
