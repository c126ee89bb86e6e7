"""The quote manager: desired quotes vs working orders -> the fewest new / cancel / replace actions."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import L2Book
from engine.clock import FakeClock
from engine.enums import OrderStatus, OrderType, Side, TimeInForce
from engine.oms import Oms, Order
from engine.protocol import BookDeltas, ExecutionReport, OrderFilled
from engine.strategies import AvellanedaStoikov, Cancel, New, QuoteManager, Quotes, Replace
from engine.venue import Venue

BUY, SELL = Side.BUY, Side.SELL
SECOND = 1_000_000_000
NEW_, PARTIAL = OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED


def order(coid, side, price, quantity=1, *, status=NEW_, cum=0, strategy_id="mm1", symbol="XYZ", pending_price=0):
    o = Order(
        client_order_id=coid,
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=price,
        quantity=quantity,
        post_only=False,
        created_ns=0,
    )
    o.status = status
    o.cum_quantity = cum
    o.leaves_quantity = quantity - cum
    o.pending_price = pending_price
    return o


# (threshold, desired quotes, working orders, expected actions in order)
CASES = [
    pytest.param(0, Quotes(99, 1, 101, 1), [], [New(BUY, 99, 1), New(SELL, 101, 1)], id="nothing working: two news"),
    pytest.param(
        0, Quotes(99, 1, 101, 1), [order("b", BUY, 99), order("a", SELL, 101)], [], id="already there: nothing"
    ),
    pytest.param(
        3,
        Quotes(97, 1, 103, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [],
        id="moves of 2 ticks under a threshold of 3 are ignored",
    ),
    pytest.param(
        3,
        Quotes(96, 1, 104, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [Replace("b", 96, 1), Replace("a", 104, 1)],
        id="moves of 3 ticks at a threshold of 3 are replaced",
    ),
    pytest.param(
        0,
        Quotes(98, 1, 101, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [Replace("b", 98, 1)],
        id="threshold 0 still keeps an unchanged price",
    ),
    pytest.param(
        5,
        Quotes(99, 2, 101, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [Replace("b", 99, 2)],
        id="a quantity change is a replace even inside the threshold",
    ),
    pytest.param(
        0,
        Quotes(0, 0, 101, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [Cancel("b")],
        id="quantity 0 cancels the side (inventory limit)",
    ),
    pytest.param(
        0,
        Quotes(98, 1, 101, 1),
        [order("b1", BUY, 95), order("b2", BUY, 98), order("a", SELL, 101)],
        [Cancel("b1")],
        id="two orders on a side: the nearest is kept, the other canceled",
    ),
    pytest.param(
        0,
        Quotes(97, 1, 101, 1),
        [order("b1", BUY, 95), order("b2", BUY, 98), order("a", SELL, 101)],
        [Cancel("b1"), Replace("b2", 97, 1)],
        id="two orders on a side: the nearest is replaced, never a cancel plus a new",
    ),
    pytest.param(
        0,
        Quotes(90, 1, 110, 1),
        [order("b", BUY, 99, status=OrderStatus.PENDING_NEW), order("a", SELL, 101)],
        [Replace("a", 110, 1)],
        id="a pending new freezes its side only",
    ),
    pytest.param(
        0,
        Quotes(0, 0, 0, 0),
        [order("b", BUY, 99, status=OrderStatus.PENDING_REPLACE, pending_price=98), order("a", SELL, 101)],
        [Cancel("a")],
        id="a pending replace freezes its side even against a cancel",
    ),
    pytest.param(
        0,
        Quotes(90, 1, 110, 1),
        [order("b", BUY, 99, status=OrderStatus.PENDING_CANCEL), order("b2", BUY, 97)],
        [New(SELL, 110, 1)],
        id="a pending cancel freezes its side: no second order sent meanwhile",
    ),
    pytest.param(
        0,
        Quotes(99, 5, 101, 5),
        [order("b", BUY, 99, 5, status=PARTIAL, cum=2), order("a", SELL, 101, 5)],
        [],
        id="a partially filled remainder keeps its queue place",
    ),
    pytest.param(
        0,
        Quotes(98, 5, 101, 5),
        [order("b", BUY, 99, 5, status=PARTIAL, cum=2), order("a", SELL, 101, 5)],
        [Replace("b", 98, 7)],
        id="replace quantity is the new total: filled 2 plus 5 to rest",
    ),
    pytest.param(
        0,
        Quotes(99, 3, 101, 5),
        [order("b", BUY, 99, 5, status=PARTIAL, cum=1), order("a", SELL, 101, 5)],
        [Replace("b", 99, 4)],
        id="a remainder above the desired size is cut down",
    ),
    pytest.param(
        0,
        Quotes(104, 1, 106, 1),
        [order("b", BUY, 99), order("a", SELL, 101)],
        [Replace("a", 106, 1)],
        id="a bid that would reach our own resting ask waits for the ask to move",
    ),
    pytest.param(
        0,
        Quotes(101, 1, 104, 1),
        [order("b", BUY, 99), order("a", SELL, 102)],
        [Replace("a", 104, 1), Replace("b", 101, 1)],
        id="market up: the retreating ask moves before the advancing bid",
    ),
    pytest.param(
        0,
        Quotes(96, 1, 99, 1),
        [order("b", BUY, 98), order("a", SELL, 101)],
        [Replace("b", 96, 1), Replace("a", 99, 1)],
        id="market down: the retreating bid moves before the advancing ask",
    ),
    pytest.param(
        0,
        Quotes(99, 1, 101, 1),
        [
            order("x", BUY, 50, strategy_id="other"),
            order("y", SELL, 60, symbol="ABC"),
            order("z", BUY, 98, status=OrderStatus.FILLED),
        ],
        [New(BUY, 99, 1), New(SELL, 101, 1)],
        id="other strategies, other symbols and finished orders are not ours to manage",
    ),
]


@pytest.mark.parametrize(("threshold", "desired", "working", "expected"), CASES)
def test_reconcile_sends_the_fewest_actions(threshold, desired, working, expected):
    manager = QuoteManager("mm1", "XYZ", requote_threshold_ticks=threshold)

    actions = manager.reconcile(desired, working)

    assert actions == expected


def test_applying_the_actions_reaches_the_desired_quotes_and_then_nothing_more_is_sent():
    manager = QuoteManager("mm1", "XYZ", requote_threshold_ticks=1)
    working = [order("b1", BUY, 95), order("b2", BUY, 97), order("a", SELL, 103, 2)]
    desired = Quotes(98, 1, 102, 1)

    actions = manager.reconcile(desired, working)
    # Venue accepts everything: apply the actions to the working set.
    by_id = {o.client_order_id: o for o in working}
    for action in actions:
        if isinstance(action, Cancel):
            del by_id[action.client_order_id]
        elif isinstance(action, Replace):
            o = by_id[action.client_order_id]
            o.price, o.quantity, o.leaves_quantity = action.price, action.quantity, action.quantity - o.cum_quantity
    second = manager.reconcile(desired, list(by_id.values()))

    assert second == []
    assert sorted((o.side, o.price, o.leaves_quantity) for o in by_id.values()) == [(SELL, 102, 1), (BUY, 98, 1)]


live_orders = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.integers(90, 110),
        st.integers(1, 4),
        st.integers(0, 3),
        st.sampled_from([NEW_, PARTIAL, OrderStatus.PENDING_NEW, OrderStatus.PENDING_REPLACE]),
    ),
    max_size=4,
)
desired_quotes = st.tuples(st.integers(90, 99), st.integers(0, 3), st.integers(101, 110), st.integers(0, 3))


def build(specs):
    orders = []
    for i, (side, price, quantity, drawn_cum, drawn_status) in enumerate(specs):
        # A partial fill needs 0 < cum < quantity; other statuses here have no fills.
        cum = min(drawn_cum, quantity - 1) if drawn_status is PARTIAL else 0
        status = NEW_ if drawn_status is PARTIAL and cum == 0 else drawn_status
        orders.append(order(f"o{i}", side, price, quantity, status=status, cum=cum))
    return orders


@settings(max_examples=300, deadline=None)
@given(specs=live_orders, quotes=desired_quotes, threshold=st.integers(0, 3))
def test_the_two_order_fast_path_answers_exactly_as_the_general_rules(specs, quotes, threshold):
    manager = QuoteManager("mm1", "XYZ", requote_threshold_ticks=threshold)
    working = build(specs)
    finished = order("done", BUY, 100, status=OrderStatus.CANCELED)  # ignored, but defeats the fast path

    fast = manager.reconcile(Quotes(*quotes), working)
    general = manager.reconcile(Quotes(*quotes), [*working, finished])

    assert fast == general


@settings(max_examples=300, deadline=None)
@given(specs=live_orders, quotes=desired_quotes, threshold=st.integers(0, 3))
def test_once_the_venue_has_answered_everything_reconcile_converges_to_one_order_per_side(specs, quotes, threshold):
    manager = QuoteManager("mm1", "XYZ", requote_threshold_ticks=threshold)
    by_id = {o.client_order_id: o for o in build(specs)}
    desired = Quotes(*quotes)
    next_id = 0

    for _ in range(4):
        # The venue acknowledges whatever was in flight, then the manager acts on the settled state.
        for o in by_id.values():
            if o.status in (OrderStatus.PENDING_NEW, OrderStatus.PENDING_REPLACE):
                o.status = PARTIAL if o.cum_quantity else NEW_
        actions = manager.reconcile(desired, list(by_id.values()))
        for action in actions:
            if isinstance(action, Cancel):
                del by_id[action.client_order_id]
            elif isinstance(action, Replace):
                o = by_id[action.client_order_id]
                o.price, o.quantity = action.price, action.quantity
                o.leaves_quantity = action.quantity - o.cum_quantity
                o.status = OrderStatus.PENDING_REPLACE
            else:
                next_id += 1
                by_id[f"n{next_id}"] = order(f"n{next_id}", action.side, action.price, action.quantity)
                by_id[f"n{next_id}"].status = OrderStatus.PENDING_NEW

    bids = [o for o in by_id.values() if o.side is BUY]
    asks = [o for o in by_id.values() if o.side is SELL]
    assert len(bids) == (1 if desired.bid_quantity else 0)
    assert len(asks) == (1 if desired.ask_quantity else 0)
    for o, price in [(b, desired.bid_price) for b in bids] + [(a, desired.ask_price) for a in asks]:
        assert abs(o.price - price) < max(threshold, 1)


class MiniEngine:
    """Just enough wiring (no risk gate, no journal) to run the strategy and the quote manager against the real OMS
    and the simulated venue: venue market data -> book -> on_book -> reconcile -> OMS -> venue -> reports."""

    def __init__(self, params, *, exclude_own=True):
        self.exclude_own = exclude_own
        self.clock = FakeClock(1)
        self.venue = Venue(["XYZ"], clock=self.clock.now)
        self.oms = Oms(self.clock, "mm-account")
        self.book = L2Book("XYZ")
        self.strategy = AvellanedaStoikov("mm1", "XYZ", params)
        self.strategy.start(self.clock.now())
        self.manager = QuoteManager("mm1", "XYZ", requote_threshold_ticks=self.strategy.params.requote_threshold_ticks)
        self.max_orders_per_side = 0

    def deliver(self, messages):
        pending = list(messages)
        budget = 200  # a quoter chasing its own orders would requote forever
        while pending:
            budget -= 1
            assert budget > 0, "the quotes never settle"
            msg = pending.pop(0)
            if isinstance(msg, BookDeltas):
                self.book.apply_deltas(msg.deltas)
                pending += self.requote()
            elif isinstance(msg, ExecutionReport) and msg.account == "mm-account":
                # As the engine core does: a fill moves the inventory, so requote; other reports only free a side
                # for the next book update.
                for event in self.oms.on_execution_report(msg):
                    if isinstance(event, OrderFilled):
                        self.strategy.on_fill(event.side, event.last_price, event.last_quantity, self.clock.now())
                        pending += self.requote()

    def requote(self):
        working = self.oms.working_orders(strategy_id="mm1", symbol="XYZ")
        quotes = self.strategy.on_book(self.book, self.clock.now(), working if self.exclude_own else None)
        if quotes is None:
            return []
        for side in (Side.BUY, Side.SELL):
            self.max_orders_per_side = max(self.max_orders_per_side, sum(o.side is side for o in working))
        out = []
        for action in self.manager.reconcile(quotes, working):
            if isinstance(action, New):
                order = self.oms.new_order(
                    strategy_id="mm1",
                    client_order_id=self.oms.next_client_order_id("mm1"),
                    symbol="XYZ",
                    side=action.side,
                    order_type=OrderType.LIMIT,
                    time_in_force=TimeInForce.GTC,
                    price=action.price,
                    quantity=action.quantity,
                )
                out += self.venue.handle(self.oms.place_message(order))
            elif isinstance(action, Replace):
                out += self.venue.handle(
                    self.oms.request_replace(action.client_order_id, action.price, action.quantity)
                )
            else:
                out += self.venue.handle(self.oms.request_cancel(action.client_order_id))
        return out

    def other(self, side, price, quantity, tif=TimeInForce.GTC):
        """Someone else's order: resting liquidity (GTC) or a taker (IOC), from separate accounts so the venue's
        self-trade prevention does not cancel the liquidity when the taker sweeps."""
        self.clock.advance(SECOND)
        self.deliver(
            self.venue.place_order(
                client_order_id=f"o{self.clock.now()}",
                account="maker" if tif == TimeInForce.GTC else "taker",
                symbol="XYZ",
                side=side,
                order_type=OrderType.LIMIT,
                time_in_force=tif,
                price=price,
                quantity=quantity,
            )
        )

    def resting(self):
        """(side, price, leaves) of our orders as the venue holds them."""
        return sorted((o.side, o.price, o.quantity - o.cum_quantity) for o in self.venue.open_orders("mm-account"))


def test_in_a_closed_loop_with_the_oms_and_the_venue_the_quotes_rest_fill_skew_and_never_double_up():
    # gamma = 0.01, sigma = 2, FIXED 60 s horizon, order size 2 lots (q = position / 2), limit 4 lots.
    engine = MiniEngine(
        {"gamma": Decimal("0.01"), "sigma": Decimal(2), "horizon_mode": "FIXED", "order_size": 2, "max_inventory": 4}
    )
    engine.other(Side.BUY, 9990, 50)
    engine.other(Side.SELL, 10010, 50)
    flat = engine.resting()

    engine.other(Side.SELL, 9900, 1, TimeInForce.IOC)  # 1 of our 2 bid lots
    after_partial = engine.resting()
    engine.other(Side.SELL, 9900, 5, TimeInForce.IOC)  # our 2 lots, then 3 of the maker's
    near_limit = engine.resting()
    engine.other(Side.SELL, 9900, 5, TimeInForce.IOC)  # our last lot: at the limit
    at_limit = engine.resting()
    engine.other(Side.BUY, 10100, 3, TimeInForce.IOC)  # lifts our 2-lot ask
    back = engine.resting()

    assert flat == [(SELL, 10002, 2), (BUY, 9998, 2)]
    # Position 1: both quotes lower; the partially filled bid was replaced to total 3 so that 2 lots rest again.
    assert after_partial == [(SELL, 10001, 2), (BUY, 9997, 2)]
    # Position 3 (q = 1.5) at t = 4 s: r = 10000 - 1.5 * 0.01 * 4 * 56 = 9996.64, spread/2 = 1.12 + 0.66445
    # -> bid floor(9994.86) = 9994 for the 1 lot left to the limit, ask ceil(9998.42) = 9999.
    assert near_limit == [(SELL, 9999, 2), (BUY, 9994, 1)]
    assert at_limit == [(SELL, 9998, 2)]  # position 4: no bid
    assert back == [(SELL, 10000, 2), (BUY, 9996, 2)]  # position 2
    assert engine.strategy.position == 2
    assert engine.strategy._mid == 10000.0  # our own orders never counted as the market
    assert engine.max_orders_per_side == 1


def test_a_quoter_that_reads_its_own_orders_as_the_market_chases_itself():
    # The same market and fill as above, but the strategy is not told which orders are its own.
    engine = MiniEngine(
        {"gamma": Decimal("0.01"), "sigma": Decimal(2), "horizon_mode": "FIXED", "order_size": 2, "max_inventory": 4},
        exclude_own=False,
    )
    engine.other(Side.BUY, 9990, 50)
    engine.other(Side.SELL, 10010, 50)

    engine.other(Side.SELL, 9900, 1, TimeInForce.IOC)

    # Its skewed ask became "the market's" best ask, which lowered the mid, which lowered the ask again... until
    # the guards stopped it, 8 ticks under the real mid of 10000 (the version told its own orders stays there).
    assert engine.strategy._mid < 9995
    assert engine.resting()[0][1] < 9995
