"""Avellaneda-Stoikov market maker with the Gueant-Lehalle-Fernandez-Tapia infinite-horizon option (engine thread only).

Units (the strategy works on the tick grid; docs/strategies.md has the formulas and the paper references):
  s, r, quotes   ticks (s is the mid, a half-tick when the spread is odd)
  sigma          ticks per sqrt(second) (the parameter, or the EWMA estimate)
  T - t          seconds, from the caller's clock and `horizon_s`
  q              inventory in order-size units: position_lots / order_size (in the paper every fill is one unit)
  gamma          per (tick * order-size unit);  k per tick;  A per second
Avellaneda & Stoikov (2008), "High-frequency trading in a limit order book", Quantitative Finance 8(3):
  r = s - q * gamma * sigma^2 * (T - t)
  spread = gamma * sigma^2 * (T - t) + (2 / gamma) * ln(1 + gamma / k)
Gueant, Lehalle & Fernandez-Tapia (2013), "Dealing with the inventory risk", Math. Financ. Econ. 7(4), asymptotic
(infinite-horizon) quotes, with omega = sqrt(sigma^2 * gamma / (2 k A) * (1 + gamma / k)^(1 + k / gamma)):
  s - bid = (1/gamma) ln(1 + gamma/k) + (2q + 1)/2 * omega ;  ask - s = (1/gamma) ln(1 + gamma/k) - (2q - 1)/2 * omega
  i.e. r = s - q * omega and half-spread = (1/gamma) ln(1 + gamma/k) + omega / 2.
Rounding: bid = floor(r - spread/2), ask = ceil(r + spread/2) (a 1e-9-tick tolerance absorbs float noise so an
exact grid value is not pushed a whole tick out), then, unless `allow_cross`, bid <= best ask - 1 and ask >= best
bid + 1, then at least `min_spread_ticks` apart. Floats live only in this arithmetic; quotes leave as ints.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from engine.enums import Side
from engine.strategies.base import Quotes, Strategy
from engine.strategies.estimators import EwmaVolatility, IntensityEstimator
from engine.strategies.signals import (
    TradeFlowImbalance,
    book_imbalance,
    market_top,
    own_levels,
    top_microprice_offset,
)

_EPS = 1e-9  # ticks: float noise tolerance before floor/ceil
_MAX_LOTS = 2**63 - 1


class Model(StrEnum):
    AS = "AS"  # finite horizon, Avellaneda-Stoikov 2008
    GLFT = "GLFT"  # infinite horizon, Gueant-Lehalle-Fernandez-Tapia 2013 asymptotics


class HorizonMode(StrEnum):
    CYCLE = "CYCLE"  # T - t restarts at horizon_s every horizon_s seconds from the start (a rolling session)
    FIXED = "FIXED"  # T = start + horizon_s; after it T - t stays 0 (inventory skew gone, minimal spread)


class SigmaSource(StrEnum):
    PARAM = "PARAM"
    EWMA = "EWMA"


class IntensitySource(StrEnum):
    PARAM = "PARAM"
    ONLINE = "ONLINE"


class Signal(StrEnum):
    NONE = "NONE"
    MICROPRICE = "MICROPRICE"  # weighted mid - mid, ticks
    BOOK_IMBALANCE = "BOOK_IMBALANCE"  # [-1, 1] over imbalance_levels
    TRADE_FLOW = "TRADE_FLOW"  # [-1, 1] over trade_flow_window_s


# Lower bounds of 1e-9 (not just > 0) keep every formula finite: with k or A at 1e-300 the GLFT term
# (1 + gamma/k)^(1 + k/gamma) / (k A) overflows to inf, and floor(inf) would raise on the engine thread.
PositiveFloat = Annotated[float, Meta(ge=1e-9, le=1e9)]


class AvellanedaStoikovParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters; units in the module docstring. Bounds keep the maths finite (no inf, no NaN passes gt=0)."""

    gamma: Annotated[float, Meta(ge=1e-9, le=1e6)] = 0.1  # per (tick * order-size unit)
    k: Annotated[float, Meta(ge=1e-9, le=1e6)] = 1.5  # per tick
    A: PositiveFloat = 140.0  # arrivals per second at distance 0
    horizon_s: Annotated[float, Meta(ge=1e-9, le=1e8)] = 60.0
    horizon_mode: HorizonMode = HorizonMode.CYCLE
    model: Model = Model.AS
    sigma_source: SigmaSource = SigmaSource.PARAM
    sigma: PositiveFloat = 2.0  # ticks per sqrt(second); the EWMA's prior too
    sigma_half_life_s: PositiveFloat = 30.0
    intensity_source: IntensitySource = IntensitySource.PARAM
    intensity_half_life_s: PositiveFloat = 300.0
    order_size: Annotated[int, Meta(ge=1, le=_MAX_LOTS)] = 1  # lots
    max_inventory: Annotated[int, Meta(ge=1, le=_MAX_LOTS)] = 10  # lots, |position| limit
    requote_threshold_ticks: Annotated[int, Meta(ge=0, le=1_000_000)] = 1
    min_spread_ticks: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    allow_cross: bool = False
    signal: Signal = Signal.NONE
    signal_coefficient: Annotated[float, Meta(ge=-1e6, le=1e6)] = 0.0  # ticks of r per unit of signal
    imbalance_levels: Annotated[int, Meta(ge=1, le=100)] = 1
    trade_flow_window_s: Annotated[float, Meta(ge=1e-6, le=86_400)] = 10.0

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a ValidationError, so ParamSet reports STRATEGY_PARAM_INVALID.
        if self.max_inventory < self.order_size:
            raise ValueError(f"max_inventory ({self.max_inventory}) must be >= order_size ({self.order_size})")


def as_quotes(s: float, q: float, *, gamma: float, sigma: float, tau: float, k: float) -> tuple[float, float]:
    """Avellaneda-Stoikov (reservation price, total spread), unrounded, in the units of the arguments."""
    risk = gamma * sigma * sigma * tau
    return s - q * risk, risk + 2.0 / gamma * math.log1p(gamma / k)


def glft_coefficients(gamma: float, k: float, a: float) -> tuple[float, float]:
    """(c1, c2) with half-spread = c1 + sigma * c2 / 2 and skew = q * sigma * c2 (GLFT asymptotics)."""
    c1 = math.log1p(gamma / k) / gamma
    # (1 + gamma/k)^(1 + k/gamma) computed through logs: it lies between e and ~e * gamma/k, never overflows.
    c2 = math.sqrt(gamma / (2.0 * k * a) * math.exp((1.0 + k / gamma) * math.log1p(gamma / k)))
    return c1, c2


def glft_quotes(s: float, q: float, *, gamma: float, sigma: float, k: float, a: float) -> tuple[float, float]:
    """GLFT (reservation price, total spread), unrounded."""
    c1, c2 = glft_coefficients(gamma, k, a)
    return s - q * sigma * c2, 2.0 * c1 + sigma * c2


class AvellanedaStoikov(Strategy):
    """Single-level market maker quoting Avellaneda-Stoikov (or GLFT) prices around the mid."""

    params_type = AvellanedaStoikovParams
    __slots__ = (
        "_a",
        "_allow_cross",
        "_as_half",
        "_ask",
        "_bid",
        "_coefficient",
        "_cycle",
        "_ewma",
        "_flow",
        "_gamma",
        "_glft",
        "_glft_c1",
        "_glft_c2",
        "_horizon",
        "_intensity",
        "_k",
        "_levels",
        "_max_inventory",
        "_mid",
        "_min_spread",
        "_order_size",
        "_sigma",
        "_signal",
        "_skew",
        "_start_ns",
    )

    def __init__(self, strategy_id: str, symbol: str, params: Any = None, *, operator: str = "system", ts: int = 0):
        self._ewma: EwmaVolatility | None = None
        self._intensity: IntensityEstimator | None = None
        self._flow: TradeFlowImbalance | None = None
        self._start_ns = ts
        self._mid: float | None = None
        self._skew = 0.0
        self._bid = 0
        self._ask = 0
        super().__init__(strategy_id, symbol, params, operator=operator, ts=ts)

    # Parameters.

    def _apply_params(self, p: AvellanedaStoikovParams) -> None:
        self._gamma = p.gamma
        self._horizon = p.horizon_s
        self._cycle = p.horizon_mode is HorizonMode.CYCLE
        self._glft = p.model is Model.GLFT
        self._sigma = p.sigma
        self._order_size = p.order_size
        self._max_inventory = p.max_inventory
        self._min_spread = p.min_spread_ticks
        self._allow_cross = p.allow_cross
        self._signal = p.signal
        self._coefficient = p.signal_coefficient
        self._levels = p.imbalance_levels
        # Estimators keep their state across a parameter change unless their own settings changed.
        if p.sigma_source is SigmaSource.EWMA:
            ewma = self._ewma
            if ewma is None or not math.isclose(ewma._tau_ns, p.sigma_half_life_s / math.log(2.0) * 1e9):
                self._ewma = EwmaVolatility(half_life_s=p.sigma_half_life_s, prior_sigma=p.sigma)
            else:
                ewma.prior = p.sigma
        else:
            self._ewma = None
        keep_estimate = False
        if p.intensity_source is IntensitySource.ONLINE:
            est = self._intensity
            if est is None or not math.isclose(est._tau_s, p.intensity_half_life_s / math.log(2.0)):
                self._intensity = IntensityEstimator(half_life_s=p.intensity_half_life_s, prior_a=p.A, prior_k=p.k)
            else:
                est.prior_a = p.A
                est.prior_k = p.k
                keep_estimate = True
        else:
            self._intensity = None
        window_ns = round(p.trade_flow_window_s * 1e9)
        if p.signal is Signal.TRADE_FLOW:
            if self._flow is None or self._flow.window_ns != window_ns:
                self._flow = TradeFlowImbalance(window_ns)
        else:
            self._flow = None
        # An estimate in force survives an unrelated change (gamma still enters the precomputed terms); otherwise
        # the parameters are the intensity until the next timer refreshes the estimate.
        if keep_estimate:
            self._set_intensity(self._a, self._k)
        else:
            self._set_intensity(p.A, p.k)

    def _set_intensity(self, a: float, k: float) -> None:
        # Everything that depends only on gamma, k and A is computed here, once per change, not per quote.
        self._a = a
        self._k = k
        self._as_half = math.log1p(self._gamma / k) / self._gamma  # (1/gamma) ln(1 + gamma/k): half the AS floor
        self._glft_c1, self._glft_c2 = glft_coefficients(self._gamma, k, a)

    @property
    def sigma(self) -> float:
        """Volatility in force, ticks per sqrt(second)."""
        ewma = self._ewma
        return self._sigma if ewma is None else ewma.sigma

    @property
    def intensity(self) -> tuple[float, float]:
        """(A per second, k per tick) in force."""
        return self._a, self._k

    def time_left(self, now: int) -> float:
        """T - t in seconds."""
        elapsed = (now - self._start_ns) * 1e-9
        horizon = self._horizon
        if self._cycle:
            return horizon - elapsed % horizon if elapsed >= 0.0 else horizon
        return min(max(horizon - elapsed, 0.0), horizon)

    # Events.

    def on_start(self, now: int) -> None:
        self._start_ns = now

    def on_book(self, book, now: int, own=None) -> Quotes | None:
        """Quotes for this book. `own`: this strategy's working orders, subtracted from the book first (see
        `signals.market_top`); without it the strategy would read its own quotes back as the market."""
        if own:
            own_sides = own_levels(own)
            bid, bid_size, ask, ask_size = market_top(book, *own_sides)
        else:
            own_sides = None
            bid = book.best_bid
            ask = book.best_ask
            bid_size = book.best_bid_size
            ask_size = book.best_ask_size
        if bid is None or ask is None:
            return None  # no mid, no model: keep what rests (the risk gate's collar still guards it)
        mid = (bid + ask) * 0.5
        self._mid = mid
        self._bid = bid
        self._ask = ask
        ewma = self._ewma
        if ewma is not None:
            ewma.update(mid, now)
        if not self.running:
            return None
        signal = self._signal
        if signal is Signal.NONE:
            skew = 0.0
        elif signal is Signal.MICROPRICE:
            skew = self._coefficient * top_microprice_offset(bid, bid_size, ask, ask_size)
        elif signal is Signal.BOOK_IMBALANCE:
            if self._levels == 1:
                total = bid_size + ask_size
                skew = self._coefficient * (bid_size - ask_size) / total if total else 0.0
            else:
                skew = self._coefficient * book_imbalance(book, self._levels, own_sides)
        else:
            skew = self._coefficient * self._flow.value(now)
        self._skew = skew
        quotes = self._quote(mid + skew, bid, ask, now)
        self.last_quotes = quotes
        return quotes

    def on_trade(self, price: int, quantity: int, aggressor: Side, now: int) -> None:
        flow = self._flow
        if flow is not None:
            flow.on_trade(quantity, aggressor, now)
        intensity = self._intensity
        mid = self._mid
        if intensity is not None and mid is not None:
            # Distance on the aggressor's side: a buy at the ask is (ask - mid) from the mid.
            intensity.on_trade((price - mid) if aggressor > 0 else (mid - price), now)

    def on_timer(self, now: int) -> Quotes | None:
        """Refresh the A/k estimate (O(buckets), kept off the per-book-update path) and requote as T - t moves."""
        intensity = self._intensity
        if intensity is not None:
            self._set_intensity(*intensity.estimate(now))
        mid = self._mid
        if mid is None or not self.running:
            return None
        # A book signal keeps the value of the last book update (the book has not changed since, or on_book would
        # have been called); trade flow decays with time, so it is read again.
        skew = self._coefficient * self._flow.value(now) if self._signal is Signal.TRADE_FLOW else self._skew
        quotes = self._quote(mid + skew, self._bid, self._ask, now)
        self.last_quotes = quotes
        return quotes

    # The model.

    def _quote(self, s: float, best_bid: int, best_ask: int, now: int) -> Quotes:
        """Quotes around (signal-adjusted) mid `s` given the best bid/ask in ticks."""
        ewma = self._ewma
        sigma = self._sigma if ewma is None else ewma.sigma
        q = self.position / self._order_size
        if self._glft:
            c2 = sigma * self._glft_c2
            r = s - q * c2
            half = self._glft_c1 + 0.5 * c2
        else:
            # T - t inline (see time_left): a method call here costs a tenth of the whole quote.
            horizon = self._horizon
            elapsed = (now - self._start_ns) * 1e-9
            if self._cycle:
                tau = horizon - elapsed % horizon if elapsed >= 0.0 else horizon
            else:
                tau = min(max(horizon - elapsed, 0.0), horizon)
            risk = self._gamma * sigma * sigma * tau
            r = s - q * risk
            half = 0.5 * risk + self._as_half
        bid = math.floor(r - half + _EPS)
        ask = math.ceil(r + half - _EPS)
        if not self._allow_cross:
            # Never cross the opposite best: a crossing quote would take liquidity (and pay the fee) at a price
            # the model chose for resting, not for aggressing.
            if bid >= best_ask:
                bid = best_ask - 1
            if ask <= best_bid:
                ask = best_bid + 1
        gap = self._min_spread - (ask - bid)
        if gap > 0:
            # Widen outward only (away from the opposite best, so this cannot create a cross); odd tick to the ask.
            bid -= gap // 2
            ask += gap - gap // 2
        position = self.position
        size = self._order_size
        limit = self._max_inventory
        # Inventory limits: at +max stop bidding, at -max stop offering; near the limit quote only what still fits,
        # so a full fill cannot carry the position past the limit.
        bid_quantity = min(size, limit - position)
        ask_quantity = min(size, limit + position)
        if bid_quantity < 0 or bid < 1:  # no price below one tick
            bid_quantity = 0
        if ask_quantity < 0 or ask < 1:  # ask < 1 only with allow_cross and an absurd skew
            ask_quantity = 0
        return Quotes(bid, bid_quantity, ask, ask_quantity)
