"""VaR maths: the GARCH(1,1) fit against the arch documentation's published example, EWMA, historical, parametric."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from riskdesk import var

ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    # As the engine's recorded-data readers find it (engine/marketdata/paths.py): $SHARED_DATA_DIR, else
    # shared/data beside the checkout.
    override = os.environ.get("SHARED_DATA_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "data"


def sp500_percent_returns(start: dt.date, end: dt.date) -> np.ndarray:
    """100 x daily simple returns of the adjusted close, as in the arch docs' example."""
    path = shared_data_dir() / "arch" / "sp500.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        rows = [
            (dt.datetime.strptime(row["Date"], "%m/%d/%Y").date(), float(row["Adj Close"]))
            for row in csv.DictReader(handle)
        ]
    closes = np.array([close for day, close in sorted(rows) if start <= day <= end])
    return 100 * (closes[1:] / closes[:-1] - 1)


def test_the_garch_fit_reproduces_the_arch_documentations_sp500_example():
    # arch docs, "Introduction to ARCH Models": S&P 500 2000-01-01..2014-01-01, constant mean, GARCH(1,1), normal
    # errors; published summary: 3520 observations, log-likelihood -5141.39, mu 0.0531, omega 0.0156,
    # alpha[1] 0.0879, beta[1] 0.9014.
    returns = sp500_percent_returns(dt.date(2000, 1, 1), dt.date(2014, 1, 1))

    fit = var.fit_garch(returns)

    assert fit.nobs == 3520
    assert round(fit.loglikelihood, 2) == -5141.39
    assert (round(fit.mu, 4), round(fit.omega, 4), round(fit.alpha, 4), round(fit.beta, 4)) == (
        0.0531,
        0.0156,
        0.0879,
        0.9014,
    )


def test_a_scaled_garch_fit_reports_its_figures_in_the_original_units():
    returns = sp500_percent_returns(dt.date(2000, 1, 1), dt.date(2014, 1, 1))

    plain = var.fit_garch(returns)
    scaled = var.fit_garch(returns / 100, scale=100)

    assert scaled.mu == pytest.approx(plain.mu / 100, rel=1e-3)
    assert scaled.omega == pytest.approx(plain.omega / 100**2, rel=1e-3)
    assert scaled.sigma_forecast == pytest.approx(plain.sigma_forecast / 100, rel=1e-3)


def test_the_garch_horizon_volatility_sums_the_forecast_variances():
    returns = sp500_percent_returns(dt.date(2000, 1, 1), dt.date(2014, 1, 1))

    one, ten = var.fit_garch(returns, horizon=1), var.fit_garch(returns, horizon=10)

    assert one.horizon_sigma == pytest.approx(one.sigma_forecast)
    assert one.sigma_forecast < ten.horizon_sigma < 10 * one.sigma_forecast


def test_historical_var_is_the_loss_at_the_lower_tail_scenario():
    pnl = np.arange(-50.0, 50.0)  # 100 scenarios: -50 .. 49

    assert var.historical_var(pnl, 0.99) == 50.0
    assert var.historical_var(pnl, 0.95) == 46.0  # never interpolated towards the smaller loss
    assert var.historical_var(pnl, 0.99, horizon=4) == 100.0


def test_a_book_that_only_gains_has_no_historical_var():
    assert var.historical_var(np.array([1.0, 2.0, 3.0]), 0.99) == 0.0


def test_parametric_var_is_z_times_sigma():
    assert var.parametric_var(100.0, 0.99) == pytest.approx(232.6348, abs=1e-4)
    assert var.parametric_var(100.0, 0.95, mean=10.0) == pytest.approx(154.4854, abs=1e-4)


def test_ewma_volatility_follows_recent_shocks():
    calm = np.full(200, 0.01) * np.tile([1, -1], 100)
    shocked = np.concatenate([calm, [0.2, -0.2]])

    assert var.ewma_volatility(calm) == pytest.approx(0.01)
    assert var.ewma_volatility(shocked) > 3 * var.ewma_volatility(calm)


def test_portfolio_pnl_weights_each_symbols_returns_by_its_exposure():
    returns = {"A": np.array([-0.02, 0.03]), "B": np.array([0.0, 0.01])}

    pnl = var.portfolio_pnl({"A": 1000.0, "B": -500.0}, returns)

    assert pnl.tolist() == pytest.approx([-20.0 - 0.0, 30.0 - 5.0])


def test_portfolio_pnl_refuses_series_not_aligned_on_the_same_periods():
    returns = {"A": np.array([0.01, -0.02, 0.03]), "B": np.array([0.0, 0.01])}

    with pytest.raises(ValueError):
        var.portfolio_pnl({"A": 1000.0, "B": -500.0}, returns)
