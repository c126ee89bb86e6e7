"""Strategies: the base class, desired quotes, the quote manager, Avellaneda-Stoikov/GLFT, signals (engine thread).

See docs/strategies.md for the formulas, units and rounding rules.
"""

from engine.strategies.avellaneda import AvellanedaStoikov, AvellanedaStoikovParams
from engine.strategies.base import NO_QUOTES, Quotes, Strategy
from engine.strategies.params import ParamSet, ParamVersion, StrategyError, params_to_wire
from engine.strategies.quotes import Action, Cancel, New, QuoteManager, Replace
from engine.strategies.registry import create, register, strategy_class

__all__ = [
    "NO_QUOTES",
    "Action",
    "AvellanedaStoikov",
    "AvellanedaStoikovParams",
    "Cancel",
    "New",
    "ParamSet",
    "ParamVersion",
    "QuoteManager",
    "Quotes",
    "Replace",
    "Strategy",
    "StrategyError",
    "create",
    "params_to_wire",
    "register",
    "strategy_class",
]
