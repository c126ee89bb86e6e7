"""Replay a recorded market as resting liquidity and trades in the venue, to trade against (venue thread).

A recorded L2 stream says "the level at price p now holds s lots"; the venue matches orders. The replay bridges the
two with two accounts of its own:

* `maker_account` holds the recorded liquidity. Setting a level to `s` places a GTC limit order for the missing
  lots (it joins the back of the queue, behind any strategy order already there) or takes lots away from its
  newest orders first (cancel, or a size-down replace that keeps priority). Taking from the back is the
  conservative queue model: a strategy order never moves ahead because the crowd in front of it shrank.
* `taker_account` reproduces recorded trades: an IOC at the trade's price and size, so it eats through the queue in
  time priority, recorded liquidity ahead of a strategy order first, then the strategy order.

A recorded level that crosses the replay's own opposite levels means those are stale (the feed would have
removed them); they are cleared first, so the replay never self-trades. A level that crosses a strategy order
trades with it: the market moved through that order.

Record types are plain tuples (`LevelUpdate`, `TradeRecord`, `TopOfBook`, `BookReset`) so any recorded source can
feed the replay; `records_from_binance` adapts `engine.marketdata.binance.iter_binance_file`. Time moves only
when the caller moves it: `poll()` replays every record stamped at or before `clock()`.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import NamedTuple

from engine.enums import ExecType, OrderType, Side, TimeInForce
from engine.instruments import Instrument
from engine.protocol import ExecutionReport, VenueCancelOrder, VenuePlaceOrder, VenueReplaceOrder


class LevelUpdate(NamedTuple):
    ts: int
    side: Side
    price: int  # ticks
    size: int  # lots; 0 removes the level


class TradeRecord(NamedTuple):
    ts: int
    aggressor: Side
    price: int
    size: int


class TopOfBook(NamedTuple):
    """Best bid and ask: sets both levels and removes any recorded level inside them (stale)."""

    ts: int
    bid: int
    bid_size: int
    ask: int
    ask_size: int


class BookReset(NamedTuple):
    """Forget all recorded liquidity (a snapshot follows)."""

    ts: int


ReplayRecord = LevelUpdate | TradeRecord | TopOfBook | BookReset

_GONE = {ExecType.CANCELED, ExecType.EXPIRED, ExecType.REJECTED}


class ReplayMarket:
    """Drives a venue (through `send`, e.g. `Venue.handle`) from recorded records, in timestamp order.

    As with `PoissonFlow`, pass messages caused by other senders to `observe` so the replay knows which of its
    orders a strategy has filled; otherwise it over-counts its liquidity until a cancel or replace is refused.
    """

    def __init__(
        self,
        records: Iterable[ReplayRecord],
        *,
        symbol: str,
        send: Callable[[object], list],
        clock: Callable[[], int],
        maker_account: str = "REPLAY",
        taker_account: str = "REPLAY-TAKER",
        replay_trades: bool = True,
    ) -> None:
        self.symbol = symbol
        self._records: Iterator[ReplayRecord] = iter(records)
        self._pending: ReplayRecord | None = None
        self._send = send
        self._clock = clock
        self.maker_account = maker_account
        self.taker_account = taker_account
        self.replay_trades = replay_trades
        self._orders: dict[str, list[int]] = {}  # client id -> [side, price, quantity, cum]
        self._levels: dict[tuple[int, int], list[str]] = {}  # (side, price) -> client ids, oldest first
        self._prices: dict[int, list[int]] = {1: [], -1: []}  # ascending prices with recorded liquidity
        self._seq = 0
        self.records_replayed = 0
        self.exhausted = False

    # ------------------------------------------------------------------ driving

    def poll(self) -> list:
        """Replay every record stamped at or before `clock()`; returns the venue messages caused."""
        now = self._clock()
        out: list = []
        while True:
            record = self._pending if self._pending is not None else next(self._records, None)
            self._pending = None
            if record is None:
                self.exhausted = True
                return out
            if record.ts > now:
                self._pending = record
                return out
            out += self.apply(record)

    def run(self) -> list:
        """Replay everything left, whatever the clock says (a backtest that only wants the market)."""
        out: list = []
        if self._pending is not None:
            out += self.apply(self._pending)
            self._pending = None
        for record in self._records:
            out += self.apply(record)
        self.exhausted = True
        return out

    def observe(self, messages: list) -> None:
        """Learn from venue messages caused by other senders (a strategy filling recorded liquidity)."""
        self._observe(messages)

    def apply(self, record: ReplayRecord) -> list:
        """Apply one record now."""
        self.records_replayed += 1
        out: list = []
        kind = type(record)
        if kind is LevelUpdate:
            self._set_level(record.side, record.price, record.size, record.ts, out)
        elif kind is TradeRecord:
            if self.replay_trades:
                self._trade(record, out)
        elif kind is TopOfBook:
            self._clear_beyond(1, record.bid, record.ts, out)
            self._clear_beyond(-1, record.ask, record.ts, out)
            self._set_level(Side.BUY, record.bid, record.bid_size, record.ts, out)
            self._set_level(Side.SELL, record.ask, record.ask_size, record.ts, out)
        elif kind is BookReset:
            for side in (1, -1):
                for price in list(self._prices[side]):
                    self._set_level(side, price, 0, record.ts, out)
        else:
            raise TypeError(f"not a replay record: {record!r}")
        return out

    def recorded_size(self, side: int, price: int) -> int:
        """Lots the replay believes it has resting at a level."""
        orders = self._orders
        return sum(orders[c][2] - orders[c][3] for c in self._levels.get((side, price), ()))

    # ------------------------------------------------------------------ internals

    def _set_level(self, side: int, price: int, size: int, ts: int, out: list) -> None:
        key = (side, price)
        ids = self._levels.get(key)
        current = self.recorded_size(side, price) if ids else 0
        if size > current:
            # Stale opposite levels first: a recorded book is never crossed, so they must already be gone.
            self._clear_beyond(-side, price, ts, out, inclusive=True)
            self._place(side, price, size - current, ts, out)
        elif size < current:
            excess = current - size
            for cl_id in reversed(list(ids)):
                if not excess:
                    break
                order = self._orders.get(cl_id)
                if order is None:
                    continue
                leaves = order[2] - order[3]
                if leaves <= excess:
                    excess -= leaves
                    self._cancel(cl_id, ts, out)
                else:
                    self._shrink(cl_id, order[3] + leaves - excess, ts, out)
                    excess = 0

    def _clear_beyond(self, side: int, price: int, ts: int, out: list, *, inclusive: bool = False) -> None:
        """Remove recorded `side` levels better than `price` (or at it, when `inclusive`)."""
        prices = self._prices[side]
        while prices:
            best = prices[-1] if side == 1 else prices[0]
            better = best > price if side == 1 else best < price
            if not (better or (inclusive and best == price)):
                return
            self._set_level(side, best, 0, ts, out)
            # Normally the cancels above emptied the level; forgetting what is left guarantees the loop ends.
            for cl_id in list(self._levels.get((side, best), ())):
                self._forget(cl_id)

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.maker_account}-{self._seq}"

    def _place(self, side: int, price: int, qty: int, ts: int, out: list) -> None:
        cl_id = self._next_id()
        self._orders[cl_id] = [side, price, qty, 0]
        self._add_to_level(side, price, cl_id)
        self._emit(
            VenuePlaceOrder(
                client_order_id=cl_id,
                account=self.maker_account,
                symbol=self.symbol,
                side=Side(side),
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=price,
                quantity=qty,
                ts=ts,
            ),
            out,
        )

    def _cancel(self, cl_id: str, ts: int, out: list) -> None:
        self._forget(cl_id)
        self._emit(
            VenueCancelOrder(
                client_order_id=self._next_id(),
                orig_client_order_id=cl_id,
                account=self.maker_account,
                symbol=self.symbol,
                ts=ts,
            ),
            out,
        )

    def _shrink(self, cl_id: str, quantity: int, ts: int, out: list) -> None:
        order = self._orders[cl_id]
        new_id = self._next_id()
        # Renamed before sending: the venue's REPLACED report already speaks of the new id.
        self._rename(cl_id, new_id)
        order[2] = quantity
        self._emit(
            VenueReplaceOrder(
                client_order_id=new_id,
                orig_client_order_id=cl_id,
                account=self.maker_account,
                symbol=self.symbol,
                price=order[1],
                quantity=quantity,
                ts=ts,
            ),
            out,
        )

    def _trade(self, record: TradeRecord, out: list) -> None:
        self._emit(
            VenuePlaceOrder(
                client_order_id=self._next_id(),
                account=self.taker_account,
                symbol=self.symbol,
                side=Side(record.aggressor),
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.IOC,
                price=record.price,
                quantity=record.size,
                ts=record.ts,
            ),
            out,
        )

    def _emit(self, command: object, out: list) -> None:
        messages = self._send(command)
        self._observe(messages)
        out += messages

    def _observe(self, messages: list) -> None:
        orders = self._orders
        account = self.maker_account
        for m in messages:
            if type(m) is not ExecutionReport or m.account != account:
                continue
            exec_type = m.exec_type
            if exec_type == ExecType.TRADE:
                order = orders.get(m.client_order_id)
                if order is not None:
                    order[3] = m.cum_quantity
                    if m.leaves_quantity == 0:
                        self._forget(m.client_order_id)
            elif exec_type in _GONE:
                self._forget(m.client_order_id)
                if m.orig_client_order_id:
                    self._forget(m.orig_client_order_id)
            elif exec_type == ExecType.CANCEL_REJECTED:
                # The order is gone at the venue (filled by someone we did not hear from): stop counting it.
                self._forget(m.orig_client_order_id)
                self._forget(m.client_order_id)

    def _add_to_level(self, side: int, price: int, cl_id: str) -> None:
        key = (side, price)
        ids = self._levels.get(key)
        if ids is None:
            self._levels[key] = [cl_id]
            insort(self._prices[side], price)
        else:
            ids.append(cl_id)

    def _rename(self, old: str, new: str) -> None:
        order = self._orders.pop(old)
        self._orders[new] = order
        ids = self._levels[(order[0], order[1])]
        ids[ids.index(old)] = new

    def _forget(self, cl_id: str) -> None:
        order = self._orders.pop(cl_id, None)
        if order is None:
            return
        key = (order[0], order[1])
        ids = self._levels[key]
        ids.remove(cl_id)
        if not ids:
            del self._levels[key]
            prices = self._prices[order[0]]
            del prices[bisect_left(prices, order[1])]


def records_from_binance(path: Path | str, instrument: Instrument, *, trades: bool = True) -> Iterator[ReplayRecord]:
    """Replay records from a Binance capture read by `engine.marketdata.binance.iter_binance_file`.

    Stamped with the local receive time (the order the recorder saw things in). A depth snapshot resets the book;
    a diff's removals come before its additions so a diff never crosses the book half-applied; a book ticker
    becomes a `TopOfBook`; trades that did not cross the public book (liquidations, ADL) are skipped.
    """
    from engine.marketdata.binance import BookTicker, DepthDiff, DepthSnapshot, Trade, iter_binance_file

    for record in iter_binance_file(path, instrument):
        kind = type(record)
        ts = record.recv_ns
        if kind is DepthDiff:
            removals = chain(
                (LevelUpdate(ts, Side.BUY, p, s) for p, s in record.bids if not s),
                (LevelUpdate(ts, Side.SELL, p, s) for p, s in record.asks if not s),
            )
            additions = chain(
                (LevelUpdate(ts, Side.BUY, p, s) for p, s in record.bids if s),
                (LevelUpdate(ts, Side.SELL, p, s) for p, s in record.asks if s),
            )
            yield from removals
            yield from additions
        elif kind is BookTicker:
            yield TopOfBook(ts, record.bid, record.bid_size, record.ask, record.ask_size)
        elif kind is Trade:
            if trades and record.kind == "MARKET" and record.quantity > 0:
                yield TradeRecord(ts, record.aggressor, record.price, record.quantity)
        elif kind is DepthSnapshot:
            yield BookReset(ts)
            for p, s in record.bids:
                if s:
                    yield LevelUpdate(ts, Side.BUY, p, s)
            for p, s in record.asks:
                if s:
                    yield LevelUpdate(ts, Side.SELL, p, s)
