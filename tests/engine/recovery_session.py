"""A scripted, seeded trading session for the engine's core and crash tests (also run as a subprocess).

The "world" is everything outside the engine: a fake clock, the in-process venue with seeded Poisson background
flow, the gateway's inbound queue, console commands at scripted times and timer ticks. It survives an engine
crash, as the exchange and the console would. An input is taken off the queue only after the engine has handled
it (journaled and applied), so an input whose journal record was torn is delivered again after recovery, like an
unacknowledged message resent by its sender.

Run as a script, it drives a long session with the journal on disk until it is killed:
    python tests/engine/recovery_session.py DIR SEED
"""

from __future__ import annotations

import sys
from collections import deque
from decimal import Decimal
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.clock import FakeClock
from engine.config import EngineConfig, StrategyConfig
from engine.core import Engine
from engine.enums import OrderType, Side, TimeInForce
from engine.gateway import InProcessGateway
from engine.instruments import Instrument, InstrumentRegistry
from engine.journal import FsyncPolicy, Journal
from engine.protocol import (
    BookDeltas,
    BookSnapshot,
    CancelAllOrders,
    CancelOrder,
    Codec,
    ExecutionReport,
    HaltTrading,
    Heartbeat,
    MassCancelReport,
    ReduceTrading,
    ResumeTrading,
    RiskLimits,
    RollbackStrategyParams,
    Scope,
    SetLimits,
    StartStrategy,
    StopStrategy,
    SubmitOrder,
    TradePrinted,
    UpdateStrategyParams,
    VenueCommandRejected,
)
from engine.venue import FlowConfig, PoissonFlow, Venue

SYMBOL = "BTC-USD"
ACCOUNT = "MM1"
START_NS = 1_700_000_000_000_000_000
MS = 1_000_000
INSTRUMENTS = InstrumentRegistry(
    [
        Instrument(
            symbol=SYMBOL, tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), price_precision=2, size_precision=3
        )
    ]
)
AS_PARAMS = {
    "gamma": Decimal("0.05"),
    "k": Decimal("1.5"),
    "sigma": Decimal("2"),
    "horizon_s": Decimal("1"),
    "order_size": 2,
    "max_inventory": 10,
    "requote_threshold_ticks": 1,
}
_MD = (BookDeltas, TradePrinted, BookSnapshot)


def engine_config(*, snapshot_every: int = 0, top_of_book: bool = True) -> EngineConfig:
    return EngineConfig(
        engine_id="test-engine",
        account=ACCOUNT,
        strategies=(StrategyConfig(strategy_id="as1", symbol=SYMBOL, params=AS_PARAMS),),
        snapshot_every_records=snapshot_every,
        publish_top_of_book=top_of_book,
        maker_fee_bps=Decimal("-1"),
        taker_fee_bps=Decimal("5"),
    )


class TimerTick:
    __slots__ = ("now",)

    def __init__(self, now: int) -> None:
        self.now = now


def _cmd(kind, n: int, t_ms: int, **fields):
    return kind(command_id=f"c{n}", operator="alice", ts=START_NS + t_ms * MS, **fields)


def script() -> list[tuple[int, object]]:
    """(ms after start, command): manual orders, a risk denial, limit changes, parameter changes, a halt and a
    resume, a reduce, a repeated command id, a stop and a restart."""
    firm = Scope.firm()
    limits = RiskLimits(max_order_quantity=Decimal("0.01"), max_position=Decimal("0.03"), max_open_orders=20)
    entries = [
        (0, _cmd(SetLimits, 1, 0, scope=firm, limits=limits)),
        (1, _cmd(StartStrategy, 2, 1, strategy_id="as1")),
        (300, _manual(3, 300, "m-1", Side.BUY, "99.00", "0.003")),
        (600, _manual(4, 600, "m-2", Side.BUY, "99.50", "0.5")),  # past max_order_quantity: denied
        (800, _cmd(CancelOrder, 5, 800, client_order_id="m-1", symbol=SYMBOL)),
        (1000, _cmd(UpdateStrategyParams, 6, 1000, strategy_id="as1", params={"gamma": Decimal("0.08")})),
        (1300, _cmd(SetLimits, 7, 1300, scope=Scope.strategy("as1"), limits=RiskLimits(max_open_orders=4))),
        (1600, _cmd(HaltTrading, 8, 1600, scope=firm, reason="drill")),
        (1900, _cmd(ResumeTrading, 9, 1900, scope=firm, reason="drill over")),
        (2000, _cmd(SetLimits, 7, 2000, scope=Scope.strategy("as1"), limits=RiskLimits(max_open_orders=1))),
        (2100, _cmd(Heartbeat, 10, 2100)),
        (2300, _cmd(ReduceTrading, 11, 2300, scope=Scope.instrument(SYMBOL), reason="inventory")),
        (2600, _cmd(ResumeTrading, 12, 2600, scope=Scope.instrument(SYMBOL), reason="flat enough")),
        (2800, _cmd(RollbackStrategyParams, 13, 2800, strategy_id="as1", version=1)),
        (3000, _market(14, 3000, "m-3", Side.SELL, "0.002")),
        (3200, _cmd(CancelAllOrders, 15, 3200, scope=Scope.strategy("as1"))),
        (3400, _cmd(StopStrategy, 16, 3400, strategy_id="as1", reason="pause")),
        (3500, _cmd(StartStrategy, 17, 3500, strategy_id="as1")),
    ]
    return entries


def _manual(n: int, t_ms: int, cid: str, side: Side, price: str, qty: str) -> SubmitOrder:
    return _cmd(
        SubmitOrder,
        n,
        t_ms,
        strategy_id="manual",
        client_order_id=cid,
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal(price),
        quantity=Decimal(qty),
    )


def _market(n: int, t_ms: int, cid: str, side: Side, qty: str) -> SubmitOrder:
    return _cmd(
        SubmitOrder,
        n,
        t_ms,
        strategy_id="manual",
        client_order_id=cid,
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        quantity=Decimal(qty),
    )


class World:
    """Clock, venue, background flow, console script and the inbound queue."""

    def __init__(self, seed: int, *, duration_ms: int = 4000, step_ms: int = 1, timer_ms: int = 50) -> None:
        self.clock = FakeClock(START_NS)
        self.venue = Venue([SYMBOL], clock=self.clock.now)
        self.gateway = InProcessGateway(self.venue, ACCOUNT)
        flow = FlowConfig(
            symbol=SYMBOL,
            initial_price=10_000,
            intensity=300.0,
            market_share=0.25,
            cancel_rate=0.5,
            volatility=0.0005,
            depth_ticks=4.0,
            size_mean=3.0,
            size_max=20,
        )
        self.flow = PoissonFlow(flow, send=self._flow_send, clock=self.clock.now, seed=seed)
        self.gateway.observer = self.flow.observe
        self.flow.prime(levels=5, orders_per_level=1)
        self.script = deque(script())
        self.end = START_NS + duration_ms * MS
        self.step = step_ms * MS
        self.timer = timer_ms * MS
        self.next_timer = START_NS + self.timer

    @property
    def inbox(self) -> deque:
        return self.gateway.inbox

    def _flow_send(self, command: object) -> list:
        messages = self.venue.handle(command)
        self.gateway.deliver(messages)
        return messages

    def next_input(self) -> object | None:
        """The oldest unacknowledged input, moving time on when there is none; None at the end of the session."""
        inbox = self.gateway.inbox
        while not inbox:
            if self.clock.now() >= self.end:
                return None
            now = self.clock.advance(self.step)
            self.flow.poll()
            while self.script and START_NS + self.script[0][0] * MS <= now:
                inbox.append(self.script.popleft()[1])
            if now >= self.next_timer:
                inbox.append(TimerTick(now))
                self.next_timer += self.timer
        return inbox[0]

    def ack(self) -> None:
        self.gateway.inbox.popleft()


def deliver(engine: Engine, item: object) -> object | None:
    """Hand one input to the engine through its entry point; returns the reply for a command."""
    kind = type(item)
    if kind is TimerTick:
        engine.on_timer(item.now)
    elif kind is ExecutionReport:
        engine.handle_execution_report(item)
    elif kind in _MD:
        engine.handle_market_data(item)
    elif kind is VenueCommandRejected:
        engine.handle_venue_reject(item)
    elif kind is MassCancelReport:
        engine.handle_mass_cancel_report(item)
    else:
        return engine.handle_command(item)
    return None


def new_engine(world: World, directory: Path | None, *, snapshot_every: int = 0, policy=FsyncPolicy.NEVER) -> Engine:
    journal = None
    if directory is not None:
        journal = Journal(directory / "engine.journal", Codec(INSTRUMENTS), policy=policy)
    return Engine(
        engine_config(snapshot_every=snapshot_every),
        world.clock,
        INSTRUMENTS,
        world.gateway,
        journal,
        snapshot_dir=directory / "snapshots" if directory is not None else None,
    )


def recover(world: World, directory: Path, *, snapshot_every: int = 0, use_snapshots: bool = True) -> Engine:
    return Engine.recover(
        engine_config(snapshot_every=snapshot_every),
        world.clock,
        INSTRUMENTS,
        world.gateway,
        directory / "engine.journal",
        snapshot_dir=directory / "snapshots",
        policy=FsyncPolicy.NEVER,
        use_snapshots=use_snapshots,
    )


class Run:
    """A session in progress: the world, the engine, and everything it published."""

    def __init__(self, seed: int, directory: Path | None, *, duration_ms: int = 4000, snapshot_every: int = 0):
        self.world = World(seed, duration_ms=duration_ms)
        self.directory = directory
        self.snapshot_every = snapshot_every
        self.engine = new_engine(self.world, directory, snapshot_every=snapshot_every)
        self.events: list = self.engine.drain()
        self.replies: list = []
        self.inputs = 0

    def step(self) -> bool:
        item = self.world.next_input()
        if item is None:
            return False
        reply = deliver(self.engine, item)
        if reply is not None:
            self.replies.append(reply)
        self.events.extend(self.engine.drain())
        self.world.ack()
        self.inputs += 1
        return True

    def run(self, *, until_inputs: int | None = None, until_journal_seq: int | None = None) -> Run:
        while True:
            if until_inputs is not None and self.inputs >= until_inputs:
                return self
            if until_journal_seq is not None and self.engine.journal_seq >= until_journal_seq:
                return self
            if not self.step():
                return self


def main() -> None:
    directory, seed = Path(sys.argv[1]), int(sys.argv[2])
    run = Run(seed, directory, duration_ms=600_000, snapshot_every=300)
    print("ready", flush=True)
    run.run()
    print("done", run.engine.journal_seq, flush=True)


if __name__ == "__main__":
    main()
