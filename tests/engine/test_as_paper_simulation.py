"""Avellaneda & Stoikov (2008) section 4, reproduced: the inventory strategy against the symmetric strategy.

Setting of the paper: s0 = 100, T = 1, sigma = 2, dt = 0.005 (200 steps), q0 = 0, k = 1.5, A = 140, gamma = 0.1.
The mid moves +-sigma sqrt(dt) with probability 1/2 each step (the paper's discretised arithmetic Brownian
motion); in each step a quote at distance delta from the mid is filled (one unit) with probability
A exp(-k delta) dt (clipped to [0, 1]); quotes are computed from the mid at the start of the step, fills are drawn,
then the mid moves. Profit at T is cash + q_T s_T. The symmetric strategy quotes the same spread around s
instead of around r. Seeded numpy generators, so every number below is deterministic.

Paper's table for gamma = 0.1: inventory strategy profit 62.94 (std 5.89), final q std 2.80;
symmetric strategy profit 67.21 (std 13.43), final q std 8.66. docs/strategies.md has our table.
"""

import math

import numpy as np
import pytest

from engine.book import L2Book
from engine.strategies import AvellanedaStoikov
from engine.strategies.avellaneda import as_quotes

S0, T, SIGMA, DT, K, A, GAMMA = 100.0, 1.0, 2.0, 0.005, 1.5, 140.0, 0.1
STEPS = round(T / DT)
RUNS = 1000


def simulate_closed_form(runs, seed, *, inventory_aware):
    """Vectorised over runs: the unrounded closed-form quotes, exactly as in the paper."""
    rng = np.random.default_rng(seed)
    s = np.full(runs, S0)
    q = np.zeros(runs)
    cash = np.zeros(runs)
    for step in range(STEPS):
        tau = T - step * DT
        r, spread = as_quotes(s, q if inventory_aware else 0.0, gamma=GAMMA, sigma=SIGMA, tau=tau, k=K)
        bid = r - spread / 2
        ask = r + spread / 2
        p_bid = np.clip(A * np.exp(-K * (s - bid)) * DT, 0.0, 1.0)
        p_ask = np.clip(A * np.exp(-K * (ask - s)) * DT, 0.0, 1.0)
        bought = rng.random(runs) < p_bid
        sold = rng.random(runs) < p_ask
        q += bought.astype(float) - sold
        cash += np.where(sold, ask, 0.0) - np.where(bought, bid, 0.0)
        s = s + np.where(rng.random(runs) < 0.5, 1.0, -1.0) * SIGMA * math.sqrt(DT)
    return cash + q * s, q


TICK = 0.01  # price units per tick for the run through the strategy class


def simulate_strategy_class(runs, seed, *, inventory_aware):
    """The same market driven through `AvellanedaStoikov.on_book` on a 0.01 tick grid, with its rounding.

    Units converted to ticks: s0 = 10000 ticks, sigma = 200 ticks/sqrt(s), k = 0.015 per tick, gamma = 0.001 per
    tick per unit. The book is one tick wide around the simulated mid (bid = floor(s)), so the strategy sees the mid
    to within half a tick; fills are drawn against the true mid. The symmetric strategy is the same class told its
    position is always 0 (same spread, centred on s).
    """
    rng = np.random.default_rng(seed)
    moves = np.where(rng.random((runs, STEPS)) < 0.5, 1.0, -1.0) * SIGMA * math.sqrt(DT) / TICK
    u_bid = rng.random((runs, STEPS))
    u_ask = rng.random((runs, STEPS))
    params = {
        "gamma": GAMMA * TICK,
        "k": K * TICK,
        "A": A,
        "sigma": SIGMA / TICK,
        "horizon_s": T,
        "horizon_mode": "FIXED",
        "order_size": 1,
        "max_inventory": 10_000,
        "requote_threshold_ticks": 0,
    }
    step_ns = round(DT * 1e9)
    profits = np.empty(runs)
    finals = np.empty(runs)
    exp = math.exp
    k_tick = K * TICK
    for run in range(runs):
        mm = AvellanedaStoikov("paper", "SIM", params)
        mm.start(0)
        book = L2Book("SIM")
        s = S0 / TICK
        q = 0
        cash = 0  # ticks
        for step in range(STEPS):
            mm.set_position(q if inventory_aware else 0)
            floor_s = math.floor(s)
            book.load_snapshot([(floor_s, 1)], [(floor_s + 1, 1)])
            quotes = mm.on_book(book, step * step_ns)
            bought = u_bid[run, step] < min(1.0, A * exp(-k_tick * (s - quotes.bid_price)) * DT)
            sold = u_ask[run, step] < min(1.0, A * exp(-k_tick * (quotes.ask_price - s)) * DT)
            if bought:
                q += 1
                cash -= quotes.bid_price
            if sold:
                q -= 1
                cash += quotes.ask_price
            s += moves[run, step]
        profits[run] = (cash + q * s) * TICK
        finals[run] = q
    return profits, finals


def summary(profit, final_q):
    return profit.mean(), profit.std(), final_q.mean(), final_q.std()


def table(title, inventory, symmetric):
    rows = [f"{title}", f"{'strategy':<12}{'profit':>9}{'std':>8}{'final q':>9}{'std':>7}"]
    for name, (pm, ps, qm, qs) in (("inventory", inventory), ("symmetric", symmetric)):
        rows.append(f"{name:<12}{pm:9.2f}{ps:8.2f}{qm:9.2f}{qs:7.2f}")
    return "\n".join(rows)


def test_closed_form_inventory_strategy_has_far_lower_profit_and_inventory_dispersion_than_symmetric():
    inventory = summary(*simulate_closed_form(RUNS, seed=2008, inventory_aware=True))
    symmetric = summary(*simulate_closed_form(RUNS, seed=2008, inventory_aware=False))

    print("\n" + table(f"closed form, {RUNS} runs", inventory, symmetric))
    assert inventory[1] < 0.6 * symmetric[1]
    assert inventory[3] < 0.6 * symmetric[3]
    # Close to the paper's figures (62.94 / 5.89 / 2.80 and 67.21 / 13.43 / 8.66), within sampling error.
    assert inventory[0] == pytest.approx(62.94, rel=0.05)
    assert inventory[1] == pytest.approx(5.89, rel=0.15)
    assert inventory[3] == pytest.approx(2.80, rel=0.15)
    assert symmetric[0] == pytest.approx(67.21, rel=0.05)
    assert symmetric[1] == pytest.approx(13.43, rel=0.15)
    assert symmetric[3] == pytest.approx(8.66, rel=0.15)
    # The price of lower risk: the symmetric strategy earns more on average.
    assert symmetric[0] > inventory[0]


CLASS_RUNS = 1000


def test_the_strategy_class_on_a_tick_grid_reproduces_the_paper_qualitatively():
    inventory = summary(*simulate_strategy_class(CLASS_RUNS, seed=8, inventory_aware=True))
    symmetric = summary(*simulate_strategy_class(CLASS_RUNS, seed=8, inventory_aware=False))

    print("\n" + table(f"AvellanedaStoikov class, tick 0.01, {CLASS_RUNS} runs", inventory, symmetric))
    assert inventory[1] < 0.6 * symmetric[1]
    assert inventory[3] < 0.6 * symmetric[3]
    assert inventory[0] == pytest.approx(62.94, rel=0.1)
    assert inventory[1] == pytest.approx(5.89, rel=0.2)
    assert symmetric[0] == pytest.approx(67.21, rel=0.1)
    assert symmetric[1] == pytest.approx(13.43, rel=0.15)
