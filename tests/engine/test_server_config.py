"""The engine config file: the default one loads; each bad value stops start-up with the name of its key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.journal import FsyncPolicy
from engine.protocol import ScopeKind
from engine.server.config import DEFAULT_CONFIG_PATH, ROOT, ServerConfigError, VenueKind, build_config, load_config

WAIT_S = 60


def default_raw() -> dict:
    return tomllib.loads(DEFAULT_CONFIG_PATH.read_text())


def build(raw: dict):
    return build_config(raw, path=Path("engine.toml"), base_dir=ROOT)


def test_the_default_config_file_loads_with_one_as_strategy_on_btcusdt_and_the_in_process_venue():
    config = load_config()

    (strategy,) = config.engine.strategies
    assert strategy.symbol == "BTCUSDT" and strategy.name == "avellaneda_stoikov" and strategy.autostart
    assert config.venue.kind is VenueKind.INPROCESS and config.venue.flow[0].symbol == "BTCUSDT"
    assert config.journal_path == ROOT / "var" / "engine" / "journal.bin"
    assert config.fsync is FsyncPolicy.BATCH
    assert {cmd.scope.kind for cmd in config.limits} == {ScopeKind.FIRM, ScopeKind.INSTRUMENT}
    assert config.engine.triggers[0].triggers.heartbeat_timeout_ns == 15_000_000_000


def test_startup_limits_get_the_same_command_id_on_every_load_so_a_restart_does_not_repeat_them():
    first, second = load_config(), load_config()

    assert [c.command_id for c in first.limits] == [c.command_id for c in second.limits]


def _set(raw: dict, dotted: str, value) -> dict:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part.endswith("]"):
            name, index = part[:-1].split("[")
            node = node[name][int(index)]
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


BAD_VALUES = [
    ("instruments_file", "no/such/file.toml", "instruments_file"),
    ("engine.engine_id", "", "engine.engine_id"),
    ("engine.replay_ring_size", -1, "engine.replay_ring_size"),
    ("engine.no_such_knob", 1, "engine.no_such_knob"),
    ("strategies[0].symbol", "BTCUSD", "strategies[0].symbol"),
    ("strategies[0].name", "martingale", "strategies[0].name"),
    ("strategies[0].params.gamma", -1.0, "strategies[0].params"),
    ("limits[0].scope", "desk:alpha", "limits[0].scope"),
    ("limits[1].limits.max_order_quantity", "0.0005", "limits[1].limits"),
    ("limits[0].limits.max_open_orders", "many", "limits[0].limits.max_open_orders"),
    ("triggers[0].triggers.heartbeat_action", "PANIC", "triggers[0].triggers.heartbeat_action"),
    ("endpoints.commands", "http://127.0.0.1:7101", "endpoints.commands"),
    ("endpoints.commands", "tcp://127.0.0.1:99999", "endpoints.commands"),
    ("endpoints.events", "tcp://127.0.0.1:7101", "endpoints.events"),
    ("journal.fsync", "sometimes", "journal.fsync"),
    ("venue.kind", "carrier-pigeon", "venue.kind"),
    ("venue.flow[0].symbol", "DOGEUSDT", "venue.flow[0].symbol"),
    ("venue.flow[0].intensity", 0, "venue.flow[0].intensity"),
    ("timers.tick_ms", 0, "timers.tick_ms"),
    ("surprise", 1, "surprise"),
]


@pytest.mark.parametrize(("dotted", "value", "key"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_a_bad_value_fails_with_the_name_of_its_key(dotted, value, key):
    raw = _set(default_raw(), dotted, value)

    with pytest.raises(ServerConfigError) as caught:
        build(raw)

    assert caught.value.key == key, caught.value.reason
    assert caught.value.reason.startswith(key)


def test_a_strategy_configured_twice_is_refused():
    raw = default_raw()
    raw["strategies"].append(dict(raw["strategies"][0]))

    with pytest.raises(ServerConfigError) as caught:
        build(raw)

    assert caught.value.key == "strategies[1].strategy_id"


def test_python_m_engine_with_a_bad_config_exits_2_naming_the_key(tmp_path):
    text = DEFAULT_CONFIG_PATH.read_text().replace('symbol = "BTCUSDT"\nautostart', 'symbol = "NOPE"\nautostart', 1)
    bad = tmp_path / "engine.toml"
    bad.write_text(text)

    done = subprocess.run(
        [sys.executable, "-m", "engine", "--config", str(bad)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )

    assert done.returncode == 2
    assert "strategies[0].symbol" in done.stderr


def test_python_m_engine_with_a_missing_config_file_exits_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "engine", "--config", str(tmp_path / "absent.toml")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )

    assert done.returncode == 2
    assert "does not exist" in done.stderr
