"""Seeded background order flow: Poisson random participants around a drifting fair value (venue thread).

The model, per symbol:

* New orders arrive as a Poisson process of rate `intensity` per second, each from one of `participants`
  accounts drawn uniformly; a share `market_share` of them are market orders, the rest limit orders.
* Every open order of the flow is canceled at rate `cancel_rate` per second (an exponential lifetime), so the
  book settles near `intensity * (1 - market_share) / cancel_rate` orders instead of growing without bound
  (the zero-intelligence model of Cont, Stoikov and Talreja, 2010). Events are drawn Gillespie-style: the gap
  to the next one is exponential with the total rate, and the kind is chosen in proportion to its rate.
* A latent fair value follows geometric Brownian motion, `dS/S = drift dt + volatility dW` (per second), stepped
  exactly at each arrival. It is model state, not a price: every order leaves here as integer ticks.
* Limit orders sit `1 + Exp(mean = depth_ticks)` ticks from the fair value on a random side; when the fair value
  has moved through the book they cross and trade, which is how the book follows the fair value. Sizes follow
  `size_distribution` with mean `size_mean` lots, capped at `size_max`.

Time only moves when the caller moves it: `poll()` runs every arrival up to `clock()` and no further, so a
backtest and a live simulation see the same flow for the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Literal

import msgspec

from engine.enums import ExecType, OrderType, Side, TimeInForce
from engine.errors import EngineError
from engine.protocol import ExecutionReport, VenueCancelOrder, VenuePlaceOrder

_NS = 1_000_000_000
_DONE = {ExecType.TRADE, ExecType.CANCELED, ExecType.EXPIRED, ExecType.REJECTED}


class FlowError(EngineError):
    """A flow configuration value is out of range."""


class FlowConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbol: str
    initial_price: int  # ticks
    intensity: float = 100.0  # new orders per second
    market_share: float = 0.1  # fraction of new orders that are market orders
    cancel_rate: float = 0.2  # cancels per open order per second (mean resting life 1 / cancel_rate)
    drift: float = 0.0  # relative drift of the fair value per second
    volatility: float = 0.0001  # relative volatility per sqrt(second); 1e-4 is about 56 % a year, BTC-like
    participants: int = 20
    depth_ticks: float = 10.0  # mean distance of a new limit order from the fair value, in ticks
    size_distribution: Literal["geometric", "uniform", "fixed"] = "geometric"
    size_mean: float = 5.0  # lots
    size_max: int = 100  # lots
    account_prefix: str = "FLOW"

    def __post_init__(self) -> None:
        checks = (
            ("initial_price", self.initial_price > 0),
            ("intensity", self.intensity > 0 and math.isfinite(self.intensity)),
            ("drift", math.isfinite(self.drift)),
            ("volatility", self.volatility >= 0 and math.isfinite(self.volatility)),
            ("participants", self.participants >= 1),
            ("market_share", 0 <= self.market_share <= 1),
            ("cancel_rate", self.cancel_rate >= 0 and math.isfinite(self.cancel_rate)),
            ("depth_ticks", self.depth_ticks >= 0 and math.isfinite(self.depth_ticks)),
            ("size_mean", 1 <= self.size_mean <= self.size_max),
            ("size_max", self.size_max >= 1),
        )
        for name, ok in checks:
            if not ok:
                raise FlowError("FLOW_BAD_CONFIG", f"{self.symbol}: {name} out of range ({self!r})")


class PoissonFlow:
    """Background participants for one symbol. Venue thread only.

    `send` delivers a protocol command to the venue and returns the messages it caused (`Venue.handle` does);
    the flow reads its own execution reports there to know which of its orders are still open. Pass the
    messages caused by other senders (a strategy hitting the flow's orders) to `observe`; if they are not, the
    flow only over-counts its open orders and some of its cancels come back CANCEL_REJECTED.
    """

    def __init__(
        self, config: FlowConfig, *, send: Callable[[object], list], clock: Callable[[], int], seed: int
    ) -> None:
        self.config = config
        self._send = send
        self._clock = clock
        self._rng = random.Random(seed)
        self._accounts = [f"{config.account_prefix}{i}" for i in range(config.participants)]
        self._open_ids: list[str] = []  # client ids of limit orders that may still be open (swept lazily)
        self._live: dict[str, int] = {}  # client id -> participant index, for orders believed open
        self._fair = float(config.initial_price)
        self._now = clock()
        self._next_arrival = self._now + self._gap()
        self._seq = 0
        self.actions = 0  # events processed (orders and cancels)

    @property
    def fair_price(self) -> float:
        """The latent fair value, in (fractional) ticks."""
        return self._fair

    def prime(self, levels: int = 10, orders_per_level: int = 2) -> list:
        """Seed a two-sided book around the initial price so there is a market from the first poll."""
        out: list = []
        mid = round(self._fair)
        ts = self._clock()
        for distance in range(1, levels + 1):
            for _ in range(orders_per_level):
                for side in (Side.BUY, Side.SELL):
                    price = mid - distance if side == Side.BUY else mid + distance
                    if price > 0:
                        out += self._place(self._rng.randrange(len(self._accounts)), side, price, ts)
        return out

    def poll(self) -> list:
        """Run every arrival due at or before `clock()`; returns the venue messages they caused."""
        now = self._clock()
        out: list = []
        while self._next_arrival <= now:
            ts = self._next_arrival
            self._step_fair(ts - self._now)
            self._now = ts
            out += self._act(ts)
            self.actions += 1
            self._next_arrival = ts + self._gap()
        return out

    # ------------------------------------------------------------------ internals

    def observe(self, messages: list) -> None:
        """Learn from venue messages caused by other senders (fills of the flow's resting orders)."""
        self._observe(messages)

    def _gap(self) -> int:
        # The cancel rate uses the open-order count at the previous event: between two events only other senders
        # change it, and an exact answer would need their messages in advance.
        return max(1, int(self._rng.expovariate(self._total_rate()) * _NS))

    def _total_rate(self) -> float:
        return self.config.intensity + self.config.cancel_rate * len(self._live)

    def _step_fair(self, dt_ns: int) -> None:
        cfg = self.config
        if dt_ns <= 0 or (cfg.volatility == 0 and cfg.drift == 0):
            return
        dt = dt_ns / _NS
        # Exact GBM step: the Ito correction keeps E[S_t] = S_0 exp(drift t) whatever the step size.
        shock = self._rng.gauss(0.0, 1.0)
        self._fair *= math.exp((cfg.drift - 0.5 * cfg.volatility**2) * dt + cfg.volatility * math.sqrt(dt) * shock)
        self._fair = max(self._fair, 1.0)

    def _size(self) -> int:
        cfg = self.config
        if cfg.size_distribution == "fixed":
            size = round(cfg.size_mean)
        elif cfg.size_distribution == "uniform":
            size = self._rng.randint(1, max(1, round(2 * cfg.size_mean - 1)))
        else:
            # Geometric on {1, 2, ...} with mean size_mean: success probability 1 / size_mean.
            p = 1.0 / cfg.size_mean
            size = 1 if p >= 1 else 1 + int(math.log(1.0 - self._rng.random()) / math.log(1.0 - p))
        return min(max(size, 1), cfg.size_max)

    def _act(self, ts: int) -> list:
        cfg = self.config
        rng = self._rng
        if rng.random() * self._total_rate() >= cfg.intensity:
            return self._cancel_random(ts)
        who = rng.randrange(len(self._accounts))
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        if rng.random() < cfg.market_share:
            return self._place(who, side, 0, ts)
        offset = 1 + int(rng.expovariate(1.0 / cfg.depth_ticks)) if cfg.depth_ticks else 1
        price = max(1, round(self._fair - offset) if side == Side.BUY else round(self._fair + offset))
        return self._place(who, side, price, ts)

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.config.account_prefix}-{self._seq}"

    def _place(self, who: int, side: Side, price: int, ts: int) -> list:
        cl_id = self._next_id()
        command = VenuePlaceOrder(
            client_order_id=cl_id,
            account=self._accounts[who],
            symbol=self.config.symbol,
            side=side,
            order_type=OrderType.LIMIT if price else OrderType.MARKET,
            time_in_force=TimeInForce.GTC if price else TimeInForce.IOC,
            price=price,
            quantity=self._size(),
            ts=ts,
        )
        if price:
            self._open_ids.append(cl_id)
            self._live[cl_id] = who
        out = self._send(command)
        self._observe(out)
        return out

    def _cancel_random(self, ts: int) -> list:
        """Cancel one open order of the flow, chosen uniformly (each open order has the same cancel rate)."""
        ids = self._open_ids
        live = self._live
        # Ids that filled since they were placed are swept here, lazily, instead of on every report.
        while ids:
            k = self._rng.randrange(len(ids))
            ids[k], ids[-1] = ids[-1], ids[k]
            cl_id = ids.pop()
            who = live.pop(cl_id, None)
            if who is not None:
                command = VenueCancelOrder(
                    client_order_id=self._next_id(),
                    orig_client_order_id=cl_id,
                    account=self._accounts[who],
                    symbol=self.config.symbol,
                    ts=ts,
                )
                out = self._send(command)
                self._observe(out)
                return out
        return []

    def _observe(self, messages: list) -> None:
        live = self._live
        for m in messages:
            if type(m) is ExecutionReport and m.exec_type in _DONE and m.leaves_quantity == 0:
                live.pop(m.client_order_id, None)
