"""An engine over the in-process venue, with a journal, for the tests of what the consoles read from the engine
(market trades, depth, fees, halt completion, risk utilisation, venue status queries)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import recovery_session as rs

from engine.clock import FakeClock
from engine.config import EngineConfig, ScopeTriggers, StrategyConfig
from engine.core import Engine
from engine.enums import OrderType, Side, TimeInForce
from engine.gateway import InProcessGateway
from engine.journal import FsyncPolicy, Journal
from engine.protocol import Codec, SubmitOrder, VenuePlaceOrder
from engine.venue import Venue

SYMBOL = rs.SYMBOL
START = rs.START_NS
MS = 1_000_000


class HoldingGateway(InProcessGateway):
    """The in-process gateway over a real venue that can hold commands back (a slow or absent link): while `hold` is
    set, commands are kept in `held` and reach the venue only on `release()`. Keeps every command it was given."""

    __slots__ = ("commands", "held", "hold")

    def __init__(self, venue: Venue, account: str, *, supports_mass_cancel: bool = True) -> None:
        super().__init__(venue, account, supports_mass_cancel=supports_mass_cancel)
        self.commands: list = []
        self.held: list = []
        self.hold = False

    def send(self, command) -> None:
        self.commands.append(command)
        if self.hold:
            self.held.append(command)
        else:
            super().send(command)

    def release(self) -> None:
        held, self.held = self.held, []
        for command in held:
            super().send(command)


def config(**changes) -> EngineConfig:
    fields = {
        "engine_id": "console-engine",
        "account": "MM1",
        "strategies": (StrategyConfig(strategy_id="as1", symbol=SYMBOL, params=rs.AS_PARAMS),),
        "maker_fee_bps": Decimal("-1"),
        "taker_fee_bps": Decimal("5"),
        "triggers": (),
    }
    return EngineConfig(**(fields | changes))


class Desk:
    """The engine, its venue and a clock; `tmp_path` adds a journal and snapshots on disk."""

    def __init__(self, tmp_path: Path | None = None, *, triggers: tuple[ScopeTriggers, ...] = (), **changes) -> None:
        self.clock = FakeClock(START)
        self.venue = Venue([SYMBOL], clock=self.clock.now)
        self.gateway = HoldingGateway(self.venue, "MM1")
        self.journal = None
        self.snapshots = None
        if tmp_path is not None:
            self.journal = Journal(tmp_path / "j", Codec(rs.INSTRUMENTS), policy=FsyncPolicy.NEVER)
            self.snapshots = tmp_path / "snapshots"
        self.config = config(triggers=triggers, **changes)
        self.engine = Engine(
            self.config, self.clock, rs.INSTRUMENTS, self.gateway, self.journal, snapshot_dir=self.snapshots
        )
        self.n = 0
        self.published: list = []

    def cmd(self, kind, **fields):
        self.n += 1
        self.clock.advance(1_000)
        return self.engine.handle_command(
            kind(command_id=f"k{self.n}", operator="risk-1", ts=self.clock.now(), **fields)
        )

    def submit(self, cid: str, side: Side, price: str, qty: str, *, strategy_id: str = "manual"):
        return self.cmd(
            SubmitOrder,
            strategy_id=strategy_id,
            client_order_id=cid,
            symbol=SYMBOL,
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=Decimal(price),
            quantity=Decimal(qty),
        )

    def pump(self) -> None:
        inbox = self.gateway.inbox
        while inbox:
            rs.deliver(self.engine, inbox.popleft())

    def other(self, side: Side, price: int, lots: int, cid: str, *, pump: bool = True, account: str = "LP") -> None:
        """Another participant's order at the venue; what it causes reaches the engine (now, or on the next pump)."""
        msgs = self.venue.handle(
            VenuePlaceOrder(
                client_order_id=cid,
                account=account,
                symbol=SYMBOL,
                side=side,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=price,
                quantity=lots,
            )
        )
        self.gateway.deliver(msgs)
        if pump:
            self.pump()

    def market(self) -> None:
        self.other(Side.BUY, 9_990, 5, "lp-b")
        self.other(Side.SELL, 10_010, 5, "lp-a")

    def timer(self, at_ns: int) -> None:
        self.clock.set(at_ns)
        self.engine.on_timer(at_ns)

    def events(self, kind=None) -> list:
        """Events published since the last call to `take`, of `kind` when given."""
        out = [e.event for e in self.engine.outbox]
        return out if kind is None else [e for e in out if type(e) is kind]

    def take(self) -> list:
        envelopes = self.engine.drain()
        self.published.extend(envelopes)
        return [e.event for e in envelopes]
