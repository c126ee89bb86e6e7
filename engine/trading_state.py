"""Trading states (the kill switch) per firm, strategy and instrument, and their triggers (engine thread only).

Three states, ordered by restriction: ACTIVE < REDUCING < HALTED (NautilusTrader's `TradingState`). Every scope has
one; the state that governs an order is the most restrictive of its firm, strategy and instrument scopes.

States latch. The engine never leaves a non-ACTIVE state by itself: only `resume`, which must name the operator
and the reason, returns a scope to ACTIVE. `halt` while REDUCING escalates; `reduce` while HALTED does nothing (a
de-escalation is a resume followed by a reduce, two audited decisions). A transition returns one
`TradingStateChanged`; a request that changes nothing returns None, so repeated commands are idempotent.

Automatic triggers (`configure_triggers`, per scope) each trip the scope into their configured state with their
own code: daily loss, drawdown, reject rate and the dead-man heartbeat. A trigger fires once and latches; it is
re-armed only after the scope was resumed by an operator *and* its condition has been seen clear, so a resume is
never overridden on the next timer tick by the breach the operator just acknowledged, and a fresh breach trips
again.

This module does not cancel orders: the engine core cancels every working order in a scope that enters HALTED
(`Oms.cancel_all`) when it sees the event, so the cancel happens in the same engine step as the transition.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Protocol

import msgspec

from engine.enums import TradingState
from engine.errors import EngineError
from engine.protocol import Scope, ScopeKind, ScopeTradingState, TradingStateChanged

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


class StateCode(StrEnum):
    """Codes on automatic transitions and on configuration errors."""

    TRIGGER_DAILY_LOSS = "STATE_TRIGGER_DAILY_LOSS"
    TRIGGER_DRAWDOWN = "STATE_TRIGGER_DRAWDOWN"
    TRIGGER_REJECT_RATE = "STATE_TRIGGER_REJECT_RATE"
    TRIGGER_HEARTBEAT = "STATE_TRIGGER_HEARTBEAT"
    RESUME_NEEDS_OPERATOR = "STATE_RESUME_NEEDS_OPERATOR"
    RESUME_NEEDS_REASON = "STATE_RESUME_NEEDS_REASON"
    BAD_TRIGGER_CONFIG = "STATE_BAD_TRIGGER_CONFIG"
    NO_PORTFOLIO = "STATE_NO_PORTFOLIO"


class TradingStateError(EngineError):
    """A state command or trigger configuration that cannot be applied (bad input, not a denial)."""


class _PnlSource(Protocol):
    def daily_pnl(self, *, strategy_id: str | None = None) -> Decimal: ...

    def drawdown(self, *, strategy_id: str | None = None) -> Decimal: ...


class TriggerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Automatic triggers of one scope. None disables a trigger. Thresholds trip when reached:

    - `daily_loss`: daily P&L <= -daily_loss (positive money amount, scope currency);
    - `drawdown`: peak-to-trough drawdown >= drawdown (positive money amount);
    - `reject_rate`: venue rejects / orders sent within `reject_rate_window_ns` >= reject_rate (0..1), once at
      least `reject_rate_min_orders` orders were sent in the window (two rejects out of two orders is noise);
    - `heartbeat_timeout_ns`: no console heartbeat for that long (FIRM scope only: the console is firm-wide).

    Each `*_action` is REDUCING or HALTED.
    """

    daily_loss: Decimal | None = None
    daily_loss_action: TradingState = HALTED
    drawdown: Decimal | None = None
    drawdown_action: TradingState = HALTED
    reject_rate: Decimal | None = None
    reject_rate_window_ns: int | None = None
    reject_rate_min_orders: int = 1
    reject_rate_action: TradingState = HALTED
    heartbeat_timeout_ns: int | None = None
    heartbeat_action: TradingState = HALTED

    def __post_init__(self) -> None:
        for name in ("daily_loss_action", "drawdown_action", "reject_rate_action", "heartbeat_action"):
            if getattr(self, name) not in (REDUCING, HALTED):
                raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, f"{name} must be REDUCING or HALTED")
        for name in ("daily_loss", "drawdown"):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value < 0):
                raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, f"{name} must be a non-negative amount")
        if self.reject_rate is not None:
            if not self.reject_rate.is_finite() or not 0 < self.reject_rate <= 1:
                raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, "reject_rate must be in (0, 1]")
            if self.reject_rate_window_ns is None or self.reject_rate_window_ns <= 0:
                raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, "reject_rate needs a positive window")
        if self.reject_rate_min_orders < 1:
            raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, "reject_rate_min_orders must be >= 1")
        if self.heartbeat_timeout_ns is not None and self.heartbeat_timeout_ns <= 0:
            raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, "heartbeat_timeout_ns must be positive")


class _Latch(IntEnum):
    FIRED = 1  # tripped; stays latched
    RESUMED = 2  # an operator resumed the scope since; re-arms once the condition is seen clear


class _Entry:
    """The current state of one scope and who put it there."""

    __slots__ = ("code", "operator", "reason", "since_ns", "state")

    def __init__(self, state: TradingState, operator: str, reason: str, code: str, since_ns: int) -> None:
        self.state = state
        self.operator = operator
        self.reason = reason
        self.code = code
        self.since_ns = since_ns


class _RejectWindow:
    """Timestamps of orders sent and venue rejects in one scope, pruned to the trigger's window."""

    __slots__ = ("orders", "rejects")

    def __init__(self) -> None:
        self.orders: deque[int] = deque()
        self.rejects: deque[int] = deque()


def _key(scope: Scope) -> tuple[int, str]:
    return (int(scope.kind), scope.name)


def _scope(key: tuple[int, str]) -> Scope:
    return Scope(kind=ScopeKind(key[0]), name=key[1])


class TradingStates:
    """ACTIVE/REDUCING/HALTED per scope, with latching transitions and automatic triggers.

    `portfolio` (anything with `daily_pnl(*, strategy_id=None)` and `drawdown(*, strategy_id=None)`) is needed
    only for the daily-loss and drawdown triggers, which support FIRM and STRATEGY scopes (the P&L scopes the
    portfolio reports daily figures for).
    """

    __slots__ = (
        "_clock",
        "_configs",
        "_entries",
        "_last_heartbeat_ns",
        "_latches",
        "_portfolio",
        "_reject_windows",
        "_strategy",
        "_symbol",
        "counts_orders",
        "firm_state",
        "non_active",
    )

    def __init__(self, clock: Any, *, portfolio: _PnlSource | None = None) -> None:
        self._clock = clock
        self._portfolio = portfolio
        # Every scope that is not ACTIVE, by key; absent = ACTIVE. The two per-name dicts mirror it for the
        # hot path (`state_for` runs on every order), and `firm_state` and `non_active` (how many scopes are not
        # ACTIVE: 0 lets the risk gate skip the state lookups) are plain attributes for the same reason. Read-only
        # outside this class.
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._strategy: dict[str, TradingState] = {}
        self._symbol: dict[str, TradingState] = {}
        self.non_active = 0
        self.firm_state: TradingState = ACTIVE
        self._configs: dict[tuple[int, str], TriggerConfig] = {}
        self._latches: dict[tuple[tuple[int, str], str], _Latch] = {}
        self._reject_windows: dict[tuple[int, str], _RejectWindow] = {}
        self.counts_orders = False  # any reject-rate trigger configured: the gate reports sends only then
        self._last_heartbeat_ns: int | None = None

    def attach_portfolio(self, portfolio: _PnlSource) -> None:
        """For wiring order: the portfolio may be built after the states."""
        self._portfolio = portfolio

    # --- reading ---------------------------------------------------------------------------------------------

    def state(self, scope: Scope) -> TradingState:
        entry = self._entries.get(_key(scope))
        return ACTIVE if entry is None else entry.state

    def state_for(self, strategy_id: str, symbol: str) -> TradingState:
        """The most restrictive of the firm's, the strategy's and the instrument's states (enum values are
        ordered by restriction)."""
        if not self.non_active:
            return ACTIVE
        return max(self.firm_state, self._strategy.get(strategy_id, ACTIVE), self._symbol.get(symbol, ACTIVE))

    def levels_for(self, strategy_id: str, symbol: str) -> tuple[TradingState, TradingState, TradingState]:
        """(firm, strategy, instrument) states: the risk gate needs to know *which* level is REDUCING, because
        reducing means the strategy's own position for a strategy scope and the symbol's net position for the
        firm and instrument scopes."""
        return self.firm_state, self._strategy.get(strategy_id, ACTIVE), self._symbol.get(symbol, ACTIVE)

    @property
    def all_active(self) -> bool:
        return not self.non_active

    def scope_states(self) -> tuple[ScopeTradingState, ...]:
        """Every non-ACTIVE scope, sorted, for `StateSnapshot.trading_states`."""
        return tuple(
            ScopeTradingState(scope=_scope(key), state=entry.state, operator=entry.operator, reason=entry.reason)
            for key, entry in sorted(self._entries.items())
        )

    # --- operator commands -----------------------------------------------------------------------------------

    def halt(
        self, scope: Scope, *, operator: str, reason: str, code: str = "", command_id: str = ""
    ) -> TradingStateChanged | None:
        """Enter HALTED (from ACTIVE or REDUCING). None when already HALTED."""
        return self._escalate(scope, HALTED, operator=operator, reason=reason, code=code, command_id=command_id)

    def reduce(
        self, scope: Scope, *, operator: str, reason: str, code: str = "", command_id: str = ""
    ) -> TradingStateChanged | None:
        """Enter REDUCING from ACTIVE. None when already REDUCING or HALTED (never de-escalates)."""
        return self._escalate(scope, REDUCING, operator=operator, reason=reason, code=code, command_id=command_id)

    def resume(
        self, scope: Scope, *, operator: str, reason: str, code: str = "", command_id: str = ""
    ) -> TradingStateChanged | None:
        """Return to ACTIVE. Only an identified operator with a reason may do it (the latch is the point of a
        kill switch); raises TradingStateError otherwise. None when already ACTIVE."""
        if not operator:
            raise TradingStateError(StateCode.RESUME_NEEDS_OPERATOR, "resume needs the operator who decided it")
        if not reason:
            raise TradingStateError(StateCode.RESUME_NEEDS_REASON, "resume needs a reason")
        key = _key(scope)
        # Triggers that tripped this scope re-arm once their condition clears (see the module docstring).
        for latch_key, latch in self._latches.items():
            if latch_key[0] == key and latch is _Latch.FIRED:
                self._latches[latch_key] = _Latch.RESUMED
        if key not in self._entries:
            return None
        return self._set(scope, key, ACTIVE, operator=operator, reason=reason, code=code, command_id=command_id)

    def _escalate(
        self, scope: Scope, target: TradingState, *, operator: str, reason: str, code: str, command_id: str
    ) -> TradingStateChanged | None:
        key = _key(scope)
        entry = self._entries.get(key)
        if entry is not None and entry.state >= target:
            return None
        return self._set(scope, key, target, operator=operator, reason=reason, code=code, command_id=command_id)

    def _set(
        self,
        scope: Scope,
        key: tuple[int, str],
        target: TradingState,
        *,
        operator: str,
        reason: str,
        code: str,
        command_id: str,
    ) -> TradingStateChanged:
        # Built first: an invalid reason or operator raises here, before any state changes.
        entry = self._entries.get(key)
        previous = ACTIVE if entry is None else entry.state
        event = TradingStateChanged(
            scope=scope,
            state=target,
            previous=previous,
            reason=reason,
            operator=operator,
            code=code,
            command_id=command_id,
        )
        if target is ACTIVE:
            del self._entries[key]
            self.non_active -= 1
        else:
            if entry is None:
                self.non_active += 1
            self._entries[key] = _Entry(target, operator, reason, code, self._clock.now())
        kind, name = key
        if kind == ScopeKind.FIRM:
            self.firm_state = target
        else:
            mirror = self._strategy if kind == ScopeKind.STRATEGY else self._symbol
            if target is ACTIVE:
                del mirror[name]
            else:
                mirror[name] = target
        return event

    # --- triggers --------------------------------------------------------------------------------------------

    def configure_triggers(self, scope: Scope, config: TriggerConfig | None) -> None:
        """Replace the triggers of `scope` (None removes them). Latches of triggers that stay configured are
        kept: reconfiguring is not a way around a tripped trigger."""
        key = _key(scope)
        if config is None:
            self._configs.pop(key, None)
            self._reject_windows.pop(key, None)
            self.counts_orders = bool(self._reject_windows)
            return
        if config.heartbeat_timeout_ns is not None and scope.kind != ScopeKind.FIRM:
            raise TradingStateError(StateCode.BAD_TRIGGER_CONFIG, "the heartbeat trigger applies to the FIRM only")
        if (config.daily_loss is not None or config.drawdown is not None) and scope.kind == ScopeKind.INSTRUMENT:
            raise TradingStateError(
                StateCode.BAD_TRIGGER_CONFIG, "daily loss and drawdown triggers apply to FIRM or STRATEGY scopes"
            )
        if (config.daily_loss is not None or config.drawdown is not None) and self._portfolio is None:
            raise TradingStateError(StateCode.NO_PORTFOLIO, "P&L triggers need a portfolio (attach_portfolio)")
        self._configs[key] = config
        if config.reject_rate is not None:
            self._reject_windows.setdefault(key, _RejectWindow())
        else:
            self._reject_windows.pop(key, None)
        self.counts_orders = bool(self._reject_windows)
        if config.heartbeat_timeout_ns is not None:
            # The dead-man clock starts when it is armed, not at the epoch: arming it must not trip it.
            now = self._clock.now()
            if self._last_heartbeat_ns is None or self._last_heartbeat_ns < now:
                self._last_heartbeat_ns = now

    def triggers(self, scope: Scope) -> TriggerConfig | None:
        return self._configs.get(_key(scope))

    def all_triggers(self) -> list[tuple[Scope, TriggerConfig]]:
        """Every scope's triggers, sorted by scope."""
        return [(_scope(key), config) for key, config in sorted(self._configs.items())]

    def on_heartbeat(self, now: int) -> None:
        """A console heartbeat arrived (the dead-man's hand is still on the lever)."""
        self._last_heartbeat_ns = now

    def on_order_sent(self, *, strategy_id: str, symbol: str) -> None:
        """An order left for the venue (the reject-rate denominator). The risk gate calls it on every order it
        passes, so the engine core need not."""
        windows = self._reject_windows
        if not windows:
            return
        now = self._clock.now()
        for key in ((ScopeKind.FIRM, ""), (ScopeKind.STRATEGY, strategy_id), (ScopeKind.INSTRUMENT, symbol)):
            window = windows.get(key)
            if window is not None:
                window.orders.append(now)

    def on_reject(self, *, strategy_id: str, symbol: str) -> list[TradingStateChanged]:
        """The venue rejected an order; evaluates the reject-rate triggers at once (a venue rejecting everything
        is exactly when the next timer tick is too late)."""
        windows = self._reject_windows
        if not windows:
            return []
        now = self._clock.now()
        events: list[TradingStateChanged] = []
        for key in ((ScopeKind.FIRM, ""), (ScopeKind.STRATEGY, strategy_id), (ScopeKind.INSTRUMENT, symbol)):
            window = windows.get(key)
            if window is not None:
                window.rejects.append(now)
                self._check_reject_rate(key, self._configs[key], window, now, events)
        return events

    def on_fill(self, *, strategy_id: str, symbol: str) -> list[TradingStateChanged]:
        """A fill changed P&L: evaluates the daily-loss and drawdown triggers of the firm and the strategy."""
        if not self._configs:
            return []
        events: list[TradingStateChanged] = []
        for key in ((ScopeKind.FIRM, ""), (ScopeKind.STRATEGY, strategy_id)):
            config = self._configs.get(key)
            if config is not None:
                self._check_pnl(key, config, events)
        return events

    def on_timer(self, now: int) -> list[TradingStateChanged]:
        """Evaluates every trigger: the heartbeat, P&L moved by marks (not only by fills), and reject windows
        that have slid. Sorted by scope, so replay produces the same events in the same order."""
        events: list[TradingStateChanged] = []
        for key, config in sorted(self._configs.items()):
            if config.heartbeat_timeout_ns is not None:
                last = self._last_heartbeat_ns if self._last_heartbeat_ns is not None else now
                silent = now - last
                self._fire_or_rearm(
                    key,
                    StateCode.TRIGGER_HEARTBEAT,
                    silent >= config.heartbeat_timeout_ns,
                    action=config.heartbeat_action,
                    reason=f"no console heartbeat for {silent} ns (timeout {config.heartbeat_timeout_ns} ns)",
                    events=events,
                )
            if config.daily_loss is not None or config.drawdown is not None:
                self._check_pnl(key, config, events)
            window = self._reject_windows.get(key)
            if window is not None:
                self._check_reject_rate(key, config, window, now, events)
        return events

    def _check_pnl(self, key: tuple[int, str], config: TriggerConfig, events: list[TradingStateChanged]) -> None:
        portfolio = self._portfolio
        strategy_id = key[1] or None
        if config.daily_loss is not None:
            pnl = portfolio.daily_pnl(strategy_id=strategy_id)
            self._fire_or_rearm(
                key,
                StateCode.TRIGGER_DAILY_LOSS,
                pnl <= -config.daily_loss,
                action=config.daily_loss_action,
                reason=f"daily P&L {pnl} at or below -{config.daily_loss}",
                events=events,
            )
        if config.drawdown is not None:
            drawdown = portfolio.drawdown(strategy_id=strategy_id)
            self._fire_or_rearm(
                key,
                StateCode.TRIGGER_DRAWDOWN,
                drawdown >= config.drawdown,
                action=config.drawdown_action,
                reason=f"drawdown {drawdown} at or above {config.drawdown}",
                events=events,
            )

    def _check_reject_rate(
        self,
        key: tuple[int, str],
        config: TriggerConfig,
        window: _RejectWindow,
        now: int,
        events: list[TradingStateChanged],
    ) -> None:
        horizon = now - config.reject_rate_window_ns
        orders, rejects = window.orders, window.rejects
        while orders and orders[0] <= horizon:
            orders.popleft()
        while rejects and rejects[0] <= horizon:
            rejects.popleft()
        sent, rejected = len(orders), len(rejects)
        # rejected / sent >= rate, in exact arithmetic (Decimal * int is exact at these sizes).
        breached = sent >= config.reject_rate_min_orders and rejected >= config.reject_rate * sent
        self._fire_or_rearm(
            key,
            StateCode.TRIGGER_REJECT_RATE,
            breached,
            action=config.reject_rate_action,
            reason=f"{rejected} rejects out of {sent} orders in {config.reject_rate_window_ns} ns "
            f"(limit {config.reject_rate})",
            events=events,
        )

    def _fire_or_rearm(
        self,
        key: tuple[int, str],
        code: StateCode,
        breached: bool,
        *,
        action: TradingState,
        reason: str,
        events: list[TradingStateChanged],
    ) -> None:
        latch_key = (key, code.value)
        latch = self._latches.get(latch_key)
        if latch is None:
            if breached:
                self._latches[latch_key] = _Latch.FIRED
                scope = _scope(key)
                event = self._escalate(scope, action, operator="", reason=reason[:512], code=code.value, command_id="")
                if event is not None:
                    events.append(event)
        elif latch is _Latch.RESUMED and not breached:
            del self._latches[latch_key]

    # --- snapshot ----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain, sorted data (ints, strs, lists, dicts with str keys): states, trigger configs, latches, windows,
        the heartbeat clock. Decimals are strings so the state hash does not depend on an encoder hook."""
        return {
            "states": [
                [key[0], key[1], int(e.state), e.operator, e.reason, e.code, e.since_ns]
                for key, e in sorted(self._entries.items())
            ],
            "configs": [[key[0], key[1], msgspec.to_builtins(config)] for key, config in sorted(self._configs.items())],
            "latches": [[key[0], key[1], code, int(latch)] for (key, code), latch in sorted(self._latches.items())],
            "reject_windows": [
                [key[0], key[1], list(w.orders), list(w.rejects)] for key, w in sorted(self._reject_windows.items())
            ],
            "last_heartbeat_ns": self._last_heartbeat_ns,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace all state with a `snapshot()`; the result snapshots identically."""
        self._entries.clear()
        self._strategy.clear()
        self._symbol.clear()
        self.non_active = 0
        self.firm_state = ACTIVE
        for kind, name, value, operator, reason, code, since_ns in data["states"]:
            key = (kind, name)
            state = TradingState(value)
            self._entries[key] = _Entry(state, operator, reason, code, since_ns)
            self.non_active += 1
            if kind == ScopeKind.FIRM:
                self.firm_state = state
            elif kind == ScopeKind.STRATEGY:
                self._strategy[name] = state
            else:
                self._symbol[name] = state
        self._configs = {(kind, name): msgspec.convert(config, TriggerConfig) for kind, name, config in data["configs"]}
        self._latches = {((kind, name), code): _Latch(latch) for kind, name, code, latch in data["latches"]}
        self._reject_windows = {}
        for kind, name, orders, rejects in data["reject_windows"]:
            window = _RejectWindow()
            window.orders.extend(orders)
            window.rejects.extend(rejects)
            self._reject_windows[(kind, name)] = window
        self.counts_orders = bool(self._reject_windows)
        self._last_heartbeat_ns = data["last_heartbeat_ns"]
