"""Instruments and strategies are synced from the engine's configuration files, idempotently."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.models import Account, Instrument, Strategy
from trading.services.reference import ReferenceDataError, sync_reference_data

pytestmark = pytest.mark.django_db

ENGINE_TOML = """
[engine]
engine_id = "engine-7"
account = "MM7"

[[strategies]]
strategy_id = "as-eth"
name = "avellaneda_stoikov"
symbol = "ETHUSDT"
autostart = true
params = { gamma = 0.05, order_size = 2 }
"""

INSTRUMENTS_TOML = """
[[instruments]]
symbol = "ETHUSDT"
currency = "USDT"
tick_size = "0.01"
lot_size = "0.001"
price_precision = 2
size_precision = 3
"""


def test_the_repository_configuration_syncs_every_instrument_and_strategy():
    result = sync_reference_data()

    assert result.instruments_created == 5
    btc = Instrument.objects.get(symbol="BTCUSDT")
    assert (btc.tick_size, btc.lot_size, btc.currency) == (Decimal("0.1"), Decimal("0.001"), "USDT")
    strategy = Strategy.objects.get(strategy_id="as-btc")
    assert (strategy.symbol, strategy.account, strategy.engine_id) == ("BTCUSDT", "MM1", "engine-1")
    assert Account.objects.filter(code="MM1").exists()


def test_a_second_sync_changes_nothing():
    sync_reference_data()

    again = sync_reference_data()

    assert not again.changed
    assert Instrument.objects.count() == 5


def test_a_resync_keeps_the_state_and_params_the_engine_reported(tmp_path):
    engine = tmp_path / "engine.toml"
    engine.write_text(ENGINE_TOML)
    instruments = tmp_path / "instruments.toml"
    instruments.write_text(INSTRUMENTS_TOML)
    sync_reference_data(instruments_file=instruments, engine_config_file=engine)
    Strategy.objects.filter(strategy_id="as-eth").update(state="RUNNING", params={"gamma": "0.07"}, params_version=3)

    sync_reference_data(instruments_file=instruments, engine_config_file=engine)

    strategy = Strategy.objects.get(strategy_id="as-eth")
    assert (strategy.state, strategy.params, strategy.params_version) == ("RUNNING", {"gamma": "0.07"}, 3)


def test_new_strategy_params_are_stored_as_decimal_strings(tmp_path):
    engine = tmp_path / "engine.toml"
    engine.write_text(ENGINE_TOML)
    instruments = tmp_path / "instruments.toml"
    instruments.write_text(INSTRUMENTS_TOML)

    sync_reference_data(instruments_file=instruments, engine_config_file=engine)

    assert Strategy.objects.get(strategy_id="as-eth").params == {"gamma": "0.05", "order_size": 2}


def test_an_instrument_removed_from_the_file_is_kept_but_marked_inactive(tmp_path):
    sync_reference_data()
    engine = tmp_path / "engine.toml"
    engine.write_text(ENGINE_TOML)
    instruments = tmp_path / "instruments.toml"
    instruments.write_text(INSTRUMENTS_TOML)

    result = sync_reference_data(instruments_file=instruments, engine_config_file=engine)

    assert result.instruments_retired == 4
    assert list(Instrument.objects.filter(active=True).values_list("symbol", flat=True)) == ["ETHUSDT"]
    assert Instrument.objects.count() == 5


def test_a_missing_engine_config_fails_with_a_reason_code_and_changes_nothing(tmp_path):
    with pytest.raises(ReferenceDataError) as error:
        sync_reference_data(engine_config_file=tmp_path / "absent.toml")

    assert error.value.code == "ENGINE_CONFIG_MISSING"
    assert not Instrument.objects.exists()
