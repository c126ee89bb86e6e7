"""The single-threaded engine: journal -> feed/book -> strategy -> risk gate -> OMS -> gateway (engine thread only).

One thread owns every piece of trading state and nothing here takes a lock or does I/O other than the journal.
Each inbound thing (console command, market-data message, execution report, timer tick) goes through the same four
steps, in this order:

1. stamp it with the engine time (the input clock, never earlier than the previous input);
2. append it to the journal (before anything changes: a record that is not on disk was never applied);
3. set the engine clock to the stamp and apply it; every component reads that clock, so replay sees the same time;
4. outbound events are wrapped in `EventEnvelope`s with a contiguous engine-wide `seq` and put in `outbox`, which
   the caller drains; venue commands go to the gateway as they are made.

Replay (recovery) runs step 3 on journaled records with the gateway switched off: venue commands are not re-sent
(the venue already has them) and the events come out with the same sequence numbers.

Orders, from a strategy or from the console, go through one gate: the OMS registers the order (PENDING_NEW, so
it counts against limits the moment it exists, RTS 6 Art. 15(2)), the risk gate checks it, and a denied order
becomes an `OrderDenied` event and is removed from the OMS; an allowed one is sent to the gateway.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import msgspec

from engine import utilisation
from engine.book import L2Book
from engine.clock import Clock, FakeClock
from engine.config import EngineConfig
from engine.enums import ExecType, OrderStatus, OrderType, TimeInForce, TradingState
from engine.errors import EngineError
from engine.feed import FeedOutcome, SequencedFeed
from engine.halts import HaltWatch
from engine.instruments import InstrumentRegistry
from engine.journal import (
    FsyncPolicy,
    Journal,
    RecordKind,
    Snapshot,
    read_journal,
    snapshots_newest_first,
    write_snapshot,
)
from engine.oms import Oms, Order, is_stale_status
from engine.portfolio import Portfolio
from engine.protocol import (
    MAX_DEPTH_LEVELS,
    BookDeltas,
    BookDepth,
    BookSnapshot,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Codec,
    CommandAccepted,
    CommandRejected,
    EngineHeartbeat,
    EventEnvelope,
    ExecutionReport,
    HaltTrading,
    Heartbeat,
    LimitsChanged,
    MarketTrade,
    MassCancelReport,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PnlUpdated,
    PositionChanged,
    PositionSummary,
    PriceLevel,
    QueryVenueOrders,
    ReduceTrading,
    ReplaceOrder,
    ReplayBatch,
    RequestReplay,
    RequestStateSnapshot,
    ResumeTrading,
    RiskUtilisation,
    RollbackStrategyParams,
    Scope,
    ScopeKind,
    ScopeTriggerSettings,
    SetLimits,
    SetTriggers,
    StartStrategy,
    StateSnapshot,
    StopStrategy,
    StrategyParamsChanged,
    StrategyStateChanged,
    StrategySummary,
    SubmitOrder,
    TopOfBookChanged,
    TradePrinted,
    TradingStateChanged,
    TriggersChanged,
    TriggerSettings,
    UpdateStrategyParams,
    VenueCommandRejected,
    VenueRequestSnapshot,
)
from engine.risk import RiskGate
from engine.strategies import registry
from engine.strategies.base import Quotes
from engine.strategies.params import params_to_wire
from engine.strategies.quotes import Cancel, New, QuoteManager, Replace
from engine.strategies.state import restore_strategy, strategy_state
from engine.trading_state import TradingStates, TriggerConfig
from engine.venue_queries import VenueQueries

# The venue's reason code for a cancel/replace of an order it does not hold open (`engine.venue.orders.Reason`; a FIX
# gateway maps its venue's code to the same string).
VENUE_UNKNOWN_ORDER = "UNKNOWN_ORDER"
_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING
_ORDER_STATUS = ExecType.ORDER_STATUS


class CoreCode:
    """Reason codes of the engine core itself (commands it cannot apply)."""

    UNKNOWN_STRATEGY = "STRATEGY_UNKNOWN"
    UNKNOWN_ORDER = "OMS_UNKNOWN_ORDER"
    SYMBOL_MISMATCH = "OMS_SYMBOL_MISMATCH"
    REPLAY_UNAVAILABLE = "JOURNAL_REPLAY_UNAVAILABLE"
    UNKNOWN_COMMAND = "ENGINE_UNKNOWN_COMMAND"


class _Collector(list):
    """A picklable callable that records what the feed hands it (snapshot requests, trades), so the engine
    handles them after the feed returns instead of being called back in the middle of a book update."""

    __slots__ = ()

    def __call__(self, item: Any) -> None:
        self.append(item)


class BpsFeeModel:
    """Commission = notional * bps / 10,000, maker or taker rate (the OMS's `FeeModel`); picklable for snapshots."""

    __slots__ = ("instruments", "maker", "taker")

    def __init__(self, instruments: InstrumentRegistry, maker_bps: Decimal, taker_bps: Decimal) -> None:
        self.instruments = instruments
        self.maker = maker_bps / Decimal(10_000)
        self.taker = taker_bps / Decimal(10_000)

    def __call__(self, order: Order, price: int, quantity: int, is_maker: bool) -> Decimal:
        rate = self.maker if is_maker else self.taker
        if not rate:
            return Decimal(0)
        return self.instruments.get(order.symbol).notional(price, quantity) * rate


class _Books:
    """Per-symbol book, feed and the feed's hand-offs. Part of the snapshotted state."""

    __slots__ = ("book", "depth_dirty", "depth_due", "depth_ts", "feed", "last_trade", "requests", "top", "trades")

    def __init__(self, symbol: str, max_buffer: int) -> None:
        self.book = L2Book(symbol)
        self.requests = _Collector()
        self.trades = _Collector()
        self.feed = SequencedFeed(
            symbol=symbol, book=self.book, request_snapshot=self.requests, on_trade=self.trades, max_buffer=max_buffer
        )
        self.last_trade = 0
        self.top = (0, 0, 0, 0)
        # BookDepth throttle: engine time before which no other may go out, and whether the book changed since.
        self.depth_due = 0
        self.depth_dirty = False
        self.depth_ts = 0  # venue time of the last change


class _Strategy:
    """A running strategy instance, its quote manager and the symbol it quotes."""

    __slots__ = ("created", "quoter", "strategy", "symbol")

    def __init__(self, strategy: Any, requote_threshold: int, created: tuple[str, dict, int]) -> None:
        self.strategy = strategy
        self.created = created  # (registry name, params, ts) it was built with: a snapshot restores into a twin
        self.symbol = strategy.symbol
        self.quoter = QuoteManager(strategy.strategy_id, strategy.symbol, requote_threshold_ticks=requote_threshold)


# Attributes that make up the engine's state: replaced together when a snapshot is restored, and put back together
# when it turns out unusable.
_STATE = (
    "_oms",
    "_portfolio",
    "_states",
    "_risk",
    "_strategies",
    "_by_symbol",
    "_books",
    "_seq",
    "_applied",
    "_replies",
    "_last_beat",
    "_venue_rejects",
    "_halts",
    "_queries",
    "_last_utilisation",
)


class Engine:
    """The trading engine. Engine thread only.

    `clock` stamps inputs (live: a `WallClock`; tests and the backtester: a `FakeClock`); components read the
    engine's own clock, which is set to each input's stamp. `journal` may be None (backtests, benchmarks).
    """

    def __init__(
        self,
        config: EngineConfig,
        clock: Clock,
        instruments: InstrumentRegistry,
        gateway: Any,
        journal: Journal | None = None,
        *,
        snapshot_dir: Path | str | None = None,
        start_ns: int | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.instruments = instruments
        self.gateway = gateway
        self.journal = journal
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.codec = Codec(instruments)
        self.outbox: list[EventEnvelope] = []
        self._ring: deque[EventEnvelope] = deque(maxlen=config.replay_ring_size)  # 0 keeps none (backtests)
        self._replaying = False
        self._since_snapshot = 0
        self._engine_id = config.engine_id
        start = clock.now() if start_ns is None else start_ns
        self._time = FakeClock(start)
        self._own_in_book = config.market_data_includes_own_orders
        self._trusted = config.market_data_trusted
        for name, value in self._new_components().items():
            setattr(self, name, value)
        self._strategies: dict[str, _Strategy] = {}
        self._by_symbol: dict[str, list[_Strategy]] = {}
        self._seq = 0  # last outbound event seq
        self._applied = 0  # last journal record applied (0 without a journal)
        self._replies: OrderedDict[str, Any] = OrderedDict()
        self._last_beat = 0  # engine time of the last EngineHeartbeat
        self._venue_rejects: dict[str, int] = {}  # VenueCommandRejected per code
        self._halts = HaltWatch()  # halts whose cancels are not all acknowledged yet
        self._queries = VenueQueries()  # QueryVenueOrders waiting for the venue's answers
        self._last_utilisation = 0  # engine time of the last RiskUtilisation
        self._depth_interval = config.depth_interval_ns
        self._market_trades = config.publish_market_trades
        for sc in config.strategies:
            self.add_strategy(sc.name, sc.strategy_id, sc.symbol, sc.params, autostart=sc.autostart)
        if journal is not None and journal.last_seq == 0:
            self._applied = journal.append(RecordKind.START, start, None)

    # ------------------------------------------------------------------ set-up

    def _new_components(self) -> dict[str, Any]:
        """Fresh OMS, portfolio, trading states, risk gate and books on the engine clock (start-up, and the blank
        objects a snapshot is restored into)."""
        config, instruments, clock = self.config, self.instruments, self._time
        fees = None
        if config.maker_fee_bps or config.taker_fee_bps:
            fees = BpsFeeModel(instruments, config.maker_fee_bps, config.taker_fee_bps)
        oms = Oms(clock, config.account, fee_model=fees)
        portfolio = Portfolio(clock, instruments, day_start_offset_ns=config.day_start_offset_ns)
        states = TradingStates(clock, portfolio=portfolio)
        risk = RiskGate(clock, instruments, oms, portfolio, states)
        for scoped in config.triggers:  # bad trigger settings fail here, at start-up, naming the value
            states.configure_triggers(scoped.scope, scoped.triggers)
        books = {s: _Books(s, config.feed_max_buffer) for s in instruments.symbols}
        return {"_oms": oms, "_portfolio": portfolio, "_states": states, "_risk": risk, "_books": books}

    def add_strategy(
        self, name: str, strategy_id: str, symbol: str, params: dict | None = None, *, autostart: bool = False
    ) -> Any:
        """Create a strategy from the registry (configuration time, before the first input)."""
        if strategy_id in self._strategies:
            raise EngineError("STRATEGY_DUPLICATE", f"strategy id {strategy_id!r} configured twice")
        self.instruments.get(symbol)
        ts = self._time.now()
        strategy = registry.create(name, strategy_id, symbol, dict(params or {}), ts=ts)
        threshold = getattr(strategy.params, "requote_threshold_ticks", 0)
        entry = _Strategy(strategy, threshold, (name, dict(params or {}), ts))
        self._strategies[strategy_id] = entry
        self._by_symbol.setdefault(symbol, []).append(entry)
        if autostart:
            strategy.start(self._time.now())
        return strategy

    # ------------------------------------------------------------------ entry points

    def handle_command(self, cmd: Any) -> Any:
        """Apply one console command; returns its one reply. A repeated command_id returns the first reply."""
        kind = type(cmd)
        if kind is RequestStateSnapshot:  # reads only: not journaled, not remembered
            return self.state_snapshot(cmd.command_id)
        if kind is RequestReplay:
            return self._replay_events(cmd)
        previous = self._replies.get(cmd.command_id)
        if previous is not None:
            return previous
        ts = self._stamp()
        if self.journal is not None:
            self._applied = self.journal.append(RecordKind.COMMAND, ts, cmd)
        self._time.set(ts)
        reply = self._apply_command(cmd)
        self._after_input()
        return reply

    def handle_market_data(self, msg: Any) -> None:
        """BookDeltas / TradePrinted / BookSnapshot from the venue's market-data stream."""
        # The busiest entry point: `_stamp` and the clock's set() inlined (the stamp is never below the clock).
        time = self._time
        now, last = self.clock.now(), time._now
        ts = now if now > last else last
        journal = self.journal
        if journal is not None:
            self._applied = journal.append(RecordKind.MARKET_DATA, ts, msg)
        time._now = ts
        self._apply_market_data(msg)
        if journal is not None:
            self._after_input()

    def handle_execution_report(self, report: ExecutionReport) -> None:
        ts = self._stamp()
        if self.journal is not None:
            self._applied = self.journal.append(RecordKind.EXECUTION_REPORT, ts, report)
        self._time.set(ts)
        self._apply_execution_report(report)
        self._after_input()

    def handle_venue_message(self, msg: Any) -> None:
        """Route one message from the venue (what a gateway's inbound queue holds) to its entry point."""
        kind = type(msg)
        if kind is ExecutionReport:
            self.handle_execution_report(msg)
        elif kind is VenueCommandRejected:
            self.handle_venue_reject(msg)
        elif kind is MassCancelReport:
            self.handle_mass_cancel_report(msg)
        else:
            self.handle_market_data(msg)

    def handle_mass_cancel_report(self, report: MassCancelReport) -> None:
        """The venue's one answer to a mass cancel: every order it names is canceled in this one step."""
        ts = self._stamp()
        if self.journal is not None:
            self._applied = self.journal.append(RecordKind.MASS_CANCEL_REPORT, ts, report)
        self._time.set(ts)
        self._apply_mass_cancel_report(report)
        self._after_input()

    def handle_venue_reject(self, msg: VenueCommandRejected) -> None:
        """The venue refused a command and no execution report can say so (an unlisted symbol's snapshot request,
        ids it cannot echo). Not market data: it never touches a book."""
        ts = self._stamp()
        if self.journal is not None:
            self._applied = self.journal.append(RecordKind.VENUE_REJECT, ts, msg)
        self._time.set(ts)
        self._apply_venue_reject(msg)
        self._after_input()

    def on_timer(self, now: int) -> None:
        """Periodic tick (triggers, dead-man heartbeat, time-driven requotes) at time `now`."""
        ts = max(now, self._time.now())
        if self.journal is not None:
            self._applied = self.journal.append(RecordKind.TIMER, ts, None)
        self._time.set(ts)
        self._apply_timer(ts)
        self._after_input()

    def has_events(self) -> bool:
        """Whether `drain` would return anything (a driver's cheap check before draining)."""
        return bool(self.outbox)

    def drain(self) -> list[EventEnvelope]:
        """Take the outbound events produced since the last drain."""
        out = self.outbox
        self.outbox = []
        return out

    def _stamp(self) -> int:
        now = self.clock.now()
        last = self._time.now()
        return now if now > last else last

    def _after_input(self) -> None:
        every = self.config.snapshot_every_records
        if every and self.journal is not None and self.snapshot_dir is not None:
            self._since_snapshot += 1
            if self._since_snapshot >= every:
                self.snapshot()

    # ------------------------------------------------------------------ events

    def _emit(self, event: Any) -> int:
        self._seq += 1
        env = EventEnvelope(engine_id=self._engine_id, seq=self._seq, ts=self._time._now, event=event)
        self.outbox.append(env)
        self._ring.append(env)
        return self._seq

    def _accept(self, cmd: Any, **fields: Any) -> CommandAccepted:
        reply = CommandAccepted(command_id=cmd.command_id, ts=self._time.now(), event_seq=self._seq, **fields)
        self._remember(cmd.command_id, reply)
        return reply

    def _reject(self, cmd: Any, code: str, reason: str) -> CommandRejected:
        reply = CommandRejected(command_id=cmd.command_id, ts=self._time.now(), code=code, reason=reason[:512])
        self._remember(cmd.command_id, reply)
        return reply

    def _remember(self, command_id: str, reply: Any) -> None:
        replies = self._replies
        replies[command_id] = reply
        if len(replies) > self.config.reply_cache_size:
            replies.popitem(last=False)

    def _send(self, command: Any) -> None:
        if not self._replaying:
            self.gateway.send(command)

    # ------------------------------------------------------------------ commands

    def _apply_command(self, cmd: Any) -> Any:
        handler = _COMMANDS.get(type(cmd))
        if handler is None:
            return self._reject(cmd, CoreCode.UNKNOWN_COMMAND, f"{type(cmd).__name__} is not an engine command")
        try:
            return handler(self, cmd)
        except EngineError as exc:
            return self._reject(cmd, str(exc.code), exc.reason)

    def _cmd_submit(self, cmd: SubmitOrder) -> Any:
        price, quantity = self.codec.order_ticks(cmd)
        order = self._oms.new_order(
            strategy_id=cmd.strategy_id,
            client_order_id=cmd.client_order_id,
            symbol=cmd.symbol,
            side=cmd.side,
            order_type=cmd.order_type,
            time_in_force=cmd.time_in_force,
            price=price,
            quantity=quantity,
            post_only=cmd.post_only,
        )
        denial = self._gate(order, cmd.command_id)
        if denial is not None:
            return self._reject(cmd, denial.code, denial.reason)
        return self._accept(cmd, client_order_id=cmd.client_order_id)

    def _cmd_cancel(self, cmd: CancelOrder) -> Any:
        order = self._oms.get(cmd.client_order_id)
        if order is None:
            return self._reject(cmd, CoreCode.UNKNOWN_ORDER, f"no order {cmd.client_order_id!r}")
        if order.symbol != cmd.symbol:
            return self._reject(cmd, CoreCode.SYMBOL_MISMATCH, f"order {cmd.client_order_id!r} is {order.symbol}")
        self._send_cancel(self._oms.request_cancel(cmd.client_order_id))
        return self._accept(cmd, client_order_id=cmd.client_order_id)

    def _cmd_replace(self, cmd: ReplaceOrder) -> Any:
        order = self._oms.get(cmd.orig_client_order_id)
        if order is None:
            return self._reject(cmd, CoreCode.UNKNOWN_ORDER, f"no order {cmd.orig_client_order_id!r}")
        if order.symbol != cmd.symbol:
            return self._reject(cmd, CoreCode.SYMBOL_MISMATCH, f"order {cmd.orig_client_order_id!r} is {order.symbol}")
        price, quantity = self.codec.order_ticks(cmd)
        denial = self._check_replace(order, price, quantity, cmd.command_id)
        if denial is not None:
            return self._reject(cmd, denial.code, denial.reason)
        msg = self._oms.request_replace(
            cmd.orig_client_order_id, price, quantity, new_client_order_id=cmd.client_order_id
        )
        self._risk.on_message_sent(self._time._now, strategy_id=order.strategy_id, symbol=order.symbol)
        self._send(msg)
        return self._accept(cmd, client_order_id=cmd.client_order_id)

    def _cmd_cancel_all(self, cmd: CancelAllOrders) -> Any:
        self._cancel_scope(cmd.scope)
        return self._accept(cmd)

    def _cmd_set_limits(self, cmd: SetLimits) -> Any:
        self._risk.set_limits(cmd.scope, cmd.limits)
        self._emit(LimitsChanged(scope=cmd.scope, limits=cmd.limits, operator=cmd.operator, command_id=cmd.command_id))
        return self._accept(cmd)

    def _cmd_set_triggers(self, cmd: SetTriggers) -> Any:
        """Replace a scope's automatic triggers while running (the config file's `[[triggers]]` apply at start-up;
        a journaled SetTriggers replays after them). A trigger the scope cannot carry is refused by TradingStates
        with STATE_BAD_TRIGGER_CONFIG and changes nothing."""
        settings = cmd.triggers
        config = None
        if not settings.empty:
            config = TriggerConfig(**{name: getattr(settings, name) for name in TriggerConfig.__struct_fields__})
        self._states.configure_triggers(cmd.scope, config)
        self._emit(
            TriggersChanged(scope=cmd.scope, triggers=settings, operator=cmd.operator, command_id=cmd.command_id)
        )
        return self._accept(cmd)

    def _cmd_halt(self, cmd: HaltTrading) -> Any:
        event = self._states.halt(cmd.scope, operator=cmd.operator, reason=cmd.reason, command_id=cmd.command_id)
        if event is not None:
            self._on_state_changed(event)
        else:
            # Already halted: cancel again anyway, an order may have slipped in through a rejected cancel. The
            # operator still gets the HaltCompleted their command waits for.
            self._watch_halt(cmd.scope, command_id=cmd.command_id)
            self._cancel_scope(cmd.scope)
        return self._accept(cmd, trading_state=self._states.state(cmd.scope))

    def _cmd_reduce(self, cmd: ReduceTrading) -> Any:
        event = self._states.reduce(cmd.scope, operator=cmd.operator, reason=cmd.reason, command_id=cmd.command_id)
        if event is not None:
            self._on_state_changed(event)
        return self._accept(cmd, trading_state=self._states.state(cmd.scope))

    def _cmd_resume(self, cmd: ResumeTrading) -> Any:
        event = self._states.resume(cmd.scope, operator=cmd.operator, reason=cmd.reason, command_id=cmd.command_id)
        if event is not None:
            self._on_state_changed(event)
        return self._accept(cmd, trading_state=self._states.state(cmd.scope))

    def _strategy(self, strategy_id: str) -> _Strategy:
        entry = self._strategies.get(strategy_id)
        if entry is None:
            raise EngineError(CoreCode.UNKNOWN_STRATEGY, f"no strategy {strategy_id!r}")
        return entry

    def _cmd_start(self, cmd: StartStrategy) -> Any:
        entry = self._strategy(cmd.strategy_id)
        strategy = entry.strategy
        previous = strategy.state
        strategy.start(self._time._now)
        self._emit(
            StrategyStateChanged(
                strategy_id=cmd.strategy_id,
                state=strategy.state,
                previous=previous,
                operator=cmd.operator,
                command_id=cmd.command_id,
            )
        )
        self._quote_off_book(entry, self._books[entry.symbol].book, self._time._now)
        return self._accept(cmd, strategy_state=strategy.state)

    def _cmd_stop(self, cmd: StopStrategy) -> Any:
        entry = self._strategy(cmd.strategy_id)
        strategy = entry.strategy
        previous = strategy.state
        strategy.stop(self._time._now)
        self._emit(
            StrategyStateChanged(
                strategy_id=cmd.strategy_id,
                state=strategy.state,
                previous=previous,
                operator=cmd.operator,
                reason=cmd.reason,
                command_id=cmd.command_id,
            )
        )
        if cmd.cancel_orders:
            self._cancel_scope(Scope.strategy(cmd.strategy_id))
        return self._accept(cmd, strategy_state=strategy.state)

    def _cmd_update_params(self, cmd: UpdateStrategyParams) -> Any:
        entry = self._strategy(cmd.strategy_id)
        strategy = entry.strategy
        # The protocol tags Decimal parameters with a Decimal subclass (for its Ext encoding) that msgspec.convert
        # refuses for float fields: hand the strategy plain Decimals.
        params = {k: Decimal(v) if isinstance(v, Decimal) else v for k, v in cmd.params.items()}
        version = strategy.update_params(
            params, operator=cmd.operator, reason=cmd.reason, ts=self._time._now, base_version=cmd.base_version
        )
        entry.quoter.requote_threshold_ticks = getattr(strategy.params, "requote_threshold_ticks", 0)
        self._emit(
            StrategyParamsChanged(
                strategy_id=cmd.strategy_id,
                params=params_to_wire(strategy.params),
                version=version,
                operator=cmd.operator,
                command_id=cmd.command_id,
                reason=cmd.reason,
            )
        )
        return self._accept(cmd, strategy_state=strategy.state, params_version=version)

    def _cmd_rollback_params(self, cmd: RollbackStrategyParams) -> Any:
        entry = self._strategy(cmd.strategy_id)
        strategy = entry.strategy
        version = strategy.rollback_params(
            cmd.version, operator=cmd.operator, reason=cmd.reason, ts=self._time._now, base_version=cmd.base_version
        )
        entry.quoter.requote_threshold_ticks = getattr(strategy.params, "requote_threshold_ticks", 0)
        self._emit(
            StrategyParamsChanged(
                strategy_id=cmd.strategy_id,
                params=params_to_wire(strategy.params),
                version=version,
                operator=cmd.operator,
                rolled_back_to=cmd.version,
                command_id=cmd.command_id,
                reason=cmd.reason,
            )
        )
        return self._accept(cmd, strategy_state=strategy.state, params_version=version)

    def _cmd_heartbeat(self, cmd: Heartbeat) -> Any:
        self._states.on_heartbeat(self._time._now)
        return self._accept(cmd)

    def _cmd_query_venue(self, cmd: QueryVenueOrders) -> Any:
        """Ask the venue the status of every working order in scope (engine.venue_queries has the protocol)."""
        now = self._time._now
        ids = []
        for order in self._orders_in(cmd.scope):
            msg = self._oms.query_message(order.client_order_id)
            self._risk.on_message_sent(now, strategy_id=order.strategy_id, symbol=order.symbol)
            self._send(msg)
            ids.append(msg.client_order_id)
        timeout = cmd.timeout_ns or self.config.venue_query_timeout_ns
        done = self._queries.start(cmd.command_id, ids, now, timeout)
        if done is not None:
            self._emit(done)
        return self._accept(cmd)

    def _orders_in(self, scope: Scope) -> list[Order]:
        """Working orders in `scope`, in creation order."""
        if scope.kind == ScopeKind.STRATEGY:
            return self._oms.working_orders(strategy_id=scope.name)
        if scope.kind == ScopeKind.INSTRUMENT:
            return self._oms.working_orders(symbol=scope.name)
        return self._oms.working_orders()

    # ------------------------------------------------------------------ RequestReplay hook

    replay_source: Any = None
    """Issue 5's server sets this to a callable `(from_seq) -> list[EventEnvelope] | None` that regenerates older
    events from the journal (see `replay_events_from_journal`); without it only the in-memory ring answers."""

    def _replay_events(self, cmd: RequestReplay) -> Any:
        ring = self._ring
        if ring and ring[0].seq <= cmd.from_seq:
            events = tuple(e for e in ring if e.seq >= cmd.from_seq)
        elif cmd.from_seq > self._seq:
            events = ()
        elif self.replay_source is not None:
            events = tuple(self.replay_source(cmd.from_seq) or ())
        else:
            return CommandRejected(
                command_id=cmd.command_id,
                ts=self._time.now(),
                code=CoreCode.REPLAY_UNAVAILABLE,
                reason=f"events before {ring[0].seq if ring else self._seq + 1} are no longer in memory",
            )
        return ReplayBatch(command_id=cmd.command_id, from_seq=cmd.from_seq, last_seq=self._seq, events=events)

    def state_snapshot(self, command_id: str) -> StateSnapshot:
        """The console's view of the state (orders, positions, limits, trading states, strategies) at `seq`."""
        portfolio = self._portfolio
        positions = []
        for strategy_id, symbol in sorted(self._position_keys()):
            positions.append(
                PositionSummary(
                    strategy_id=strategy_id,
                    symbol=symbol,
                    quantity=portfolio.position(strategy_id, symbol),
                    avg_price=self._avg_price(strategy_id, symbol),
                    realized_pnl=portfolio.realized_pnl(strategy_id=strategy_id, symbol=symbol),
                    unrealized_pnl=portfolio.unrealized_pnl(strategy_id=strategy_id, symbol=symbol),
                    fees=portfolio.fees(strategy_id=strategy_id, symbol=symbol),
                )
            )
        strategies = tuple(
            StrategySummary(
                strategy_id=sid,
                state=e.strategy.state,
                params=params_to_wire(e.strategy.params),
                params_version=e.strategy.params_version,
            )
            for sid, e in sorted(self._strategies.items())
        )
        return StateSnapshot(
            command_id=command_id,
            engine_id=self._engine_id,
            seq=self._seq,
            ts=self._time.now(),
            trading_states=self._states.scope_states(),
            limits=self._risk.scope_limits(),
            strategies=strategies,
            orders=tuple(o.summary() for o in self._oms.working_orders()),
            positions=tuple(positions),
            # Rate windows counted up to the input clock's now (never before the engine's): a snapshot is read, not
            # journaled, and the console asks for the state as it is now, not as of the last input.
            utilisation=self._utilisation(self._stamp()),
            triggers=tuple(
                ScopeTriggerSettings(scope=scope, triggers=_trigger_settings(config))
                for scope, config in self._states.all_triggers()
            ),
        )

    def _utilisation(self, now: int) -> tuple:
        """Every scope's figures against its limits (engine.utilisation); reads only."""
        return utilisation.compute(
            risk=self._risk,
            oms=self._oms,
            portfolio=self._portfolio,
            instruments=self.instruments,
            strategy_ids=list(self._strategies),
            now=now,
        )

    def _position_keys(self) -> set[tuple[str, str]]:
        keys = getattr(self._portfolio, "position_keys", None)
        if keys is not None:
            return set(keys())
        found = {(e.strategy.strategy_id, e.symbol) for e in self._strategies.values()}
        found.update((o.strategy_id, o.symbol) for o in self._oms.working_orders())
        return found

    # ------------------------------------------------------------------ the order gate

    def _gate(self, order: Order, command_id: str = "") -> Any:
        """Risk-check a PENDING_NEW order; deny (event + OMS removal) or send. Returns the Denial or None."""
        denial = self._gate_and_send(order, command_id)
        if denial is None:
            self._emit_submitted(order, command_id)
        return denial

    def _gate_and_send(self, order: Order, command_id: str = "") -> Any:
        """`_gate` without the `OrderSubmitted`, which the caller then owes (`_emit_submitted`)."""
        denial = self._risk.check(order, reference_price=self._reference_price(order.symbol))
        if denial is not None:
            self._oms.on_order_denied(order.client_order_id)
            self._emit(
                OrderDenied(
                    strategy_id=order.strategy_id,
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    code=denial.code,
                    reason=denial.reason[:512],
                    command_id=command_id,
                )
            )
            return denial
        self._send(self._oms.place_message(order))
        return None

    def _emit_submitted(self, order: Order, command_id: str = "") -> None:
        self._emit(
            OrderSubmitted(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                order_type=order.order_type,
                time_in_force=order.time_in_force,
                price=order.price,
                quantity=order.quantity,
                post_only=order.post_only,
                command_id=command_id,
            )
        )

    def _check_replace(self, order: Order, price: int, quantity: int, command_id: str = "") -> Any:
        """A replace is judged as the order it would become; a refusal is an `OrderDenied` naming the live order
        (which stays as it was) with the replace in the reason."""
        denial = self._risk.check_replace(order, price, quantity, reference_price=self._reference_price(order.symbol))
        if denial is not None:
            self._emit(
                OrderDenied(
                    strategy_id=order.strategy_id,
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    code=denial.code,
                    reason=f"replace to {quantity}@{price}: {denial.reason}"[:512],
                    command_id=command_id,
                )
            )
        return denial

    def _reference_price(self, symbol: str) -> int | None:
        books = self._books[symbol]
        book = books.book
        bid, ask = book.best_bid, book.best_ask
        if bid is not None and ask is not None:
            return (bid + ask) // 2
        return books.last_trade or None

    def _send_cancel(self, msg: Any) -> None:
        order = self._oms.get(msg.client_order_id)
        self._risk.on_message_sent(
            self._time._now, strategy_id=order.strategy_id if order is not None else None, symbol=msg.symbol
        )
        self._send(msg)

    def _cancel_scope(self, scope: Scope) -> None:
        """Cancel every working order in `scope`. A firm or instrument scope goes out as one venue mass cancel when
        the gateway can send one (`supports_mass_cancel`); a strategy scope never does, since the venue cancels by
        account and other strategies share it. The gateway is asked on every call, and replay asks the same
        gateway (`Engine.recover` is given the live one), so the OMS issues the same ids on replay."""
        kind = scope.kind
        if kind == ScopeKind.STRATEGY:
            cancels = self._oms.cancel_all(strategy_id=scope.name)
        elif getattr(self.gateway, "supports_mass_cancel", False):
            self._mass_cancel(None if kind == ScopeKind.FIRM else scope.name)
            return
        elif kind == ScopeKind.FIRM:
            cancels = self._oms.cancel_all()
        else:
            cancels = self._oms.cancel_all(symbol=scope.name)
        for msg in cancels:
            self._send_cancel(msg)

    def _mass_cancel(self, symbol: str | None) -> None:
        mass, cancels = self._oms.request_mass_cancel(symbol=symbol)
        # The individual cancels (orders the venue may not know yet) first: on one ordered session the venue then
        # has each of them before the mass cancel, which finds only the rest.
        for msg in cancels:
            self._send_cancel(msg)
        if mass is not None:
            self._risk.on_message_sent(self._time._now, symbol=symbol)  # one message, whatever it cancels
            self._send(mass)

    def _on_state_changed(self, event: TradingStateChanged) -> None:
        self._emit(event)
        if event.state == TradingState.HALTED:
            # The kill switch: every working order in the scope is canceled in the same engine step.
            self._watch_halt(event.scope, command_id=event.command_id, code=event.code)
            self._cancel_scope(event.scope)

    def _watch_halt(self, scope: Scope, *, command_id: str, code: str = "") -> None:
        """Remember which orders this halt must see closed (before its cancels go out); with none, it is done."""
        done = self._halts.start(scope, self._orders_in(scope), self._time._now, command_id=command_id, code=code)
        if done is not None:
            self._emit(done)

    # ------------------------------------------------------------------ strategies

    def _quote_off_book(self, entry: _Strategy, book: L2Book, now: int) -> None:
        """Run the strategy on `book` and requote. When the market data carries our own resting orders (a venue's
        feed), the strategy is told which orders are its own: otherwise its skewed quote becomes "the market's"
        best price, moves the mid, moves the quote again, and it chases itself (config, not a guess: a recorded
        market never saw our simulated orders, and subtracting them there would remove someone else's liquidity)."""
        strategy = entry.strategy
        working = self._oms.working_orders(strategy_id=strategy.strategy_id, symbol=entry.symbol)
        quotes = strategy.on_book(book, now, working if self._own_in_book else None)
        if quotes is not None:
            self._requote(entry, quotes, working)

    def _requote(self, entry: _Strategy, quotes: Any, working: list[Order] | None = None) -> None:
        if quotes is None:
            return
        strategy = entry.strategy
        strategy_id = strategy.strategy_id
        symbol = entry.symbol
        states = self._states
        if states.non_active:
            firm, strat, instr = states.levels_for(strategy_id, symbol)
            if firm is _HALTED or strat is _HALTED or instr is _HALTED:
                return  # every new order would be denied; the halt already canceled what rested
            net_reducing = firm is _REDUCING or instr is _REDUCING
            if strat is _REDUCING or net_reducing:
                quotes = self._reducing_quotes(quotes, strategy_id, symbol, strat is _REDUCING, net_reducing)
        oms = self._oms
        if working is None:
            working = oms.working_orders(strategy_id=strategy_id, symbol=symbol)
        actions = entry.quoter.reconcile(quotes, working)
        # Every order of the requote goes out first, and their `OrderSubmitted` events after the last one: the
        # events are for the consoles, and building them between two sends delayed the second order.
        submitted: list[Order] = []
        for action in actions:
            kind = type(action)
            if kind is New:
                order = oms.new_order(
                    strategy_id=strategy_id,
                    client_order_id=oms.next_client_order_id(strategy_id),
                    symbol=symbol,
                    side=action.side,
                    order_type=OrderType.LIMIT,
                    time_in_force=TimeInForce.GTC,
                    price=action.price,
                    quantity=action.quantity,
                )
                if self._gate_and_send(order) is None:
                    submitted.append(order)
            elif kind is Replace:
                order = oms.get(action.client_order_id)
                if self._check_replace(order, action.price, action.quantity) is None:
                    msg = oms.request_replace(action.client_order_id, action.price, action.quantity)
                    self._risk.on_message_sent(self._time._now, strategy_id=strategy_id, symbol=symbol)
                    self._send(msg)
            elif kind is Cancel:
                self._send_cancel(oms.request_cancel(action.client_order_id))
        for order in submitted:
            self._emit_submitted(order)

    def _reducing_quotes(
        self, quotes: Quotes, strategy_id: str, symbol: str, strategy_reducing: bool, net_reducing: bool
    ) -> Quotes:
        """The part of `quotes` a REDUCING scope can let through: only the side that brings the position towards
        zero, at most |position| lots. Without this the strategy keeps asking for the other side on every book
        update and each ask is an `OrderDenied` (hundreds a second). The risk gate stays the authority (it also
        counts working orders); this only avoids proposing what it can only deny. A side cut to zero makes the
        quote manager cancel what rests there, which is what REDUCING wants anyway."""
        portfolio = self._portfolio
        buy_max = sell_max = None
        for applies, position in (
            (strategy_reducing, portfolio.position(strategy_id, symbol) if strategy_reducing else 0),
            (net_reducing, portfolio.net_position(symbol) if net_reducing else 0),
        ):
            if not applies:
                continue
            buys, sells = max(-position, 0), max(position, 0)
            buy_max = buys if buy_max is None else min(buy_max, buys)
            sell_max = sells if sell_max is None else min(sell_max, sells)
        bid_q = min(quotes.bid_quantity, buy_max)
        ask_q = min(quotes.ask_quantity, sell_max)
        if bid_q == quotes.bid_quantity and ask_q == quotes.ask_quantity:
            return quotes
        return Quotes(quotes.bid_price, bid_q, quotes.ask_price, ask_q)

    # ------------------------------------------------------------------ market data

    def _apply_market_data(self, msg: Any) -> None:
        books = self._books.get(msg.symbol)
        if books is None:
            return  # not an instrument of ours: the codec let it through, the engine has no book for it
        kind = type(msg)
        if self._trusted:
            feed = books.feed
            if msg.seq == feed.last_seq + 1 and not feed.stale:
                # Replayed data its reader already validated, arriving in sequence: the same book changes and
                # counters as the feed's path without re-checking every level (a batched apply instead of one call
                # per level). Anything out of sequence, and every snapshot, still goes through the feed.
                if kind is BookDeltas:
                    books.book.apply_deltas(msg.deltas)
                    feed.last_seq = msg.seq
                    feed.counters.applied += 1
                    self._after_book(books, msg, self._by_symbol.get(msg.symbol, ()), self._time._now)
                    return
                if kind is TradePrinted:
                    feed.last_seq = msg.seq
                    counters = feed.counters
                    counters.applied += 1
                    counters.trades += 1
                    books.last_trade = price = msg.price
                    now = self._time._now
                    for entry in self._by_symbol.get(msg.symbol, ()):
                        entry.strategy.on_trade(price, msg.quantity, msg.aggressor, now)
                    if self._market_trades:
                        self._emit_trade(msg)
                    return
        if kind is BookDeltas:
            outcome = books.feed.on_book_deltas(msg)
        elif kind is TradePrinted:
            outcome = books.feed.on_trade_printed(msg)
        elif kind is BookSnapshot:
            outcome = books.feed.on_snapshot(msg)
        else:
            return
        if books.requests:
            for symbol in books.requests:
                self._send(VenueRequestSnapshot(symbol=symbol))
            books.requests.clear()
        now = self._time._now
        entries = self._by_symbol.get(msg.symbol, ())
        if books.trades:
            for trade in books.trades:
                books.last_trade = trade.price
                for entry in entries:
                    entry.strategy.on_trade(trade.price, trade.quantity, trade.aggressor, now)
                if self._market_trades:
                    self._emit_trade(trade)
            books.trades.clear()
        if outcome is FeedOutcome.BUFFERED or outcome is FeedOutcome.DUPLICATE or outcome is FeedOutcome.REJECTED:
            return
        if kind is TradePrinted and outcome is FeedOutcome.APPLIED:
            return  # a print alone does not move the book
        if books.feed.stale:
            return  # never quote off a book with a hole in it
        self._after_book(books, msg, entries, now)

    def _emit_trade(self, trade: TradePrinted) -> None:
        self._emit(
            MarketTrade(
                symbol=trade.symbol,
                price=trade.price,
                quantity=trade.quantity,
                aggressor=trade.aggressor,
                venue_ts=trade.ts,
                trade_id=trade.trade_id,
            )
        )

    def _emit_depth(self, books: _Books, now: int) -> None:
        """BookDepth of the top levels; the next may go out one interval later (engine time, so replay agrees)."""
        book = books.book
        bids, asks = book.depth(MAX_DEPTH_LEVELS)
        books.depth_dirty = False
        books.depth_due = now + self._depth_interval
        self._emit(
            BookDepth(
                symbol=book.symbol,
                bids=tuple(PriceLevel(price=p, size=q) for p, q in bids),
                asks=tuple(PriceLevel(price=p, size=q) for p, q in asks),
                venue_ts=books.depth_ts,
            )
        )

    def _after_book(self, books: _Books, msg: Any, entries: Any, now: int) -> None:
        """The book of a live feed changed: mark, let the strategies quote, then publish the top if it moved and the
        depth when its interval has passed."""
        book = books.book
        bid, ask = book.best_bid, book.best_ask
        top = (bid or 0, book.best_bid_size, ask or 0, book.best_ask_size)
        moved = top != books.top
        if moved:
            if bid is not None and ask is not None and (bid != books.top[0] or ask != books.top[2]):
                self._portfolio.mark(msg.symbol, bid + ask)  # before the quotes: the risk gate reads the P&L
            books.top = top
        for entry in entries:
            self._quote_off_book(entry, book, now)
        if moved and self.config.publish_top_of_book:
            # After the quotes, like the depth: building and stamping the event is off the tick-to-quote path. The
            # stream then carries the orders an update caused before the top that caused them (same engine step,
            # same order on replay).
            self._emit(
                TopOfBookChanged(
                    symbol=msg.symbol,
                    bid_price=top[0],
                    bid_size=top[1],
                    ask_price=top[2],
                    ask_size=top[3],
                    venue_ts=msg.ts,
                )
            )
        if self._depth_interval:
            # Throttled, and after the quotes (off the tick-to-quote path): a flag and one compare per update, the
            # levels copied at most once per interval; a change inside it goes out on a later update or timer tick.
            books.depth_dirty = True
            books.depth_ts = msg.ts
            if now >= books.depth_due:
                self._emit_depth(books, now)

    # ------------------------------------------------------------------ execution reports

    def _apply_execution_report(self, report: ExecutionReport) -> None:
        queries = self._queries
        if queries.active and report.exec_type == _ORDER_STATUS and queries.waiting_for(report.client_order_id):
            order = self._oms.get(report.client_order_id)
            if order is not None and not order.is_terminal and self._is_stale_answer(order, report):
                # Asked under the id a replace moved the order off: ask again under the id the venue now knows it
                # by (the replace's, whether or not its REPLACED report is in yet); the request waits for that.
                under = order.pending_replace_id or order.client_order_id
                self._risk.on_message_sent(self._time._now, strategy_id=order.strategy_id, symbol=order.symbol)
                self._send(self._oms.query_message(under, under=under))
                queries.requery(report.client_order_id, under)
            else:
                # The venue's answer next to the engine's view before the OMS adopts the venue's.
                for answer in queries.on_status(report, order):
                    self._emit(answer)
        events = self._oms.on_execution_report(report)
        for event in events:
            self._emit(event)
            kind = type(event)
            if kind is OrderFilled:
                self._on_fill(event)
            elif kind is OrderRejected:
                for changed in self._states.on_reject(strategy_id=event.strategy_id, symbol=event.symbol):
                    self._on_state_changed(changed)
            elif kind is CancelRejected:
                self._on_cancel_rejected(event)
        if self._halts.active and events:
            for done in self._halts.on_events(events, self._oms, self._time._now):
                self._emit(done)

    def _on_cancel_rejected(self, event: CancelRejected) -> None:
        if event.code == VENUE_UNKNOWN_ORDER:
            self._query_if_live(event.orig_client_order_id)
        # A cancel chained on a replace the venue refused finds nothing, a refused mass cancel nothing at all:
        # re-issue the halt's cancels (one by one: a strategy scope never mass cancels).
        if self._states.state_for(event.strategy_id, event.symbol) is TradingState.HALTED:
            self._cancel_scope(Scope.strategy(event.strategy_id))

    def _apply_mass_cancel_report(self, report: MassCancelReport) -> None:
        events = self._oms.on_mass_cancel_report(report)
        emit = self._emit
        for event in events:
            emit(event)
        if self._halts.active and events:
            for done in self._halts.on_events(events, self._oms, self._time._now):
                emit(done)

    @staticmethod
    def _is_stale_answer(order: Order, report: ExecutionReport) -> bool:
        """A "not held" answer to a query that may predate a replace of `order` (see `is_stale_status`)."""
        return (
            report.status == OrderStatus.REJECTED
            and report.cum_quantity == 0
            and is_stale_status(order, report.client_order_id)
        )

    def _query_if_live(self, client_order_id: str) -> None:
        """The venue says it does not know an order we still hold live: it finished it (filled, expired, ...) and
        we missed the report that said how. Ask for its status; the ORDER_STATUS answer comes back as an execution
        report (journaled like any other) and the OMS reconciles it, so fills we never saw are booked."""
        order = self._oms.get(client_order_id)
        if order is None or order.is_terminal:
            return
        self._risk.on_message_sent(self._time._now, strategy_id=order.strategy_id, symbol=order.symbol)
        self._send(self._oms.query_message(client_order_id))

    def _apply_venue_reject(self, msg: VenueCommandRejected) -> None:
        # Counted per code (state: snapshotted and hashed) for operators; the protocol has no engine event for it
        # yet. A refused snapshot request leaves the feed stale, so nothing quotes off that book, and the feed's
        # timer asks again. A refused command about an order we hold live: ask the venue what it knows.
        rejects = self._venue_rejects
        rejects[msg.code] = rejects.get(msg.code, 0) + 1
        if msg.client_order_id and msg.command == "VenueMassCancel":
            # A mass cancel the venue refused without a report (35=j, an all-symbols one it cannot name a symbol
            # for) or the gateway never sent: its orders are not being canceled. Undo it as a refused report does,
            # so a halted scope re-issues individual cancels now and a later halt is not skipped.
            events = self._oms.mass_cancel_refused(msg.client_order_id, code=msg.code, reason=msg.reason, ts=msg.ts)
            for event in events:
                self._emit(event)
                self._on_cancel_rejected(event)
            if self._halts.active and events:
                for done in self._halts.on_events(events, self._oms, self._time._now):
                    self._emit(done)
            return
        # Never answer a refused status query with another query: while a FIX session is down the gateway
        # refuses every query, and re-asking turned that into a busy loop filling the journal. The logon
        # that brings the session back queries every working order anyway.
        if msg.client_order_id and msg.command != "VenueQueryOrder":
            self._query_if_live(msg.client_order_id)
        elif msg.command == "VenueQueryOrder" and self._queries.active:
            for done in self._queries.on_refused(msg.client_order_id):
                self._emit(done)

    def _on_fill(self, fill: OrderFilled) -> None:
        strategy_id, symbol = fill.strategy_id, fill.symbol
        portfolio = self._portfolio
        portfolio.on_fill(
            strategy_id=strategy_id,
            symbol=symbol,
            side=fill.side,
            price=fill.last_price,
            quantity=fill.last_quantity,
            commission=fill.commission,
        )
        self._emit(
            PositionChanged(
                strategy_id=strategy_id,
                symbol=symbol,
                quantity=portfolio.position(strategy_id, symbol),
                avg_price=self._avg_price(strategy_id, symbol),
                realized_pnl=portfolio.realized_pnl(strategy_id=strategy_id, symbol=symbol),
                fees=portfolio.fees(strategy_id=strategy_id, symbol=symbol),
            )
        )
        for changed in self._states.on_fill(strategy_id=strategy_id, symbol=symbol):
            self._on_state_changed(changed)
        entry = self._strategies.get(strategy_id)
        if entry is not None and entry.symbol == symbol:
            strategy = entry.strategy
            strategy.on_fill(fill.side, fill.last_price, fill.last_quantity, self._time._now)
            # The inventory moved the reservation price: requote now rather than on the next book update.
            self._quote_off_book(entry, self._books[symbol].book, self._time._now)

    def _avg_price(self, strategy_id: str, symbol: str) -> Decimal:
        return self._portfolio.avg_price(strategy_id, symbol)

    # ------------------------------------------------------------------ timer

    def _apply_timer(self, now: int) -> None:
        for changed in self._states.on_timer(now):
            self._on_state_changed(changed)
        for books in self._books.values():
            # A snapshot request (or its answer) that was lost or refused is asked for again after a timeout.
            if books.feed.on_timer(now):
                for symbol in books.requests:
                    self._send(VenueRequestSnapshot(symbol=symbol))
                books.requests.clear()
        for entry in self._strategies.values():
            self._requote(entry, entry.strategy.on_timer(now))
        config = self.config
        if config.publish_pnl_on_timer:
            portfolio = self._portfolio
            for scope, strategy_id in [(Scope.firm(), None)] + [(Scope.strategy(s), s) for s in self._strategies]:
                self._emit(
                    PnlUpdated(
                        scope=scope,
                        realized_pnl=portfolio.realized_pnl(strategy_id=strategy_id),
                        unrealized_pnl=portfolio.unrealized_pnl(strategy_id=strategy_id),
                        fees=portfolio.fees(strategy_id=strategy_id),
                    )
                )
        if self._depth_interval:
            for books in self._books.values():
                if books.depth_dirty and now >= books.depth_due:
                    self._emit_depth(books, now)
        if self._queries.active:
            for done in self._queries.on_timer(now):
                self._emit(done)
        every = config.utilisation_interval_ns
        if every and now - self._last_utilisation >= every:
            self._last_utilisation = now
            self._emit(RiskUtilisation(scopes=self._utilisation(now)))
        interval = config.heartbeat_interval_ns
        if interval and now - self._last_beat >= interval:
            self._last_beat = now
            self._emit(EngineHeartbeat(interval_ns=interval, firm_state=self._states.firm_state))

    # ------------------------------------------------------------------ state, snapshots, recovery

    def state_hash(self) -> str:
        """SHA-256 of a canonical MessagePack of the state: orders, positions, P&L, limits, trading states,
        strategy params and state, books, sequence numbers. Equal states give equal hashes across processes."""
        return hashlib.sha256(_ENCODER.encode(_canonical(self.state_view()))).hexdigest()

    def state_view(self) -> dict[str, Any]:
        """The hashed state, as plain data (the components' own `snapshot()`s where they have one)."""
        strategies = {}
        for sid, entry in sorted(self._strategies.items()):
            strategy = entry.strategy
            strategies[sid] = {
                "state": int(strategy.state),
                "params_version": strategy.params_version,
                "params": params_to_wire(strategy.params),
                "fields": _object_fields(strategy),
            }
        books = {}
        for symbol, b in sorted(self._books.items()):
            bids, asks = b.book.depth()
            books[symbol] = {
                "bids": bids,
                "asks": asks,
                "last_seq": b.feed.last_seq,
                "stale": b.feed.stale,
                "last_trade": b.last_trade,
            }
        return {
            "seq": self._seq,
            "journal_seq": self._applied,
            "time": self._time.now(),
            "oms": self._oms.snapshot(),
            "portfolio": self._portfolio.snapshot(),
            "risk": self._risk.snapshot(),
            "trading_states": self._states.snapshot(),
            "strategies": strategies,
            "books": books,
            "replies": [[k, _ENCODER.encode(v)] for k, v in self._replies.items()],
            "venue_rejects": self._venue_rejects,
            "halts": self._halts.snapshot(),
            "venue_queries": self._queries.snapshot(),
            "last_utilisation": self._last_utilisation,
            "depth": [[s, b.depth_due, b.depth_dirty, b.depth_ts] for s, b in sorted(self._books.items())],
        }

    @property
    def seq(self) -> int:
        """Last outbound event sequence number."""
        return self._seq

    @property
    def journal_seq(self) -> int:
        """Last journal record applied."""
        return self._applied

    def snapshot(self) -> Path | None:
        """Write a snapshot of the state after the last applied record (needs a journal and a snapshot dir).

        The state is plain data (the components' own `snapshot()`s, the strategies' tagged slots, the books and
        feeds, the remembered replies as protocol bytes) in MessagePack: loading it never runs code a file names,
        as unpickling would. It is checked against the stored state hash when loaded."""
        if self.journal is None or self.snapshot_dir is None:
            return None
        self._since_snapshot = 0
        snap = Snapshot(
            journal_seq=self._applied,
            journal_offset=self.journal.offset,
            ts=self._time.now(),
            event_seq=self._seq,
            state_hash=self.state_hash(),
            state=_ENCODER.encode(self._plain_state()),
        )
        return write_snapshot(self.snapshot_dir, snap, keep=self.config.keep_snapshots)

    def _plain_state(self) -> dict[str, Any]:
        encode = self.codec.encode
        return {
            "version": _STATE_VERSION,
            "time": self._time.now(),
            "oms": self._oms.snapshot(),
            "portfolio": self._portfolio.snapshot(),
            "risk": self._risk.snapshot(),
            "trading_states": self._states.snapshot(),
            # Insertion order is state: the timer walks strategies in it.
            "strategies": [[sid, strategy_state(e.strategy)] for sid, e in self._strategies.items()],
            "books": [[symbol, _book_state(b, encode)] for symbol, b in self._books.items()],
            "seq": self._seq,
            "applied": self._applied,
            "replies": [[k, encode(v)] for k, v in self._replies.items()],
            "last_beat": self._last_beat,
            "venue_rejects": self._venue_rejects,
            "halts": self._halts.snapshot(),
            "venue_queries": self._queries.snapshot(),
            "last_utilisation": self._last_utilisation,
        }

    def _restore(self, snap: Snapshot) -> bool:
        """Load `snap` into fresh components and adopt them only if the result hashes to the stored state hash;
        on any failure the engine is left exactly as it was (recovery then tries an older snapshot)."""
        saved = {name: getattr(self, name) for name in _STATE}
        saved_time = self._time._now
        try:
            self._load_plain(msgspec.msgpack.decode(snap.state))
            if self.state_hash() == snap.state_hash:
                return True
        except Exception:  # a snapshot we cannot use is skipped, never half-applied
            pass
        for name, value in saved.items():
            setattr(self, name, value)
        self._time._now = saved_time  # roll back (the clock itself never goes backwards)
        return False

    def _load_plain(self, state: dict[str, Any]) -> None:
        if state["version"] != _STATE_VERSION:
            raise EngineError("JOURNAL_BAD_SNAPSHOT", f"snapshot state version {state['version']}")
        parts = self._new_components()
        parts["_oms"].restore(state["oms"])
        parts["_portfolio"].restore(state["portfolio"])
        parts["_risk"].restore(state["risk"])
        parts["_states"].restore(state["trading_states"])
        books = parts["_books"]
        decode = self.codec.decode
        for symbol, data in state["books"]:
            _load_book(books[symbol], data, decode)
        strategies: dict[str, _Strategy] = {}
        by_symbol: dict[str, list[_Strategy]] = {}
        for sid, data in state["strategies"]:
            old = self._strategies[sid]  # a snapshot restores the configured strategies, it does not add any
            name, params, ts = old.created
            strategy = registry.create(name, sid, old.symbol, dict(params), ts=ts)
            restore_strategy(strategy, data)
            entry = _Strategy(strategy, getattr(strategy.params, "requote_threshold_ticks", 0), old.created)
            strategies[sid] = entry
            by_symbol.setdefault(entry.symbol, []).append(entry)
        if set(strategies) != set(self._strategies):
            raise EngineError("JOURNAL_BAD_SNAPSHOT", "snapshot strategies differ from the configured ones")
        for name, value in parts.items():
            setattr(self, name, value)
        self._strategies, self._by_symbol = strategies, by_symbol
        self._seq = state["seq"]
        self._applied = state["applied"]
        self._replies = OrderedDict((k, decode(v)) for k, v in state["replies"])
        self._last_beat = state["last_beat"]
        self._venue_rejects = dict(state["venue_rejects"])
        # Snapshots written before these existed hold none: nothing was pending then.
        self._halts = HaltWatch()
        self._halts.restore(state.get("halts", []))
        self._queries = VenueQueries()
        self._queries.restore(state.get("venue_queries", []))
        self._last_utilisation = state.get("last_utilisation", 0)
        self._time._now = state["time"]

    def replay(self, records: Any) -> int:
        """Apply journaled records through the normal code path with the gateway off; returns how many."""
        self._replaying = True
        n = 0
        try:
            for record in records:
                self._apply_record(record)
                n += 1
        finally:
            self._replaying = False
        return n

    def _apply_record(self, record: Any) -> None:
        self._time.set(max(record.ts, self._time.now()))
        kind = record.kind
        if kind == RecordKind.COMMAND:
            cmd = record.message
            if cmd.command_id not in self._replies:
                self._apply_command(cmd)
        elif kind == RecordKind.MARKET_DATA:
            self._apply_market_data(record.message)
        elif kind == RecordKind.EXECUTION_REPORT:
            self._apply_execution_report(record.message)
        elif kind == RecordKind.TIMER:
            self._apply_timer(record.ts)
        elif kind == RecordKind.VENUE_REJECT:
            self._apply_venue_reject(record.message)
        elif kind == RecordKind.MASS_CANCEL_REPORT:
            self._apply_mass_cancel_report(record.message)
        self._applied = record.seq

    @classmethod
    def recover(
        cls,
        config: EngineConfig,
        clock: Clock,
        instruments: InstrumentRegistry,
        gateway: Any,
        journal_path: Path | str,
        *,
        snapshot_dir: Path | str | None = None,
        policy: FsyncPolicy = FsyncPolicy.EVERY_RECORD,
        use_snapshots: bool = True,
    ) -> Engine:
        """Newest valid snapshot + replay of the journal after it; the journal's torn tail is truncated and the
        engine continues appending to it. The events regenerated by the replay are in `recovered_events` (and in
        the replay ring), not in `outbox`: they were produced before the crash."""
        codec = Codec(instruments)
        journal = Journal(journal_path, codec, policy=policy)  # validates and truncates a torn tail
        first = next(read_journal(journal_path, codec), None)
        start_ns = first.ts if first is not None and first.kind == RecordKind.START else None
        engine = cls(config, clock, instruments, gateway, journal, snapshot_dir=snapshot_dir, start_ns=start_ns)
        start_offset, after_seq = 0, 0
        if use_snapshots and snapshot_dir is not None:
            for snap in snapshots_newest_first(snapshot_dir):
                if snap.journal_seq <= journal.last_seq and engine._restore(snap):
                    start_offset, after_seq = snap.journal_offset, snap.journal_seq
                    break
        engine.replay(read_journal(journal_path, codec, start_offset=start_offset, after_seq=after_seq))
        engine.recovered_events = engine.drain()
        engine.recovered_from = after_seq
        return engine

    recovered_events: list[EventEnvelope] = []
    recovered_from: int = 0

    # ------------------------------------------------------------------ read access for drivers and tests

    @property
    def oms(self) -> Oms:
        return self._oms

    @property
    def portfolio(self) -> Portfolio:
        return self._portfolio

    @property
    def risk(self) -> RiskGate:
        return self._risk

    @property
    def trading_states(self) -> TradingStates:
        return self._states

    def book(self, symbol: str) -> L2Book:
        return self._books[symbol].book

    def strategy(self, strategy_id: str) -> Any:
        return self._strategy(strategy_id).strategy

    @property
    def time(self) -> int:
        return self._time.now()


def replay_events_from_journal(
    config: EngineConfig,
    instruments: InstrumentRegistry,
    journal_path: Path | str,
    from_seq: int,
    *,
    supports_mass_cancel: bool = False,
) -> list[EventEnvelope]:
    """Regenerate outbound events with seq >= `from_seq` by replaying the whole journal into a fresh engine with no
    gateway (issue 5's RequestReplay for events older than the ring). Slow; for reconnects, not the hot path.
    `supports_mass_cancel` must be the live gateway's: it decides how a halt cancels, hence the ids that follow."""
    from engine.gateway import NullGateway

    codec = Codec(instruments)
    first = next(read_journal(journal_path, codec), None)
    start_ns = first.ts if first is not None and first.kind == RecordKind.START else 0
    gateway = NullGateway(supports_mass_cancel=supports_mass_cancel)
    engine = Engine(config, FakeClock(start_ns), instruments, gateway, start_ns=start_ns)
    engine._replaying = True
    out: list[EventEnvelope] = []
    for record in read_journal(journal_path, codec):
        engine._apply_record(record)
        out.extend(e for e in engine.drain() if e.seq >= from_seq)
    return out


_COMMANDS = {
    SubmitOrder: Engine._cmd_submit,
    CancelOrder: Engine._cmd_cancel,
    ReplaceOrder: Engine._cmd_replace,
    CancelAllOrders: Engine._cmd_cancel_all,
    SetLimits: Engine._cmd_set_limits,
    HaltTrading: Engine._cmd_halt,
    ReduceTrading: Engine._cmd_reduce,
    ResumeTrading: Engine._cmd_resume,
    StartStrategy: Engine._cmd_start,
    StopStrategy: Engine._cmd_stop,
    UpdateStrategyParams: Engine._cmd_update_params,
    RollbackStrategyParams: Engine._cmd_rollback_params,
    Heartbeat: Engine._cmd_heartbeat,
    QueryVenueOrders: Engine._cmd_query_venue,
    SetTriggers: Engine._cmd_set_triggers,
}


def _trigger_settings(config: TriggerConfig) -> TriggerSettings:
    """The engine's trigger configuration in its wire form (the same fields)."""
    return TriggerSettings(**{name: getattr(config, name) for name in TriggerConfig.__struct_fields__})


# --- canonical form for the state hash ---------------------------------------------------------------------

_ENCODER = msgspec.msgpack.Encoder()


def _canonical(value: Any) -> Any:
    """Plain data with one encoding per value: dicts become key-sorted pair lists (keys of any type), Decimals
    tagged strings of their normalized value, enums their value, tuples lists, structs their fields."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str or kind is float or kind is bytes:
        return value
    if isinstance(value, Enum):
        return _canonical(value.value)
    if isinstance(value, Decimal):
        return "D:" + str(value.normalize()) if value else "D:0"
    if isinstance(value, dict):
        pairs = [(_canonical(k), _canonical(v)) for k, v in value.items()]
        pairs.sort(key=lambda kv: _ENCODER.encode(kv[0]))
        return ["__map__", [list(p) for p in pairs]]
    if isinstance(value, (list, tuple, deque)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return ["__set__", sorted((_canonical(v) for v in value), key=_ENCODER.encode)]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, msgspec.Struct):
        return [type(value).__name__, _canonical(msgspec.structs.asdict(value))]
    return [type(value).__name__, _canonical(_object_fields(value))]


def _object_fields(obj: Any) -> dict[str, Any]:
    """Every slot / attribute of a plain object (a strategy and its estimators), for hashing."""
    fields: dict[str, Any] = {}
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(obj, name):
                fields[name] = getattr(obj, name)
    if hasattr(obj, "__dict__"):
        fields.update(vars(obj))
    return fields


# --- plain-data snapshot of a book and its feed -------------------------------------------------------------

_STATE_VERSION = 1


def _book_state(b: _Books, encode: Any) -> dict[str, Any]:
    """A book's levels and its feed's sequencing state (buffered messages as protocol bytes)."""
    feed = b.feed
    bids, asks = b.book.depth()
    reject = feed.last_reject
    return {
        "bids": [list(level) for level in bids],
        "asks": [list(level) for level in asks],
        "last_seq": feed.last_seq,
        "stale": feed.stale,
        "counters": feed.counters.as_dict(),
        "last_reject": None if reject is None else [reject.code, reject.reason],
        "buffer": [[seq, encode(msg)] for seq, msg in feed._buffer.items()],
        "buffer_seqs": list(feed._buffer_seqs),
        "max_seen": feed._max_seen,
        "requested_at": feed._requested_at,
        "resend_requested": feed._resend_requested,
        "last_trade": b.last_trade,
        "top": list(b.top),
        "depth_due": b.depth_due,
        "depth_dirty": b.depth_dirty,
        "depth_ts": b.depth_ts,
    }


def _load_book(b: _Books, data: dict[str, Any], decode: Any) -> None:
    from engine.feed import FeedError

    b.book.load_snapshot([tuple(level) for level in data["bids"]], [tuple(level) for level in data["asks"]])
    feed = b.feed
    feed.last_seq = data["last_seq"]
    feed.stale = data["stale"]
    for name, value in data["counters"].items():
        setattr(feed.counters, name, value)
    reject = data["last_reject"]
    feed.last_reject = None if reject is None else FeedError(reject[0], reject[1])
    feed._buffer = {seq: decode(msg) for seq, msg in data["buffer"]}
    feed._buffer_seqs = list(data["buffer_seqs"])
    feed._max_seen = data["max_seen"]
    feed._requested_at = data["requested_at"]
    feed._resend_requested = data["resend_requested"]
    b.last_trade = data["last_trade"]
    b.top = tuple(data["top"])
    b.depth_due = data.get("depth_due", 0)
    b.depth_dirty = data.get("depth_dirty", False)
    b.depth_ts = data.get("depth_ts", 0)
