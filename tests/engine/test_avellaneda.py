"""Avellaneda-Stoikov and GLFT quotes against hand-computed cases, rounding, limits, estimators."""

import math
import random
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import L2Book
from engine.enums import Side
from engine.strategies import AvellanedaStoikov, Quotes
from engine.strategies.avellaneda import as_quotes, glft_coefficients, glft_quotes
from engine.strategies.estimators import EwmaVolatility, IntensityEstimator

SECOND = 1_000_000_000


def book(bid, ask, bid_size=10, ask_size=10):
    b = L2Book("XYZ")
    b.apply(Side.BUY, bid, bid_size)
    b.apply(Side.SELL, ask, ask_size)
    return b


def strategy(position=0, **params):
    defaults = {"horizon_mode": "FIXED", "horizon_s": Decimal(60), "max_inventory": 20}
    defaults.update(params)
    s = AvellanedaStoikov("mm1", "XYZ", defaults)
    s.start(0)
    s.set_position(position)
    return s


# Each case: params, (position in lots, best bid, best ask, now in s), expected quotes.
HAND_CASES = [
    pytest.param(
        # s = 10000, q = 0, T - t = 60 - 10 = 50 s
        # gamma sigma^2 (T-t) = 0.1 * 4 * 50 = 20;  (2/gamma) ln(1 + gamma/k) = 20 * ln(1.0666667) = 1.2907704
        # r = 10000;  spread/2 = 10 + 0.6453852 = 10.6453852
        # bid = floor(9989.354615) = 9989;  ask = ceil(10010.645385) = 10011
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5")},
        (0, 9999, 10001, 10),
        Quotes(9989, 1, 10011, 1),
        id="paper parameters, flat",
    ),
    pytest.param(
        # gamma = 0.01, sigma = 2, T - t = 50: gamma sigma^2 (T-t) = 0.01 * 4 * 50 = 2;  q = 3
        # r = 10000 - 3 * 2 = 9994;  (1/gamma) ln(1 + gamma/k) = 100 * ln(1.0066667) = 0.6644543
        # spread/2 = 1 + 0.6644543 = 1.6644543;  bid = floor(9992.335546) = 9992;  ask = ceil(9995.664454) = 9996
        {"gamma": Decimal("0.01"), "sigma": Decimal(2), "k": Decimal("1.5")},
        (3, 9990, 10010, 10),
        Quotes(9992, 1, 9996, 1),
        id="long inventory skews both quotes down",
    ),
    pytest.param(
        # Same with q = -3: r = 10006;  bid = floor(10004.335546) = 10004;  ask = ceil(10007.664454) = 10008
        {"gamma": Decimal("0.01"), "sigma": Decimal(2), "k": Decimal("1.5")},
        (-3, 9990, 10010, 10),
        Quotes(10004, 1, 10008, 1),
        id="short inventory skews both quotes up",
    ),
    pytest.param(
        # q in order-size units: position 6 lots / order_size 2 = 3, so the same r as the q = 3 case.
        {"gamma": Decimal("0.01"), "sigma": Decimal(2), "k": Decimal("1.5"), "order_size": 2},
        (6, 9990, 10010, 10),
        Quotes(9992, 2, 9996, 2),
        id="inventory counted in order sizes",
    ),
    pytest.param(
        # Half-tick mid: s = 10000.5;  gamma = 0.1, sigma = 1, T - t = 10 - 0 = 10: 0.1 * 1 * 10 = 1
        # spread/2 = 0.5 + 0.6453852 = 1.1453852;  bid = floor(9999.354615) = 9999;  ask = ceil(10001.645385) = 10002
        {"gamma": Decimal("0.1"), "sigma": Decimal(1), "k": Decimal("1.5"), "horizon_s": Decimal(10)},
        (0, 10000, 10001, 0),
        Quotes(9999, 1, 10002, 1),
        id="half-tick mid",
    ),
    pytest.param(
        # After the horizon (FIXED) T - t = 0: only (1/gamma) ln(1 + gamma/k) = 0.6453852 remains and q has no
        # effect: bid = floor(9999.354615) = 9999;  ask = ceil(10000.645385) = 10001
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5")},
        (5, 9990, 10010, 75),
        Quotes(9999, 1, 10001, 1),
        id="fixed horizon elapsed",
    ),
    pytest.param(
        # CYCLE: 70 s into 60 s cycles is 10 s into the second: T - t = 50, as in the first case.
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5"), "horizon_mode": "CYCLE"},
        (0, 9999, 10001, 70),
        Quotes(9989, 1, 10011, 1),
        id="cycle horizon restarts",
    ),
    pytest.param(
        # gamma = 0.1, q = 2, T - t = 50: r = 10000 - 2 * 20 = 9960; unrounded ask = 9970.645 would sell below the
        # best bid 9999, so it is lifted to best bid + 1 = 10000;  bid = floor(9949.354615) = 9949
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5")},
        (2, 9999, 10001, 10),
        Quotes(9949, 1, 10000, 1),
        id="ask that would cross the best bid is held one tick above it",
    ),
    pytest.param(
        # Same with allow_cross: the ask stays at ceil(9970.645385) = 9971.
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5"), "allow_cross": True},
        (2, 9999, 10001, 10),
        Quotes(9949, 1, 9971, 1),
        id="allow_cross keeps the crossing ask",
    ),
    pytest.param(
        # First case (9989 / 10011, 22 ticks) with min_spread_ticks = 30: 8 ticks short, 4 on each side.
        {"gamma": Decimal("0.1"), "sigma": Decimal(2), "k": Decimal("1.5"), "min_spread_ticks": 30},
        (0, 9999, 10001, 10),
        Quotes(9985, 1, 10015, 1),
        id="minimum spread widens outward",
    ),
    pytest.param(
        # GLFT, gamma = 0.1, k = 1.5, A = 140, sigma = 20, q = 3 (horizon irrelevant):
        # c1 = (1/gamma) ln(1 + gamma/k) = 0.6453852
        # c2 = sqrt(gamma / (2 k A) * (1 + gamma/k)^(1 + k/gamma)) = sqrt(0.1/420 * 1.0666667^16)
        #    = sqrt(2.380952e-4 * 2.808395) = 0.0258586;  omega = sigma * c2 = 0.517172
        # r = 10000 - 3 * 0.5171719 = 9998.448484;  spread/2 = c1 + omega/2 = 0.9039711
        # bid = floor(9997.544513) = 9997;  ask = ceil(9999.352455) = 10000
        {"model": "GLFT", "gamma": Decimal("0.1"), "k": Decimal("1.5"), "A": Decimal(140), "sigma": Decimal(20)},
        (3, 9990, 10010, 10),
        Quotes(9997, 1, 10000, 1),
        id="GLFT infinite horizon with inventory",
    ),
]


@pytest.mark.parametrize(("params", "state", "expected"), HAND_CASES)
def test_quotes_match_hand_computed_cases(params, state, expected):
    position, best_bid, best_ask, now_s = state
    mm = strategy(position, **params)

    quotes = mm.on_book(book(best_bid, best_ask), now_s * SECOND)

    assert quotes == expected


def test_closed_form_helpers_agree_with_the_hand_arithmetic():
    r, spread = as_quotes(100.0, 0.0, gamma=0.1, sigma=2.0, tau=1.0, k=1.5)
    c1, c2 = glft_coefficients(0.1, 1.5, 140.0)
    g_r, g_spread = glft_quotes(10000.0, 3.0, gamma=0.1, sigma=20.0, k=1.5, a=140.0)

    # Paper, section 4, gamma = 0.1 at t = 0: spread 0.1 * 4 * 1 + 20 * ln(1 + 0.1/1.5) = 0.4 + 1.2907704 = 1.69077
    assert r == 100.0
    assert spread == pytest.approx(1.6907704, abs=1e-7)
    assert c1 == pytest.approx(0.6453852, abs=1e-7)
    assert c2 == pytest.approx(0.0258586, abs=1e-7)
    assert g_r == pytest.approx(9998.448484, abs=1e-6)
    assert g_spread == pytest.approx(2 * 0.9039711, abs=1e-6)


@pytest.mark.parametrize(
    ("position", "bid_quantity", "ask_quantity"),
    [
        (0, 3, 3),
        (6, 3, 3),
        (8, 2, 3),  # only 2 lots left to the limit of 10: a full fill must not pass it
        (10, 0, 3),  # at max long: stop bidding
        (12, 0, 3),  # beyond (a manual trade): still no bid
        (-8, 3, 2),
        (-10, 3, 0),  # at max short: stop offering
    ],
)
def test_inventory_limits_stop_bidding_at_max_long_and_offering_at_max_short(position, bid_quantity, ask_quantity):
    mm = strategy(position, gamma=Decimal("0.001"), order_size=3, max_inventory=10)

    quotes = mm.on_book(book(9990, 10010), 10 * SECOND)

    assert (quotes.bid_quantity, quotes.ask_quantity) == (bid_quantity, ask_quantity)


def test_fills_move_the_position_and_the_next_quotes_skew_against_it():
    mm = strategy(0, gamma=Decimal("0.01"), sigma=Decimal(2))
    flat = mm.on_book(book(9990, 10010), 10 * SECOND)

    mm.on_fill(Side.BUY, 9992, 1, 10 * SECOND)
    mm.on_fill(Side.BUY, 9992, 2, 10 * SECOND)
    long = mm.on_book(book(9990, 10010), 10 * SECOND)

    assert mm.position == 3
    assert long == Quotes(9992, 1, 9996, 1)  # the hand-computed q = 3 case
    assert long.bid_price < flat.bid_price and long.ask_price < flat.ask_price


def test_a_stopped_strategy_quotes_nothing_and_a_one_sided_book_gives_no_opinion():
    mm = AvellanedaStoikov("mm1", "XYZ")
    one_sided = L2Book("XYZ")
    one_sided.apply(Side.BUY, 9990, 5)

    stopped = mm.on_book(book(9990, 10010), SECOND)
    mm.start(SECOND)
    no_mid = mm.on_book(one_sided, 2 * SECOND)

    assert stopped is None
    assert no_mid is None


def test_quotes_never_go_below_one_tick():
    mm = strategy(0, gamma=Decimal("0.1"), sigma=Decimal(2))

    quotes = mm.on_book(book(1, 3), 10 * SECOND)

    assert quotes.bid_quantity == 0
    assert quotes.ask_price >= 3


def test_a_crossing_ask_below_one_tick_is_not_quoted_either():
    # r = 2 - 10 * 20 = -198 (q = 10, gamma sigma^2 (T-t) = 20): the ask ceil(-187.35) would be a negative price.
    mm = strategy(10, gamma=Decimal("0.1"), sigma=Decimal(2), allow_cross=True)

    quotes = mm.on_book(book(1, 3), 10 * SECOND)

    assert quotes.bid_quantity == 0
    assert quotes.ask_quantity == 0


def test_timer_requotes_as_time_to_horizon_shrinks():
    mm = strategy(0, gamma=Decimal("0.1"), sigma=Decimal(2))
    early = mm.on_book(book(9999, 10001), 10 * SECOND)

    late = mm.on_timer(75 * SECOND)

    assert early == Quotes(9989, 1, 10011, 1)
    assert late == Quotes(9999, 1, 10001, 1)


def test_microprice_signal_shifts_the_reservation_price_by_coefficient_times_offset():
    # Book 9990 x 30 / 10010 x 10: weighted mid - mid = 20/2 * (30 - 10)/40 = +5 ticks; coefficient 1 -> r + 5.
    # From the q = 0, gamma = 0.01 case: spread/2 = 1.6644543 around 10005 -> 10003 / 10007.
    mm = strategy(0, gamma=Decimal("0.01"), sigma=Decimal(2), signal="MICROPRICE", signal_coefficient=Decimal(1))

    quotes = mm.on_book(book(9990, 10010, bid_size=30, ask_size=10), 10 * SECOND)

    assert quotes == Quotes(10003, 1, 10007, 1)


def test_trade_flow_signal_skews_toward_the_aggressors():
    mm = strategy(0, gamma=Decimal("0.01"), sigma=Decimal(2), signal="TRADE_FLOW", signal_coefficient=Decimal(4))
    mm.on_trade(10010, 3, Side.BUY, 9 * SECOND)
    mm.on_trade(9990, 1, Side.SELL, 9 * SECOND)

    quotes = mm.on_book(book(9990, 10010), 10 * SECOND)

    # flow = (3 - 1) / 4 = 0.5; skew = 4 * 0.5 = +2 ticks: r = 10002 -> floor(10000.3355) / ceil(10003.6645)
    assert quotes == Quotes(10000, 1, 10004, 1)


def test_ewma_sigma_source_replaces_the_parameter_once_warm():
    mm = strategy(0, sigma_source="EWMA", sigma=Decimal(2), sigma_half_life_s=Decimal(10))
    prior = mm.sigma

    for i in range(400):
        # Mid alternates 10000 / 10001 every second: r^2 / dt = 1 per sample, so sigma -> 1 tick/sqrt(s).
        mm.on_book(book(9999 + i % 2, 10001 + i % 2), i * SECOND)

    assert prior == 2.0
    assert mm.sigma == pytest.approx(1.0, abs=1e-6)


def test_ewma_volatility_recovers_the_sigma_of_a_random_walk():
    rng = random.Random(7)
    ewma = EwmaVolatility(half_life_s=200.0, prior_sigma=10.0)
    mid = 0.0
    dt = SECOND // 10

    for i in range(1, 20_000):
        mid += rng.choice((-1.0, 1.0)) * 3.0 * math.sqrt(0.1)  # sigma = 3 ticks/sqrt(s)
        ewma.update(mid, i * dt)

    assert ewma.sigma == pytest.approx(3.0, rel=0.08)


def test_ewma_folds_updates_sharing_a_timestamp_into_one_sample_and_uses_the_prior_until_warm():
    ewma = EwmaVolatility(half_life_s=10.0, prior_sigma=2.0, warmup=3)

    ewma.update(100.0, 0)
    ewma.update(101.0, SECOND)
    ewma.update(150.0, SECOND)  # same ts: not a sample, its change joins the next one
    ewma.update(102.0, 2 * SECOND)

    assert ewma.samples == 2
    assert ewma.sigma == 2.0  # still the prior


def test_intensity_estimator_recovers_a_and_k_from_exponential_trade_distances():
    # Trades arrive at rate A = 20/s and travel an Exp(k = 0.8/tick) distance from the mid, so the rate of trades
    # reaching delta is A exp(-k delta): exactly the model.
    rng = random.Random(11)
    est = IntensityEstimator(half_life_s=1e7, prior_a=1.0, prior_k=1.0, buckets=8, step_ticks=0.5)
    t = 0.0
    while t < 2000.0:
        t += rng.expovariate(20.0)
        est.on_trade(rng.expovariate(0.8), int(t * SECOND))

    a, k = est.estimate(int(2000.0 * SECOND))

    assert a == pytest.approx(20.0, rel=0.1)
    assert k == pytest.approx(0.8, rel=0.1)


def test_intensity_estimator_falls_back_to_the_priors_without_enough_data():
    est = IntensityEstimator(half_life_s=60.0, prior_a=140.0, prior_k=1.5)

    nothing = est.estimate(SECOND)
    est.on_trade(0.2, SECOND)  # below the first bucket: counts nowhere
    est.on_trade(3.0, 2 * SECOND)  # one trade: below min_count everywhere
    too_little = est.estimate(3 * SECOND)

    assert nothing == (140.0, 1.5)
    assert too_little == (140.0, 1.5)


def test_online_intensity_is_refreshed_on_the_timer_and_changes_the_spread():
    mm = strategy(0, intensity_source="ONLINE", A=Decimal(140), k=Decimal("1.5"), intensity_half_life_s=Decimal("1e6"))
    mm.on_book(book(9999, 10001), 0)
    rng = random.Random(3)
    t = 0.0
    while t < 500.0:
        t += rng.expovariate(10.0)
        distance = rng.expovariate(0.5)
        mm.on_trade(round(10000 + distance), 1, Side.BUY, int(t * SECOND))
    before = mm.intensity

    mm.on_timer(int(500 * SECOND))

    assert before == (140.0, 1.5)
    a, k = mm.intensity
    assert a == pytest.approx(10.0, rel=0.3)
    assert k == pytest.approx(0.5, rel=0.3)


def test_timer_requote_keeps_the_last_book_signal_while_time_to_horizon_shrinks():
    mm = strategy(0, gamma=Decimal("0.01"), sigma=Decimal(2), signal="MICROPRICE", signal_coefficient=Decimal(1))
    mm.on_book(book(9990, 10010, bid_size=30, ask_size=10), 10 * SECOND)

    late = mm.on_timer(75 * SECOND)

    # r = 10000 + 5 (microprice skew kept); T - t = 0: spread/2 = 0.6644543 -> floor(10004.34) / ceil(10005.66)
    assert late == Quotes(10004, 1, 10006, 1)


def test_a_timer_before_any_book_or_while_stopped_gives_no_quotes():
    mm = AvellanedaStoikov("mm1", "XYZ")

    before_start = mm.on_timer(SECOND)
    mm.start(SECOND)
    no_book = mm.on_timer(2 * SECOND)

    assert before_start is None
    assert no_book is None


def test_an_unrelated_parameter_change_keeps_the_online_intensity_estimate():
    mm = strategy(0, intensity_source="ONLINE", intensity_half_life_s=Decimal("1e6"))
    mm.on_book(book(9999, 10001), 0)
    rng = random.Random(5)
    t = 0.0
    while t < 300.0:
        t += rng.expovariate(10.0)
        mm.on_trade(round(10000 + rng.expovariate(0.5)), 1, Side.BUY, int(t * SECOND))
    mm.on_timer(int(300 * SECOND))
    estimated = mm.intensity

    mm.update_params({"gamma": Decimal("0.2")}, operator="ops", ts=int(301 * SECOND))
    kept = mm.intensity
    mm.update_params({"intensity_source": "PARAM"}, operator="ops", ts=int(302 * SECOND))

    assert estimated != (140.0, 1.5)
    assert kept == estimated
    assert mm.intensity == (140.0, 1.5)


def test_own_working_orders_are_not_mistaken_for_the_market():
    # Market 9990 / 10010 plus our own bid of 2 lots alone at 9995: the market mid is still 10000.
    # gamma = 0.01, T - t = 50, q = 0: spread/2 = 1 + 0.6644543 -> floor(9998.34) / ceil(10001.66).
    market = book(9990, 10010)
    market.apply(Side.BUY, 9995, 2)
    ours = SimpleNamespace(side=Side.BUY, price=9995, leaves_quantity=2, cum_quantity=0, pending_price=0)
    mm = strategy(0, gamma=Decimal("0.01"), sigma=Decimal(2))

    blind = mm.on_book(market, 10 * SECOND)
    told = mm.on_book(market, 10 * SECOND, [ours])

    assert blind == Quotes(10000, 1, 10005, 1)  # around (9995 + 10010) / 2 = 10002.5: 10000.84 / 10004.16
    assert told == Quotes(9998, 1, 10002, 1)


finite_param = st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    gamma=finite_param,
    k=finite_param,
    a=finite_param,
    sigma=finite_param,
    model=st.sampled_from(["AS", "GLFT"]),
    order_size=st.integers(1, 5),
    extra_inventory=st.integers(0, 20),
    position=st.integers(-40, 40),
    min_spread=st.integers(1, 10),
    best_bid=st.integers(1, 20_000),
    spread=st.integers(1, 50),
    now_s=st.integers(0, 200),
)
def test_quotes_always_respect_the_grid_the_book_the_spread_and_the_limits(
    gamma, k, a, sigma, model, order_size, extra_inventory, position, min_spread, best_bid, spread, now_s
):
    params = {
        "gamma": gamma,
        "k": k,
        "A": a,
        "sigma": sigma,
        "model": model,
        "order_size": order_size,
        "max_inventory": order_size + extra_inventory,
        "min_spread_ticks": min_spread,
    }
    mm = strategy(position, **params)
    best_ask = best_bid + spread

    quotes = mm.on_book(book(best_bid, best_ask), now_s * SECOND)

    limit = order_size + extra_inventory
    assert 0 <= quotes.bid_quantity <= min(order_size, max(limit - position, 0))
    assert 0 <= quotes.ask_quantity <= min(order_size, max(limit + position, 0))
    if quotes.bid_quantity:
        assert 1 <= quotes.bid_price < best_ask
    if quotes.ask_quantity:
        assert quotes.ask_price > best_bid
    assert quotes.ask_price - quotes.bid_price >= min_spread


def test_a_strategy_with_every_estimator_survives_a_plain_data_round_trip_and_quotes_the_same_after():
    import msgspec

    from engine.strategies.state import restore_strategy, strategy_state

    params = {"sigma_source": "EWMA", "intensity_source": "ONLINE", "signal": "TRADE_FLOW", "order_size": 2}
    original = AvellanedaStoikov("s1", "XYZ", params)
    original.start(0)
    for i in range(30):
        original.on_trade(10_000 + i % 3, 1 + i % 2, Side.BUY if i % 3 else Side.SELL, i * 100_000_000)
        original.on_book(book(9_990 + i % 4, 10_010 + i % 5), i * 100_000_000)
    original.on_fill(Side.BUY, 9_995, 2, 3_000_000_000)
    original.update_params({"gamma": Decimal("0.2")}, operator="op", ts=3_100_000_000)
    twin = AvellanedaStoikov("s1", "XYZ", params)

    restore_strategy(twin, msgspec.msgpack.decode(msgspec.msgpack.encode(strategy_state(original))))

    later = book(9_993, 10_012)
    assert twin.params_version == original.params_version == 2
    assert twin.position == original.position == 2
    assert twin.sigma == original.sigma
    assert twin.on_book(later, 4_000_000_000) == original.on_book(later, 4_000_000_000)
    assert twin.on_timer(5_000_000_000) == original.on_timer(5_000_000_000)
