"""The strategy base class and the desired-quotes value it returns (engine thread only).

A strategy is told about the market (`on_book`, `on_trade`), its own fills (`on_fill`) and time (`on_timer`) and
answers with the `Quotes` it wants resting; it never sends orders. The engine passes those to a `QuoteManager`,
which turns them into the fewest order actions, and every action still goes through the risk gate. Time always
arrives as an argument (`now`, ns), so live, replay and backtest run the same strategy code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from engine.enums import Side
from engine.protocol import StrategyState
from engine.strategies.params import PARAM_INVALID, ParamSet, StrategyError

STRATEGY_NOT_RUNNING = "STRATEGY_NOT_RUNNING"
STRATEGY_ALREADY_RUNNING = "STRATEGY_ALREADY_RUNNING"


class Quotes(msgspec.Struct, frozen=True, gc=False):
    """Desired resting quotes in ticks and lots; a side with quantity 0 is not quoted (its price is ignored)."""

    bid_price: int
    bid_quantity: int
    ask_price: int
    ask_quantity: int


NO_QUOTES = Quotes(0, 0, 0, 0)


class Strategy:
    """Base class: holds identity, the running state, the parameter versions and the signed position in lots.

    Subclasses set `params_type` (their msgspec params Struct) and override the `on_*` hooks; `_apply_params` is
    called with every set that comes into force (construction, update, rollback) so a subclass can precompute
    from it. The position is kept from `on_fill`; the engine may also `set_position` after recovery or a manual
    trade. A stopped strategy still updates its estimators but returns no quotes.
    """

    params_type: ClassVar[type] = msgspec.Struct
    __slots__ = ("last_quotes", "param_set", "position", "running", "state", "strategy_id", "symbol")

    def __init__(
        self, strategy_id: str, symbol: str, params: Any = None, *, operator: str = "system", ts: int = 0
    ) -> None:
        self.strategy_id = strategy_id
        self.symbol = symbol
        self.param_set = ParamSet(self.params_type, params, operator=operator, ts=ts)
        self.state = StrategyState.STOPPED
        self.running = False  # state is RUNNING, as a plain bool for the per-book-update check
        self.position = 0  # signed lots
        self.last_quotes: Quotes | None = None
        self._apply_params(self.param_set.current)

    # Lifecycle and parameters (console commands, via the engine).

    @property
    def params(self) -> Any:
        return self.param_set.current

    @property
    def params_version(self) -> int:
        return self.param_set.version

    def start(self, now: int) -> None:
        if self.state is StrategyState.RUNNING:
            raise StrategyError(STRATEGY_ALREADY_RUNNING, f"strategy {self.strategy_id} is already running")
        self.state = StrategyState.RUNNING
        self.running = True
        self.on_start(now)

    def stop(self, now: int) -> None:
        if self.state is not StrategyState.RUNNING:
            raise StrategyError(STRATEGY_NOT_RUNNING, f"strategy {self.strategy_id} is not running")
        self.state = StrategyState.STOPPED
        self.running = False
        self.last_quotes = None

    def update_params(
        self, changes: dict[str, Any], *, operator: str, reason: str = "", ts: int, base_version: int | None = None
    ) -> int:
        """Validate and apply atomically; returns the new version or raises StrategyError with nothing changed."""
        version = self.param_set.update(
            changes, operator=operator, reason=reason, ts=ts, base_version=base_version, check=self._check_params
        )
        self._apply_params(self.param_set.current)
        return version

    def rollback_params(
        self, version: int, *, operator: str, reason: str = "", ts: int, base_version: int | None = None
    ) -> int:
        new_version = self.param_set.rollback(
            version, operator=operator, reason=reason, ts=ts, base_version=base_version, check=self._check_params
        )
        self._apply_params(self.param_set.current)
        return new_version

    def set_position(self, lots: int) -> None:
        self.position = lots

    # Hooks for subclasses.

    def _check_params(self, params: Any) -> None:
        """Refuse (raise StrategyError) a schema-valid set this running strategy cannot switch to."""

    def _apply_params(self, params: Any) -> None:
        """Precompute from a set that is now in force."""

    def on_start(self, now: int) -> None:
        """Called when the strategy starts (after the state changes to RUNNING)."""

    def on_book(self, book, now: int, own=None) -> Quotes | None:
        """The book changed; return the quotes wanted now, or None for no opinion (keep what rests).

        `own` is this strategy's working orders (`Oms.working_orders(strategy_id=..., symbol=...)`), which the
        model must not mistake for the market: pass them whenever the book can contain them (a venue's market
        data, simulated or live), and not for a recorded book our simulated orders never entered."""
        return None

    def on_trade(self, price: int, quantity: int, aggressor: Side, now: int) -> None:
        """A print on the market (anyone's)."""

    def on_fill(self, side: Side, price: int, quantity: int, now: int) -> None:
        """One of this strategy's orders filled `quantity` lots at `price`; the base class tracks the position."""
        self.position += quantity if side > 0 else -quantity

    def on_timer(self, now: int) -> Quotes | None:
        """Periodic wake-up (time-driven models requote as T - t shrinks)."""
        return None


def invalid(reason: str) -> StrategyError:
    return StrategyError(PARAM_INVALID, reason)
