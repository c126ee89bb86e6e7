"""Online estimators for market-making models: EWMA volatility and the A/k arrival intensity (engine thread only).

Both take timestamps from the caller (event `ts` or the engine clock, in ns), never from the wall clock, so replay
and backtest estimate exactly what live estimated. Both fall back to a prior (the strategy's parameters) until they
have enough data, so a quiet or freshly started market never produces a zero or infinite estimate.
"""

from __future__ import annotations

import math

_NS = 1e-9
# The ranges of AvellanedaStoikovParams.k and .A: an estimate outside them is not used.
K_MIN, K_MAX = 1e-9, 1e6
A_MIN, A_MAX = 1e-9, 1e9


class EwmaVolatility:
    """Clock-time EWMA of squared mid changes per second; `sigma` is in ticks per sqrt(second).

    At each mid observation with dt = time since the previous sample, the sample r^2 / dt (r = mid change in ticks)
    is an unbiased estimate of sigma^2 for a Brownian mid; it enters with weight w = 1 - exp(-dt / tau), tau =
    half_life / ln 2. Weighting by elapsed time rather than per event keeps a burst of updates from dominating the
    estimate (event-time EWMA would give a 1-ms burst of 100 updates 100 times the say of one quiet second).
    Observations with the same timestamp as the last sample are not samples: their change is carried into the next
    sample, so a batch of deltas sharing one `ts` counts once.
    """

    __slots__ = ("_last_mid", "_last_ns", "_tau_ns", "prior", "samples", "variance", "warmup")

    def __init__(self, *, half_life_s: float, prior_sigma: float, warmup: int = 20) -> None:
        self._tau_ns = half_life_s / math.log(2.0) * 1e9
        self.prior = prior_sigma
        self.variance = prior_sigma * prior_sigma
        self.warmup = warmup
        self.samples = 0
        self._last_mid: float | None = None
        self._last_ns = 0

    def update(self, mid: float, now: int) -> None:
        last = self._last_mid
        if last is None:
            self._last_mid = mid
            self._last_ns = now
            return
        dt_ns = now - self._last_ns
        if dt_ns <= 0:
            return
        r = mid - last
        w = 1.0 - math.exp(-dt_ns / self._tau_ns)
        self.variance += w * (r * r / (dt_ns * _NS) - self.variance)
        self.samples += 1
        self._last_mid = mid
        self._last_ns = now

    @property
    def sigma(self) -> float:
        """The estimate once `warmup` samples have been seen, else the prior."""
        if self.samples < self.warmup:
            return self.prior
        return math.sqrt(self.variance)


class IntensityEstimator:
    """Online A and k of the fill intensity lambda(delta) = A * exp(-k * delta) (A per second, k per tick).

    A trade printed `d` ticks from the mid would have filled a resting quote at any distance delta <= d, so each
    trade adds one arrival to every bucket delta_i = step * (i + 1) <= d. Counts decay exponentially with time
    (half-life `half_life_s`), so lambda_i = count_i / (effective observation time). `estimate()` fits
    ln lambda_i = ln A - k * delta_i by least squares (the standard log-linear calibration of this model) over the
    buckets with at least `min_count` arrivals; with fewer than two such buckets, a non-decreasing fit (k <= 0) or
    a result outside the parameter ranges, it returns the priors unchanged.
    """

    __slots__ = ("_counts", "_deltas", "_exposure_s", "_last_ns", "_tau_s", "min_count", "prior_a", "prior_k")

    def __init__(
        self,
        *,
        half_life_s: float,
        prior_a: float,
        prior_k: float,
        buckets: int = 10,
        step_ticks: float = 0.5,
        min_count: float = 5.0,
    ) -> None:
        self._tau_s = half_life_s / math.log(2.0)
        self.prior_a = prior_a
        self.prior_k = prior_k
        self.min_count = min_count
        self._deltas = [step_ticks * (i + 1) for i in range(buckets)]
        self._counts = [0.0] * buckets
        self._exposure_s = 0.0  # decayed observation time: the integral of exp(-(now - t) / tau) dt
        self._last_ns: int | None = None

    def _advance(self, now: int) -> None:
        last = self._last_ns
        if last is None:
            self._last_ns = now
            return
        dt = (now - last) * _NS
        if dt <= 0.0:
            return
        decay = math.exp(-dt / self._tau_s)
        counts = self._counts
        for i in range(len(counts)):
            counts[i] *= decay
        self._exposure_s = self._exposure_s * decay + self._tau_s * (1.0 - decay)
        self._last_ns = now

    def on_trade(self, distance_ticks: float, now: int) -> None:
        """A trade `distance_ticks` from the mid (>= 0 on the aggressor's side of the mid) at time `now` (ns)."""
        self._advance(now)
        counts = self._counts
        for i, delta in enumerate(self._deltas):
            if delta > distance_ticks:
                break
            counts[i] += 1.0

    def estimate(self, now: int) -> tuple[float, float]:
        """(A per second, k per tick): the fit, or the priors when the data cannot support one."""
        self._advance(now)
        exposure = self._exposure_s
        if exposure <= 0.0:
            return self.prior_a, self.prior_k
        xs: list[float] = []
        ys: list[float] = []
        for delta, count in zip(self._deltas, self._counts):
            if count >= self.min_count:
                xs.append(delta)
                ys.append(math.log(count / exposure))
        n = len(xs)
        if n < 2:
            return self.prior_a, self.prior_k
        mean_x = sum(xs) / n
        mean_y = sum(ys) / n
        sxx = sum((x - mean_x) ** 2 for x in xs)
        sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
        slope = sxy / sxx
        if not slope < 0.0:
            return self.prior_a, self.prior_k
        k = -slope
        a = math.exp(mean_y + k * mean_x)
        # Inside the parameter ranges or not at all: a fit on a few noisy buckets can give k = 1e-15, and the
        # strategy's formulas are only guaranteed finite within the ranges its schema allows.
        if not (K_MIN <= k <= K_MAX and A_MIN <= a <= A_MAX):
            return self.prior_a, self.prior_k
        return a, k
