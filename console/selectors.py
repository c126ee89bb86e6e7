from __future__ import annotations

from functools import cache

from django.conf import settings

from engine.protocol import Instrument, InstrumentRegistry


@cache
def _registry(path: str) -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(path)


def instruments() -> InstrumentRegistry:
    """The instrument registry the engine is configured with (read once per file: it changes only with a
    restart, and tests point the setting at their own file)."""
    return _registry(str(settings.ENGINE_INSTRUMENTS_FILE))


def instrument_universe() -> list[Instrument]:
    """The instruments the engine is configured with, in file order."""
    return list(instruments())
