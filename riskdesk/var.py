"""Value at risk: historical simulation and parametric normal with EWMA or GARCH(1,1) volatility (pure functions).

Works on one P&L (or return) series per scope: the scope's current exposures applied to each past period's
returns. VaR is reported as a positive loss amount at `confidence` over `horizon` periods, scaled by sqrt(horizon)
(i.i.d. periods; a GARCH forecast is summed over the horizon instead). Floats are fine here: VaR is an estimate
shown to officers, never a price or a quantity the engine acts on; results are stored as Decimals rounded to cents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EWMA_LAMBDA = 0.94  # RiskMetrics' daily decay


@dataclass(frozen=True)
class GarchFit:
    mu: float
    omega: float
    alpha: float
    beta: float
    loglikelihood: float
    nobs: int
    sigma_forecast: float  # next-period conditional volatility, in the series' units
    horizon_sigma: float  # volatility of the sum over the horizon


def historical_var(pnl: np.ndarray, confidence: float, horizon: int = 1) -> float:
    """The loss exceeded in (1 - confidence) of the historical P&L scenarios, scaled to the horizon."""
    if len(pnl) == 0:
        raise ValueError("historical VaR needs at least one scenario")
    # "lower": an actual scenario at or beyond the quantile, never an interpolation that understates the tail.
    quantile = float(np.quantile(np.asarray(pnl, dtype=float), 1 - confidence, method="lower"))
    return max(0.0, -quantile) * math.sqrt(horizon)


def parametric_var(sigma: float, confidence: float, *, mean: float = 0.0) -> float:
    """Normal VaR of a P&L with standard deviation `sigma` (already over the horizon) and mean `mean`."""
    z = NormalDist().inv_cdf(confidence)
    return max(0.0, z * sigma - mean)


def ewma_volatility(series: np.ndarray, lam: float = EWMA_LAMBDA) -> float:
    """RiskMetrics EWMA volatility of a zero-mean series: s2_t = lam * s2_{t-1} + (1 - lam) * x_{t-1}^2, started at
    the sample variance, evaluated one period past the last observation."""
    x = np.asarray(series, dtype=float)
    if len(x) < 2:
        raise ValueError("EWMA volatility needs at least two observations")
    variance = float(np.mean(x**2))
    for value in x:
        variance = lam * variance + (1 - lam) * value * value
    return math.sqrt(variance)


def fit_garch(series: np.ndarray, *, horizon: int = 1, scale: float = 1.0) -> GarchFit:
    """Constant mean, GARCH(1,1), normal errors, by maximum likelihood (the `arch` package).

    `scale` multiplies the series before fitting (arch's optimiser converges best for values of order 1-100, hence
    the docs' percent returns); every figure returned is in the original units again.
    """
    from arch import arch_model

    y = np.asarray(series, dtype=float) * scale
    model = arch_model(y, mean="Constant", vol="GARCH", p=1, o=0, q=1, dist="normal", rescale=False)
    result = model.fit(disp="off")
    params = result.params
    forecast = result.forecast(horizon=horizon, reindex=False).variance.to_numpy()[-1]
    return GarchFit(
        mu=float(params["mu"]) / scale,
        omega=float(params["omega"]) / scale**2,
        alpha=float(params["alpha[1]"]),
        beta=float(params["beta[1]"]),
        loglikelihood=float(result.loglikelihood),
        nobs=int(result.nobs),
        sigma_forecast=math.sqrt(float(forecast[0])) / scale,
        horizon_sigma=math.sqrt(float(np.sum(forecast))) / scale,
    )


def portfolio_pnl(exposures: dict[str, float], returns: dict[str, np.ndarray]) -> np.ndarray:
    """P&L per period of holding `exposures` (money per symbol) through each period's simple returns. The
    symbols' series must be aligned on the same periods (riskdesk.services.var_runs.aligned_returns): element i
    of every series is the same period, and series of different lengths are refused rather than trimmed, since
    trimming would add up different periods' moves."""
    symbols = [s for s in exposures if s in returns]
    if not symbols:
        return np.zeros(0)
    lengths = {len(returns[s]) for s in symbols}
    if len(lengths) > 1:
        raise ValueError(f"returns of different lengths {sorted(lengths)}: align them on common periods first")
    total = np.zeros(lengths.pop())
    for symbol in symbols:
        total += exposures[symbol] * np.asarray(returns[symbol], dtype=float)
    return total
