from __future__ import annotations

from functools import cache

from django.conf import settings

from engine.protocol import Instrument, InstrumentRegistry


@cache
def _registry(path: str) -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(path)


def instrument_universe() -> list[Instrument]:
    """The instruments the engine is configured with, in file order."""
    return list(_registry(str(settings.ENGINE_INSTRUMENTS_FILE)))
