"""Strategy names -> classes, for the StartStrategy / configuration path (engine thread only).

The name is what configuration files and the console use; the class brings its own params schema
(`params_type`), so a strategy can be created from a name and a dict of wire values.
"""

from __future__ import annotations

from typing import Any

from engine.strategies.avellaneda import AvellanedaStoikov
from engine.strategies.base import Strategy
from engine.strategies.params import StrategyError

STRATEGY_UNKNOWN = "STRATEGY_UNKNOWN"

_REGISTRY: dict[str, type[Strategy]] = {
    "avellaneda_stoikov": AvellanedaStoikov,
}


def register(name: str, cls: type[Strategy]) -> None:
    """Add a strategy class under `name` (at start-up, before any strategy is created)."""
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise StrategyError(STRATEGY_UNKNOWN, f"strategy name {name!r} is already registered")
    _REGISTRY[name] = cls


def strategy_class(name: str) -> type[Strategy]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StrategyError(STRATEGY_UNKNOWN, f"unknown strategy {name!r} (known: {', '.join(names())})") from None


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def create(
    name: str,
    strategy_id: str,
    symbol: str,
    params: dict[str, Any] | None = None,
    *,
    operator: str = "system",
    ts: int = 0,
) -> Strategy:
    """A stopped strategy of class `name`; `params` (wire values) override the schema defaults, validated."""
    return strategy_class(name)(strategy_id, symbol, params, operator=operator, ts=ts)
