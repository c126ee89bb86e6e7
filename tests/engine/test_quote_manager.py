"""The quote manager: desired quotes vs working orders -> the fewest new / cancel / replace actions."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.enums import OrderStatus, OrderType, Side, TimeInForce
from engine.oms import Order
from engine.strategies import Cancel, New, QuoteManager, Quotes, Replace

BUY, SELL = Side.BUY, Side.SELL
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
