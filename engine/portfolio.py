"""Positions and P&L per strategy, instrument and firm: average cost, fees, daily P&L, drawdown (engine thread only).

Exact arithmetic. Every amount is an integer of one money unit, `10**-scale` of the currency, with `scale` chosen at
start-up so that half a tick times a lot of every instrument is a whole number of units (plus 9 spare digits): BTCUSDT
at tick 0.1, lot 0.001 has a half-tick-lot of 0.00005, so scale = 5 + 9. Prices arrive in ticks and marks as twice
the mid in ticks (`mid_ticks2`), so a half-tick mid stays an integer. Decimals appear only at the edge (queries and
commissions) and convert exactly, so no float ever touches P&L.

Per position (strategy, symbol) three integers: `qty` (signed lots), `flow` (money paid for all fills: sum of
side * price * quantity) and `cost` (the average-cost basis of the open quantity, same sign as `qty`). Then
    unrealized = qty * mark - cost,   realized = cost - flow,   realized + unrealized = qty * mark - flow,
so the total is plain cash-flow accounting whatever happens to `cost`. Adding to a position adds the fill's cost;
reducing it removes a pro-rata share of the cost (the one place a division happens: rounded half-even to one money
unit, and the rounding stays inside realized, never lost); going through zero closes the old position and opens the
rest at the fill price. Fees (commission per fill, a rebate when negative) are kept apart and reduce P&L.

Equity = realized + unrealized - fees, per strategy and for the firm, is maintained incrementally on every fill and
mark, and with it the peak (for drawdown) and the equity at the start of the day (for daily P&L). The day starts at
UTC midnight plus `day_start_offset_ns`, read from the clock passed in: the first fill or mark of a new day takes the
equity of the moment as the day's opening, so a position carried over the boundary starts the day with its
unrealized P&L as of the boundary and only later moves count. Instruments are assumed to share one currency.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from engine.clock import Clock
from engine.enums import Side
from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentRegistry

NS_PER_DAY = 86_400 * 1_000_000_000
_SPARE_DIGITS = 9
_CTX = Context(prec=80)  # wide enough that scaling money between ints and Decimals never rounds


class PortfolioError(EngineError):
    """A fill or mark the engine should never have produced (unknown symbol, non-positive quantity)."""


def _div_half_even(a: int, b: int) -> int:
    """a / b rounded half-even, b != 0, in integers (no float, no Decimal context)."""
    if b < 0:
        a, b = -a, -b
    q, r = divmod(a, b)
    twice = 2 * r
    if twice > b or (twice == b and q & 1):
        q += 1
    return q


class _Equity:
    """Equity, its running peak and worst drawdown, and the equity at the start of the day, for one scope."""

    __slots__ = ("day_start", "equity", "max_drawdown", "peak")

    def __init__(self) -> None:
        self.equity = 0
        self.peak = 0
        self.max_drawdown = 0
        self.day_start = 0

    def move(self, delta: int) -> None:
        equity = self.equity + delta
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        elif self.peak - equity > self.max_drawdown:
            self.max_drawdown = self.peak - equity

    def to_list(self) -> list[int]:
        return [self.equity, self.peak, self.max_drawdown, self.day_start]

    @classmethod
    def from_list(cls, data: list[int]) -> _Equity:
        eq = cls()
        eq.equity, eq.peak, eq.max_drawdown, eq.day_start = data
        return eq


class _Position:
    __slots__ = ("book", "cost", "fees", "flow", "half_tick_lot", "qty", "strategy_id", "symbol")

    def __init__(self, strategy_id: str, symbol: str, half_tick_lot: int, book: _Equity) -> None:
        self.strategy_id = strategy_id
        self.symbol = symbol
        self.half_tick_lot = half_tick_lot  # money units per (half tick * lot)
        self.book = book  # the strategy's equity record
        self.qty = 0
        self.cost = 0
        self.flow = 0
        self.fees = 0


class Portfolio:
    """Positions and P&L. Engine thread only; the clock passed in decides the trading day, never the wall clock."""

    __slots__ = (
        "_by_strategy",
        "_by_symbol",
        "_clock",
        "_day",
        "_day_offset",
        "_firm",
        "_half_tick_lot",
        "_instruments",
        "_market_marked",
        "_marks",
        "_net",
        "_one",
        "_positions",
        "_scale",
        "_strategies",
        "_unit",
    )

    def __init__(self, clock: Clock, instruments: InstrumentRegistry, *, day_start_offset_ns: int = 0) -> None:
        if not 0 <= day_start_offset_ns < NS_PER_DAY:
            raise PortfolioError(
                "PORTFOLIO_BAD_DAY_OFFSET", f"day_start_offset_ns must be in [0, 1 day), got {day_start_offset_ns}"
            )
        self._clock = clock
        self._instruments = instruments
        self._day_offset = day_start_offset_ns
        halves = {i.symbol: i.tick_size * i.lot_size * i.multiplier / 2 for i in instruments}
        # Smallest number of decimal places that makes every half-tick-lot a whole number, plus spare digits so a
        # pro-rata cost and a commission with more decimals than the price grid still land exactly on a unit.
        places = max((max(-h.normalize().as_tuple().exponent, 0) for h in halves.values()), default=0)
        self._scale = places + _SPARE_DIGITS
        self._half_tick_lot = {s: int(h.scaleb(self._scale, _CTX)) for s, h in halves.items()}
        self._one = 10**self._scale  # units per currency unit
        self._unit = Decimal(1).scaleb(-self._scale)  # a unit as a Decimal
        self._positions: dict[tuple[str, str], _Position] = {}
        self._by_symbol: dict[str, list[_Position]] = {}
        self._by_strategy: dict[str, list[_Position]] = {}
        self._strategies: dict[str, _Equity] = {}
        self._firm = _Equity()
        self._net: dict[str, int] = {}  # symbol -> net lots over strategies
        self._marks: dict[str, int] = {}  # symbol -> twice the mark price in ticks
        # Symbols marked by the market at least once; until then a symbol is marked at its last fill price.
        self._market_marked: set[str] = set()
        self._day = self._day_of(clock.now())

    # ------------------------------------------------------------------ inputs

    def on_fill(
        self, *, strategy_id: str, symbol: str, side: Side, price: int, quantity: int, commission: Decimal
    ) -> None:
        """Book one fill: `price` in ticks, `quantity` in lots (> 0), `commission` in money (negative = rebate)."""
        now = self._clock.now()
        if self._day_of(now) != self._day:
            self._roll(now)
        if quantity <= 0:
            raise PortfolioError("PORTFOLIO_BAD_FILL", f"fill quantity must be positive, got {quantity}")
        pos = self._positions.get((strategy_id, symbol))
        if pos is None:
            pos = self._open(strategy_id, symbol)
        marks = self._marks
        if symbol not in self._market_marked:
            # Not marked by the market yet: the last fill price is the best mark there is. Moving the mark moves
            # the unrealized P&L of every position already held in the symbol.
            old = marks.get(symbol)
            new_mark = 2 * price
            if old is not None and old != new_mark:
                self._move_mark(symbol, new_mark - old)
            marks[symbol] = new_mark
        mark = marks[symbol]
        unit = pos.half_tick_lot
        d = quantity if side == 1 else -quantity
        amount = d * price * 2 * unit  # signed money paid
        q = pos.qty
        if q == 0 or (q > 0) == (d > 0):
            pos.cost += amount
        elif abs(d) <= abs(q):
            pos.cost = _div_half_even(pos.cost * (q + d), q)
        else:
            pos.cost = (q + d) * price * 2 * unit  # flipped: the rest opens at the fill price
        pos.flow += amount
        pos.qty = q + d
        self._net[symbol] = self._net.get(symbol, 0) + d
        fee = 0
        if commission:
            fee = int(commission.scaleb(self._scale, _CTX).to_integral_value(ROUND_HALF_EVEN, _CTX))
            pos.fees += fee
        # Equity change of this fill: d lots now valued at the mark, paid at the fill price, minus the fee.
        delta = d * mark * unit - amount - fee
        pos.book.move(delta)
        self._firm.move(delta)

    def mark(self, symbol: str, mid_ticks2: int) -> None:
        """Mark `symbol` at the mid, given as twice the mid in ticks (bid + ask)."""
        now = self._clock.now()
        if (now - self._day_offset) // NS_PER_DAY != self._day:
            self._roll(now)
        marks = self._marks
        old = marks.get(symbol)
        if old == mid_ticks2 and symbol in self._market_marked:
            return  # most book updates leave the mid where it was
        marks[symbol] = mid_ticks2
        if symbol not in self._market_marked:
            if symbol not in self._half_tick_lot:
                del marks[symbol]
                raise PortfolioError("PORTFOLIO_UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}")
            self._market_marked.add(symbol)
        if old is not None and old != mid_ticks2:
            self._move_mark(symbol, mid_ticks2 - old)

    def _move_mark(self, symbol: str, dm: int) -> None:
        """Revalue every open position in `symbol` by a mark change of `dm` half-ticks. `_Equity.move` is inlined:
        this runs on every book update that moves the mid, inside the tick-to-quote budget."""
        firm_delta = 0
        for pos in self._by_symbol.get(symbol, ()):
            q = pos.qty
            if q:
                delta = q * dm * pos.half_tick_lot
                book = pos.book
                equity = book.equity + delta
                book.equity = equity
                if equity > book.peak:
                    book.peak = equity
                elif book.peak - equity > book.max_drawdown:
                    book.max_drawdown = book.peak - equity
                firm_delta += delta
        if firm_delta:
            self._firm.move(firm_delta)

    # ------------------------------------------------------------------ queries

    def position(self, strategy_id: str, symbol: str) -> int:
        """Signed position in lots (short < 0)."""
        pos = self._positions.get((strategy_id, symbol))
        return pos.qty if pos is not None else 0

    def net_position(self, symbol: str) -> int:
        """Signed position in lots over all strategies."""
        return self._net.get(symbol, 0)

    def position_keys(self) -> list[tuple[str, str]]:
        """Every (strategy_id, symbol) that has traded, sorted."""
        return sorted(self._positions)

    def avg_price(self, strategy_id: str, symbol: str) -> Decimal:
        """Average cost of the open position in price units (positive; 0 when flat)."""
        pos = self._positions.get((strategy_id, symbol))
        if pos is None or not pos.qty:
            return Decimal(0)
        instrument: Instrument = self._instruments.get(symbol)
        ticks = _CTX.divide(Decimal(pos.cost), Decimal(pos.qty * 2 * pos.half_tick_lot))
        return +(ticks * instrument.tick_size)  # unary plus rounds to the default 28 digits

    def mark_price(self, symbol: str) -> Decimal | None:
        """The current mark in price units (None before any fill or mark)."""
        mark = self._marks.get(symbol)
        if mark is None:
            return None
        return self._instruments.get(symbol).tick_size * mark / 2

    def realized_pnl(self, *, strategy_id: str | None = None, symbol: str | None = None) -> Decimal:
        return self._money(sum(p.cost - p.flow for p in self._select(strategy_id, symbol)))

    def unrealized_pnl(self, *, strategy_id: str | None = None, symbol: str | None = None) -> Decimal:
        marks = self._marks
        return self._money(
            sum(p.qty * marks[p.symbol] * p.half_tick_lot - p.cost for p in self._select(strategy_id, symbol) if p.qty)
        )

    def fees(self, *, strategy_id: str | None = None, symbol: str | None = None) -> Decimal:
        return self._money(sum(p.fees for p in self._select(strategy_id, symbol)))

    def total_pnl(self, *, strategy_id: str | None = None, symbol: str | None = None) -> Decimal:
        """realized + unrealized - fees."""
        marks = self._marks
        return self._money(
            sum(
                (p.qty * marks[p.symbol] * p.half_tick_lot if p.qty else 0) - p.flow - p.fees
                for p in self._select(strategy_id, symbol)
            )
        )

    def daily_pnl(self, *, strategy_id: str | None = None) -> Decimal:
        """realized + unrealized - fees since the start of the trading day (firm when `strategy_id` is None)."""
        book = self._book(strategy_id)
        if book is None or self._day_of(self._clock.now()) != self._day:
            return Decimal(0)  # nothing happened yet today: equity still equals the day's opening equity
        return self._money(book.equity - book.day_start)

    def daily_pnl_units(self, strategy_id: str | None = None) -> int:
        """`daily_pnl` as an integer of money units (`10**-money_scale` of the currency), for the risk gate: no
        Decimal on the order path (and `strategy_id` may be passed positionally, which is cheaper there)."""
        book = self._firm if strategy_id is None else self._strategies.get(strategy_id)
        if book is None or (self._clock.now() - self._day_offset) // NS_PER_DAY != self._day:
            return 0
        return book.equity - book.day_start

    @property
    def money_scale(self) -> int:
        """Money units are `10**-money_scale` of the currency (fixed at start-up by the instruments)."""
        return self._scale

    def mark2(self, symbol: str) -> int | None:
        """Twice the current mark of `symbol` in ticks (None before any fill or mark): `mark_price` without the
        Decimal, for the risk gate's exposure figures."""
        return self._marks.get(symbol)

    def drawdown(self, *, strategy_id: str | None = None) -> Decimal:
        """Current drawdown: the peak of the equity curve minus the equity now (>= 0). Resets as equity makes a
        new high, so a drawdown trigger can be resumed once the loss is recovered."""
        book = self._book(strategy_id)
        return self._money(book.peak - book.equity) if book is not None else Decimal(0)

    def max_drawdown(self, *, strategy_id: str | None = None) -> Decimal:
        """The largest peak-to-trough fall of the equity curve so far."""
        book = self._book(strategy_id)
        return self._money(book.max_drawdown) if book is not None else Decimal(0)

    def equity(self, *, strategy_id: str | None = None) -> Decimal:
        """realized + unrealized - fees, as tracked for drawdown and daily P&L."""
        book = self._book(strategy_id)
        return self._money(book.equity) if book is not None else Decimal(0)

    def gross_exposure(self, *, strategy_id: str | None = None) -> Decimal:
        """Sum of |position notional| at the mark. Firm-wide, positions are netted per symbol first (one account)."""
        marks = self._marks
        if strategy_id is None:
            total = sum(abs(q * marks[s] * self._half_tick_lot[s]) for s, q in self._net.items() if q)
        else:
            total = sum(
                abs(p.qty * marks[p.symbol] * p.half_tick_lot) for p in self._select(strategy_id, None) if p.qty
            )
        return self._money(total)

    def net_exposure(self, *, strategy_id: str | None = None) -> Decimal:
        """Signed sum of position notionals at the mark."""
        marks = self._marks
        if strategy_id is None:
            total = sum(q * marks[s] * self._half_tick_lot[s] for s, q in self._net.items() if q)
        else:
            total = sum(p.qty * marks[p.symbol] * p.half_tick_lot for p in self._select(strategy_id, None) if p.qty)
        return self._money(total)

    # ------------------------------------------------------------------ internals

    def _open(self, strategy_id: str, symbol: str) -> _Position:
        unit = self._half_tick_lot.get(symbol)
        if unit is None:
            raise PortfolioError("PORTFOLIO_UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}")
        book = self._strategies.get(strategy_id)
        if book is None:
            book = self._strategies[strategy_id] = _Equity()
        pos = _Position(strategy_id, symbol, unit, book)
        self._positions[(strategy_id, symbol)] = pos
        self._by_symbol.setdefault(symbol, []).append(pos)
        self._by_strategy.setdefault(strategy_id, []).append(pos)
        return pos

    def _select(self, strategy_id: str | None, symbol: str | None) -> list[_Position]:
        if strategy_id is not None:
            if symbol is not None:
                pos = self._positions.get((strategy_id, symbol))
                return [pos] if pos is not None else []
            return self._by_strategy.get(strategy_id, [])
        if symbol is not None:
            return self._by_symbol.get(symbol, [])
        return list(self._positions.values())

    def _book(self, strategy_id: str | None) -> _Equity | None:
        return self._firm if strategy_id is None else self._strategies.get(strategy_id)

    def _day_of(self, now: int) -> int:
        return (now - self._day_offset) // NS_PER_DAY

    def _roll(self, now: int) -> None:
        """First event of a new trading day: today's P&L counts from the equity of this moment."""
        self._day = self._day_of(now)
        self._firm.day_start = self._firm.equity
        for book in self._strategies.values():
            book.day_start = book.equity

    def _money(self, units: int) -> Decimal:
        """Units to a Decimal without trailing zeros or an exponent: "8", "0.125". Queries on the risk path call
        this, so whole amounts skip Decimal arithmetic and the rest take one multiplication by 10**-scale (exact:
        the coefficient is the integer itself, well within the context's precision for any real P&L)."""
        whole, rest = divmod(units, self._one)
        if not rest:
            return Decimal(whole)
        return (Decimal(units) * self._unit).normalize(_CTX)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """Plain, msgspec-serialisable data with sorted keys; equal states give equal snapshots."""
        return {
            "day": self._day,
            "firm": self._firm.to_list(),
            "market_marked": sorted(self._market_marked),
            "marks": dict(sorted(self._marks.items())),
            "positions": [
                [p.strategy_id, p.symbol, p.qty, p.cost, p.flow, p.fees]
                for p in sorted(self._positions.values(), key=lambda p: (p.strategy_id, p.symbol))
            ],
            "scale": self._scale,
            "strategies": {sid: book.to_list() for sid, book in sorted(self._strategies.items())},
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole state with a `snapshot()` taken with the same instruments."""
        if data["scale"] != self._scale:
            raise PortfolioError("PORTFOLIO_BAD_SNAPSHOT", f"snapshot scale {data['scale']}, expected {self._scale}")
        self._positions = {}
        self._by_symbol = {}
        self._by_strategy = {}
        self._net = {}
        self._strategies = {sid: _Equity.from_list(v) for sid, v in data["strategies"].items()}
        self._firm = _Equity.from_list(data["firm"])
        for strategy_id, symbol, qty, cost, flow, fees in data["positions"]:
            pos = self._open(strategy_id, symbol)
            pos.qty, pos.cost, pos.flow, pos.fees = qty, cost, flow, fees
            self._net[symbol] = self._net.get(symbol, 0) + qty
        self._marks = dict(data["marks"])
        self._market_marked = set(data["market_marked"])
        self._day = data["day"]


__all__ = ["NS_PER_DAY", "Portfolio", "PortfolioError"]
