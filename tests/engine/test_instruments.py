"""Instrument definitions and the exact Decimal <-> tick/lot conversions at the engine's edges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.instruments import MAX_STEPS, Instrument, InstrumentError, InstrumentRegistry

REGISTRY = InstrumentRegistry.from_toml()
BTC = REGISTRY.get("BTCUSDT")
ES = REGISTRY.get("ESM4")


def test_the_shipped_instrument_file_loads_every_instrument():
    assert set(REGISTRY.symbols) >= {"BTCUSDT", "ETHUSDT", "ESM4", "USDJPY"}
    assert ES.tick_size == Decimal("0.25")
    assert ES.multiplier == Decimal(50)


@pytest.mark.parametrize(
    ("instrument", "price", "ticks"),
    [(BTC, "58000.1", 580001), (BTC, "58000.10000", 580001), (BTC, "-0.1", -1), (ES, "5321.75", 21287), (ES, 0, 0)],
)
def test_a_price_on_the_grid_converts_to_ticks_and_back_exactly(instrument, price, ticks):
    assert instrument.price_to_ticks(price) == ticks
    assert instrument.ticks_to_price(ticks) == Decimal(price)


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ("58000.15", "PRICE_OFF_TICK"),
        ("1e-999999999", "PRICE_OFF_TICK"),
        ("1e30", "BAD_PRICE"),
        ("NaN", "BAD_PRICE"),
        ("Infinity", "BAD_PRICE"),
        ("ten dollars", "BAD_PRICE"),
        (None, "BAD_PRICE"),
    ],
)
def test_a_price_off_the_grid_or_not_a_number_is_refused_with_a_code_and_never_rounded(price, code):
    with pytest.raises(InstrumentError) as refused:
        BTC.price_to_ticks(price)

    assert refused.value.code == code


def test_a_quantity_off_the_lot_grid_is_refused():
    with pytest.raises(InstrumentError) as refused:
        BTC.qty_to_lots("0.0005")

    assert refused.value.code == "QUANTITY_OFF_LOT"
    assert BTC.qty_to_lots("0.005") == 5


def test_notional_uses_the_contract_multiplier():
    assert ES.notional(ES.price_to_ticks("5000"), 2) == Decimal("500000.00")


@given(st.integers(min_value=-MAX_STEPS, max_value=MAX_STEPS))
def test_every_int64_tick_count_survives_the_round_trip_through_decimal(ticks):
    assert BTC.price_to_ticks(BTC.ticks_to_price(ticks)) == ticks


def test_an_unknown_symbol_is_refused_with_a_code():
    with pytest.raises(InstrumentError) as refused:
        REGISTRY.get("DOGEUSDT")

    assert refused.value.code == "UNKNOWN_SYMBOL"
    assert "DOGEUSDT" not in REGISTRY


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tick_size", Decimal(0), "INSTRUMENT_BAD_FIELD"),
        ("lot_size", Decimal(-1), "INSTRUMENT_BAD_FIELD"),
        ("price_precision", 0, "INSTRUMENT_BAD_FIELD"),
        ("price_precision", 40, "INSTRUMENT_BAD_FIELD"),
        ("symbol", "BAD SYMBOL", "INSTRUMENT_BAD_SYMBOL"),
    ],
)
def test_an_inconsistent_instrument_definition_is_refused(field, value, code):
    fields = {
        "symbol": "X",
        "tick_size": Decimal("0.01"),
        "lot_size": Decimal(1),
        "price_precision": 2,
        "size_precision": 0,
    }
    fields[field] = value

    with pytest.raises(InstrumentError) as refused:
        Instrument(**fields)

    assert refused.value.code == code


def test_a_bad_instrument_file_names_the_bad_key(tmp_path):
    path = tmp_path / "instruments.toml"
    path.write_text(
        '[[instruments]]\nsymbol = "X"\ntick_size = "0.01"\nlot_size = "1"\nprice_precision = 2\n'
        'size_precision = 0\ntick_sise = "0.5"\n'
    )

    with pytest.raises(InstrumentError) as refused:
        InstrumentRegistry.from_toml(path)

    assert refused.value.code == "INSTRUMENT_FILE_INVALID"
    assert "tick_sise" in refused.value.reason


def test_a_symbol_defined_twice_is_refused():
    with pytest.raises(InstrumentError) as refused:
        InstrumentRegistry([BTC, BTC])

    assert refused.value.code == "INSTRUMENT_DUPLICATE"
