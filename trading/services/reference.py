"""Reference data from the engine's configuration files into the database: instruments and strategies.

The files are the source of truth (the engine reads the same ones at start-up); the tables mirror them so the
console can join, filter and export by instrument and strategy. Idempotent: running it twice changes nothing
the second time, and it never deletes (history refers to retired instruments and strategies), it marks an
instrument that left the file inactive.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.protocol import InstrumentRegistry
from trading.models import Account, Instrument, Strategy


class ReferenceDataError(Exception):
    """The engine configuration file cannot be read; `code` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SyncResult:
    instruments_created: int = 0
    instruments_updated: int = 0
    instruments_retired: int = 0
    strategies_created: int = 0
    strategies_updated: int = 0
    accounts_created: int = 0

    @property
    def changed(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)


def engine_config_path() -> Path:
    return Path(getattr(settings, "ENGINE_CONFIG_FILE", settings.BASE_DIR / "config" / "engine.toml"))


def _json_value(value):
    """TOML floats become decimal strings (the engine reads them as Decimals); tables and lists recurse."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def _read_engine_config(path: Path) -> dict:
    try:
        # parse_float=Decimal: 0.05 stays exactly 0.05, not the nearest binary float.
        return tomllib.loads(path.read_text(), parse_float=Decimal)
    except FileNotFoundError:
        raise ReferenceDataError("ENGINE_CONFIG_MISSING", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReferenceDataError("ENGINE_CONFIG_INVALID", f"{path}: {exc}") from None


def _update(row, values: dict) -> bool:
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, values[name])
    if changed:
        row.save()
    return bool(changed)


@transaction.atomic
def sync_reference_data(*, instruments_file: Path | None = None, engine_config_file: Path | None = None) -> SyncResult:
    """Upsert instruments from instruments.toml and the account and strategies from engine.toml.

    A strategy's state, params and params_version are the engine's once it runs (the bridge writes them from
    StrategyStateChanged / StrategyParamsChanged); the sync only sets them for a strategy it creates, and
    otherwise refreshes the configured name, symbol and account.
    """
    registry = InstrumentRegistry.from_toml(instruments_file or settings.ENGINE_INSTRUMENTS_FILE)
    config = _read_engine_config(engine_config_file or engine_config_path())
    counts = dict.fromkeys(SyncResult.__dataclass_fields__, 0)

    for instrument in registry:
        values = {
            "description": instrument.description,
            "venue": instrument.venue,
            "currency": instrument.currency,
            "tick_size": instrument.tick_size,
            "lot_size": instrument.lot_size,
            "multiplier": instrument.multiplier,
            "price_precision": instrument.price_precision,
            "size_precision": instrument.size_precision,
            "active": True,
        }
        row = Instrument.objects.select_for_update().filter(symbol=instrument.symbol).first()
        if row is None:
            Instrument.objects.create(symbol=instrument.symbol, **values)
            counts["instruments_created"] += 1
        elif _update(row, values):
            counts["instruments_updated"] += 1
    counts["instruments_retired"] = (
        Instrument.objects.filter(active=True).exclude(symbol__in=registry.symbols).update(active=False)
    )

    engine = config.get("engine", {})
    account, engine_id = str(engine.get("account", "")), str(engine.get("engine_id", ""))
    if account:
        _, created = Account.objects.get_or_create(code=account, defaults={"name": account})
        counts["accounts_created"] += int(created)

    for entry in config.get("strategies", []):
        try:
            strategy_id, name, symbol = entry["strategy_id"], entry["name"], entry["symbol"]
        except KeyError as exc:
            raise ReferenceDataError("ENGINE_CONFIG_INVALID", f"strategies entry without {exc.args[0]}") from None
        configured = {
            "name": name,
            "symbol": symbol,
            "account": account,
            "autostart": bool(entry.get("autostart", False)),
            "engine_id": engine_id,
        }
        row = Strategy.objects.select_for_update().filter(strategy_id=strategy_id).first()
        if row is None:
            Strategy.objects.create(
                strategy_id=strategy_id,
                params=_json_value(entry.get("params", {})),
                updated_at=timezone.now(),
                **configured,
            )
            counts["strategies_created"] += 1
        elif _update(row, configured):
            counts["strategies_updated"] += 1
    return SyncResult(**counts)
