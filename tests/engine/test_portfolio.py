"""Positions and P&L: hand-computed average-cost cases, fees, the day boundary, drawdown, exposures, snapshots, and
the cash-flow identity as a property."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.enums import Side
from engine.instruments import Instrument, InstrumentRegistry
from engine.portfolio import NS_PER_DAY, Portfolio, PortfolioError

BUY, SELL = Side.BUY, Side.SELL
HOUR = 3_600 * 1_000_000_000
D = Decimal

# UNIT: one tick per lot is worth 1 (tick 1, lot 1): P&L in ticks*lots reads directly as money.
UNIT = Instrument(symbol="UNIT", tick_size=D("1"), lot_size=D("1"), price_precision=0, size_precision=0)
BTC = Instrument(symbol="BTCUSDT", tick_size=D("0.1"), lot_size=D("0.001"), price_precision=1, size_precision=3)
ES = Instrument(
    symbol="ESM4", tick_size=D("0.25"), lot_size=D("1"), price_precision=2, size_precision=0, multiplier=D("50")
)
INSTRUMENTS = InstrumentRegistry([UNIT, BTC, ES])


def make(start_ns: int = 10 * HOUR, **kwargs) -> tuple[Portfolio, FakeClock]:
    clock = FakeClock(start_ns)
    return Portfolio(clock, INSTRUMENTS, **kwargs), clock


def fill(p: Portfolio, side: Side, price: int, qty: int, *, strategy="s", symbol="UNIT", fee="0") -> None:
    p.on_fill(strategy_id=strategy, symbol=symbol, side=side, price=price, quantity=qty, commission=D(fee))


def test_average_cost_through_adds_a_reduction_and_a_flip_matches_the_hand_computation():
    p, _ = make()
    # buy 2 @100, buy 1 @103 -> long 3 @101; sell 2 @105 realises 2*(105-101) = 8 -> long 1 @101;
    # sell 2 @101 closes 1 at 0 and opens short 1 @101; at mid 99 the short is up 1*(101-99) = 2.
    fill(p, BUY, 100, 2)
    fill(p, BUY, 103, 1)
    assert (p.position("s", "UNIT"), p.avg_price("s", "UNIT")) == (3, D(101))
    fill(p, SELL, 105, 2)
    assert (p.position("s", "UNIT"), p.avg_price("s", "UNIT"), p.realized_pnl()) == (1, D(101), D(8))

    fill(p, SELL, 101, 2)
    p.mark("UNIT", 198)

    assert p.position("s", "UNIT") == -1
    assert p.avg_price("s", "UNIT") == D(101)
    assert p.realized_pnl() == D(8)
    assert p.unrealized_pnl() == D(2)
    assert p.total_pnl() == D(10)


def test_flipping_realises_the_closed_part_and_opens_the_rest_at_the_fill_price():
    p, _ = make()
    fill(p, SELL, 200, 3)

    fill(p, BUY, 190, 5)

    assert p.realized_pnl() == D(30)
    assert (p.position("s", "UNIT"), p.avg_price("s", "UNIT")) == (2, D(190))
    assert p.unrealized_pnl() == D(0)  # marked at the last fill price until the market marks it


def test_fees_reduce_pnl_and_rebates_add_to_it():
    p, _ = make()
    fill(p, BUY, 100, 2, fee="0.50")
    fill(p, SELL, 104, 2, fee="-0.20")

    total = p.total_pnl()

    assert p.fees() == D("0.3")
    assert p.realized_pnl() == D(8)
    assert total == D("7.7")
    assert p.equity() == total


def test_money_converts_with_tick_size_lot_size_and_multiplier():
    p, _ = make()
    fill(p, BUY, 52000, 1, symbol="ESM4")  # 1 contract at 13000.00
    fill(p, BUY, 1000000, 2500, symbol="BTCUSDT")  # 2.5 BTC at 100000.0

    p.mark("ESM4", 2 * 52004)  # +4 ticks = 1.00 point = 50 USD
    p.mark("BTCUSDT", 2 * 1000000 + 1)  # +half a tick = 0.05 USDT on 2.5 BTC = 0.125

    assert p.unrealized_pnl(symbol="ESM4") == D(50)
    assert p.unrealized_pnl(symbol="BTCUSDT") == D("0.125")
    assert p.gross_exposure() == D("13001") * 50 + D("100000.05") * D("2.5")


def test_a_non_integer_average_cost_keeps_the_total_exact_and_realized_within_one_unit():
    p, _ = make()
    fill(p, BUY, 100, 1)
    fill(p, BUY, 101, 2)  # average 100 2/3

    fill(p, SELL, 102, 1)  # realises 1 1/3
    p.mark("UNIT", 2 * 103)

    assert abs(p.realized_pnl() - D(4) / 3) < D("1e-9")
    assert abs(p.avg_price("s", "UNIT") - (D(302) / 3)) < D("1e-9")
    assert p.realized_pnl() + p.unrealized_pnl() == D(-302 + 102 + 2 * 103)


def test_scopes_sum_per_strategy_per_instrument_and_for_the_firm():
    p, _ = make()
    fill(p, BUY, 100, 2, strategy="a")
    fill(p, SELL, 110, 1, strategy="b")
    fill(p, BUY, 52000, 1, strategy="a", symbol="ESM4")
    p.mark("UNIT", 2 * 105)
    p.mark("ESM4", 2 * 51996)

    assert p.unrealized_pnl(strategy_id="a", symbol="UNIT") == D(10)
    assert p.unrealized_pnl(strategy_id="b") == D(5)
    assert p.unrealized_pnl(symbol="UNIT") == D(15)
    assert p.unrealized_pnl(strategy_id="a") == D(10 - 50)
    assert p.unrealized_pnl() == D(15 - 50)
    assert p.net_position("UNIT") == 1
    assert p.position_keys() == [("a", "ESM4"), ("a", "UNIT"), ("b", "UNIT")]


def test_exposures_are_notional_at_the_mark_and_net_across_strategies_for_the_firm():
    p, _ = make()
    fill(p, BUY, 100, 2, strategy="a")
    fill(p, SELL, 100, 3, strategy="b")
    p.mark("UNIT", 2 * 110)

    assert p.gross_exposure(strategy_id="a") == D(220)
    assert p.net_exposure(strategy_id="b") == D(-330)
    assert p.gross_exposure() == D(110)  # one account: the firm holds net short 1
    assert p.net_exposure() == D(-110)


def test_daily_pnl_counts_only_what_happens_after_the_day_boundary():
    offset = 2 * HOUR
    p, clock = make(start_ns=10 * NS_PER_DAY + 20 * HOUR, day_start_offset_ns=offset)
    fill(p, BUY, 100, 1)
    p.mark("UNIT", 2 * 104)
    assert p.daily_pnl() == D(4)

    clock.set(11 * NS_PER_DAY + 1 * HOUR)  # 01:00 UTC: still the same trading day with a 02:00 boundary
    p.mark("UNIT", 2 * 105)
    assert p.daily_pnl() == D(5)

    clock.set(11 * NS_PER_DAY + 3 * HOUR)  # past the boundary: the new day has seen nothing yet
    assert p.daily_pnl() == D(0)
    assert p.daily_pnl(strategy_id="s") == D(0)
    assert p.daily_pnl_units() == p.daily_pnl_units(strategy_id="s") == 0

    p.mark("UNIT", 2 * 103)  # the carried position opened the day at 105
    fill(p, SELL, 106, 1, fee="0.25")

    assert p.daily_pnl() == D("0.75")
    assert p.daily_pnl(strategy_id="s") == D("0.75")
    assert p.daily_pnl_units() == 75 * 10 ** (p.money_scale - 2)
    assert p.total_pnl() == D("5.75")


def test_a_strategy_that_first_trades_in_a_later_day_starts_that_day_at_zero():
    p, clock = make()
    fill(p, BUY, 100, 1, strategy="a")
    clock.advance(NS_PER_DAY)

    fill(p, BUY, 100, 1, strategy="b", fee="1")

    assert p.daily_pnl(strategy_id="b") == D(-1)
    assert p.daily_pnl() == D(-1)


def test_drawdown_follows_the_equity_curve_from_its_peak():
    p, _ = make()
    fill(p, BUY, 100, 1)
    path = []

    for mid in (110, 95, 105, 90, 120, 115):
        p.mark("UNIT", 2 * mid)
        path.append((p.equity(), p.drawdown(), p.max_drawdown()))

    assert path == [
        (D(10), D(0), D(0)),
        (D(-5), D(15), D(15)),
        (D(5), D(5), D(15)),
        (D(-10), D(20), D(20)),
        (D(20), D(0), D(20)),
        (D(15), D(5), D(20)),
    ]


def test_drawdown_is_tracked_per_strategy_and_for_the_firm():
    p, _ = make()
    fill(p, BUY, 100, 1, strategy="a")
    fill(p, SELL, 100, 1, strategy="b")

    p.mark("UNIT", 2 * 90)

    assert p.drawdown(strategy_id="a") == D(10)
    assert p.drawdown(strategy_id="b") == D(0)
    assert p.drawdown() == D(0)  # the firm is flat
    assert p.drawdown(strategy_id="nobody") == D(0)


def test_fees_count_in_drawdown_at_the_fill():
    p, _ = make()

    fill(p, BUY, 100, 1, fee="2")

    assert p.drawdown() == D(2)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda p: fill(p, BUY, 100, 1, symbol="NOPE"), "PORTFOLIO_UNKNOWN_SYMBOL"),
        (lambda p: fill(p, BUY, 100, 0), "PORTFOLIO_BAD_FILL"),
        (lambda p: p.mark("NOPE", 10), "PORTFOLIO_UNKNOWN_SYMBOL"),
    ],
)
def test_fills_and_marks_the_engine_should_never_produce_raise_with_a_code(call, code):
    p, _ = make()

    with pytest.raises(PortfolioError) as caught:
        call(p)

    assert caught.value.code == code


def test_a_restored_portfolio_has_the_same_snapshot_and_continues_the_same():
    p, _ = make()
    fill(p, BUY, 100, 3, strategy="a", fee="0.1")
    fill(p, SELL, 1000000, 7, strategy="b", symbol="BTCUSDT")
    p.mark("UNIT", 205)
    fill(p, SELL, 104, 1, strategy="a")
    snap = p.snapshot()
    copy, _ = make()

    copy.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(snap)))

    assert copy.snapshot() == snap
    for q in (p, copy):
        q.mark("BTCUSDT", 1999990)
        fill(q, BUY, 99, 2, strategy="a")
    assert copy.snapshot() == p.snapshot()
    for query in ("daily_pnl", "drawdown", "gross_exposure", "realized_pnl", "unrealized_pnl", "fees"):
        assert getattr(copy, query)() == getattr(p, query)()


# ------------------------------------------------------------------ the cash-flow identity

EVENTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("fill"),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["UNIT", "BTCUSDT", "ESM4"]),
            st.sampled_from([BUY, SELL]),
            st.integers(1, 10_000),
            st.integers(1, 50),
            st.integers(-100, 300).map(lambda c: D(c) / 100),
        ),
        st.tuples(st.just("mark"), st.sampled_from(["UNIT", "BTCUSDT", "ESM4"]), st.integers(2, 20_000)),
        st.tuples(st.just("time"), st.integers(0, NS_PER_DAY)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_realized_plus_unrealized_minus_fees_equals_cash_flow_accounting(events):
    p, clock = make(day_start_offset_ns=5 * HOUR)
    cash: dict[str, Decimal] = {"a": D(0), "b": D(0)}
    qty: dict[tuple[str, str], int] = {}
    mark: dict[str, Decimal] = {}
    marked: set[str] = set()
    reference_realized = {}  # textbook average cost in exact fractions
    avg: dict[tuple[str, str], Fraction] = {}
    reductions = 0
    scopes = (None, "a", "b")
    peak = dict.fromkeys(scopes, D(0))
    worst = dict.fromkeys(scopes, D(0))
    day_start = dict.fromkeys(scopes, D(0))
    day = (clock.now() - 5 * HOUR) // NS_PER_DAY

    def equity(scope):
        return sum(cash[s] for s in cash if scope in (None, s)) + sum(
            q * INSTRUMENTS.get(sym).lot_size * INSTRUMENTS.get(sym).multiplier * mark[sym]
            for (s, sym), q in qty.items()
            if scope in (None, s)
        )

    def observe():  # one point of the equity curve
        for scope in scopes:
            e = equity(scope)
            peak[scope] = max(peak[scope], e)
            worst[scope] = max(worst[scope], peak[scope] - e)

    for event in events:
        if event[0] != "time" and (clock.now() - 5 * HOUR) // NS_PER_DAY != day:
            day = (clock.now() - 5 * HOUR) // NS_PER_DAY
            day_start = {scope: equity(scope) for scope in scopes}
        if event[0] == "fill":
            _, strat, sym, side, price, lots, fee = event
            inst = INSTRUMENTS.get(sym)
            fill(p, side, price, lots, strategy=strat, symbol=sym, fee=str(fee))
            if sym not in marked:  # marked at the fill price first: a point of the curve of its own
                mark[sym] = inst.ticks_to_price(price)
                observe()
            cash[strat] += -int(side) * inst.notional(price, lots) - fee
            key = (strat, sym)
            q, d = qty.get(key, 0), int(side) * lots
            a = avg.get(key, Fraction(0))
            if q == 0 or (q > 0) == (d > 0):
                avg[key] = (a * q + price * d) / (q + d)
            else:
                closed = min(abs(d), abs(q))
                reference_realized[key] = reference_realized.get(key, 0) + closed * (price - a) * (1 if q > 0 else -1)
                reductions += 1
                if abs(d) > abs(q):
                    avg[key] = Fraction(price)
            qty[key] = q + d
            observe()
        elif event[0] == "mark":
            _, sym, mid2 = event
            p.mark(sym, mid2)
            marked.add(sym)
            mark[sym] = INSTRUMENTS.get(sym).tick_size * mid2 / 2
            observe()
        else:
            clock.advance(event[1])

    for strat in ("a", "b"):
        expected = cash[strat] + sum(
            q * INSTRUMENTS.get(sym).lot_size * INSTRUMENTS.get(sym).multiplier * mark[sym]
            for (s, sym), q in qty.items()
            if s == strat
        )
        got = p.realized_pnl(strategy_id=strat) + p.unrealized_pnl(strategy_id=strat) - p.fees(strategy_id=strat)
        assert got == expected
        assert p.equity(strategy_id=strat) == expected
        assert p.total_pnl(strategy_id=strat) == expected
    assert p.equity() == cash["a"] + cash["b"] + sum(
        q * INSTRUMENTS.get(sym).lot_size * INSTRUMENTS.get(sym).multiplier * mark[sym] for (_, sym), q in qty.items()
    )
    for (strat, sym), realized_ticks in reference_realized.items():
        inst = INSTRUMENTS.get(sym)
        unit = inst.tick_size * inst.lot_size * inst.multiplier
        exact = D(realized_ticks.numerator) / D(realized_ticks.denominator) * unit
        assert abs(p.realized_pnl(strategy_id=strat, symbol=sym) - exact) <= D("1e-9") * (reductions + 1)
    today = (clock.now() - 5 * HOUR) // NS_PER_DAY == day
    for scope in scopes:
        assert p.drawdown(strategy_id=scope) == peak[scope] - equity(scope)
        assert p.max_drawdown(strategy_id=scope) == worst[scope]
        assert p.daily_pnl(strategy_id=scope) == (equity(scope) - day_start[scope] if today else 0)
        # The risk gate's integer view is the same amount, exactly.
        assert Decimal(p.daily_pnl_units(strategy_id=scope)).scaleb(-p.money_scale) == p.daily_pnl(strategy_id=scope)
    for sym in marked:
        assert INSTRUMENTS.get(sym).tick_size * p.mark2(sym) / 2 == p.mark_price(sym)
