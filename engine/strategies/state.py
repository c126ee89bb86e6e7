"""A strategy's whole state as plain data, for engine snapshots (engine thread only).

Snapshots used to pickle the strategies; unpickling a file executes whatever it names, before any checksum over the
restored state can be checked. Here a strategy (its slots, its estimators and signals, its parameter versions) is
written as tagged plain data that msgspec MessagePack can carry, and read back into a freshly constructed strategy
of the same class. Reading only ever builds classes on an allow-list (the strategy package's own classes, the
engine's enums and the protocol's StrategyState) and never calls anything but their constructors (msgspec Structs,
which validate) or `object.__new__` + setattr (plain slotted objects), so a hostile file can at worst be refused.

Tags (every container is tagged, so a list is never confused with a tuple, and a float is kept bit for bit):
["L", items] list, ["T", items] tuple, ["Q", maxlen, items] deque, ["M", [[k, v], ...]] dict, ["D", str] Decimal,
["E", class, value] enum, ["C", class] a class, ["R", class, {field: value}] msgspec Struct, ["O", class,
{slot: value}] plain object. Scalars (None, bool, int, float, str) are themselves.
"""

from __future__ import annotations

import sys
from collections import deque
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

from engine.errors import EngineError

STRATEGY_BAD_STATE = "STRATEGY_BAD_STATE"
_SCALARS = (type(None), bool, int, float, str)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _allowed() -> dict[str, type]:
    """Classes a state may name: everything defined in engine.strategies.*, engine.enums, engine.protocol's enums."""
    out: dict[str, type] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None:
            continue
        if not (module_name.startswith("engine.strategies") or module_name in ("engine.enums", "engine.protocol")):
            continue
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module_name:
                if module_name == "engine.protocol" and not issubclass(value, Enum):
                    continue  # protocol messages have no place in a strategy's state
                out[_name(value)] = value
    return out


def dump(value: Any) -> Any:
    """`value` as tagged plain data (see the module docstring)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, Enum):
        return ["E", _name(kind), value.value]
    if kind is Decimal:
        return ["D", str(value)]
    if kind is list:
        return ["L", [dump(v) for v in value]]
    if kind is tuple:
        return ["T", [dump(v) for v in value]]
    if kind is deque:
        return ["Q", value.maxlen, [dump(v) for v in value]]
    if kind is dict:
        return ["M", [[dump(k), dump(v)] for k, v in value.items()]]
    if isinstance(value, type):
        return ["C", _name(value)]
    if isinstance(value, msgspec.Struct):
        return ["R", _name(kind), {f: dump(getattr(value, f)) for f in value.__struct_fields__}]
    return ["O", _name(kind), {k: dump(v) for k, v in _fields(value).items()}]


def _fields(obj: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(obj, slot):
                fields[slot] = getattr(obj, slot)
    if hasattr(obj, "__dict__"):
        fields.update(vars(obj))
    return fields


def load(data: Any, allowed: dict[str, type]) -> Any:
    """The value `dump` wrote; raises EngineError(STRATEGY_BAD_STATE) on anything it did not write."""
    if type(data) in _SCALARS:
        return data
    if type(data) is not list or not data or type(data[0]) is not str:
        raise EngineError(STRATEGY_BAD_STATE, f"untagged value of type {type(data).__name__}")
    tag = data[0]
    try:
        if tag == "L":
            return [load(v, allowed) for v in data[1]]
        if tag == "T":
            return tuple(load(v, allowed) for v in data[1])
        if tag == "Q":
            return deque((load(v, allowed) for v in data[2]), maxlen=data[1])
        if tag == "M":
            return {load(k, allowed): load(v, allowed) for k, v in data[1]}
        if tag == "D":
            return Decimal(data[1])
        cls = allowed.get(data[1])
        if cls is None:
            raise EngineError(STRATEGY_BAD_STATE, f"class {data[1]!r} is not allowed in a strategy state")
        if tag == "E":
            return cls(data[2])
        if tag == "C":
            return cls
        if tag == "R":
            return cls(**{k: load(v, allowed) for k, v in data[2].items()})
        if tag == "O":
            obj = object.__new__(cls)
            for k, v in data[2].items():
                setattr(obj, k, load(v, allowed))
            return obj
    except EngineError:
        raise
    except Exception as exc:  # a malformed state: refuse it, never half-build
        raise EngineError(STRATEGY_BAD_STATE, f"bad {tag!r} value: {exc}") from None
    raise EngineError(STRATEGY_BAD_STATE, f"unknown tag {tag!r}")


def strategy_state(strategy: Any) -> Any:
    """Every slot of `strategy` as tagged plain data."""
    return dump(strategy)


def restore_strategy(strategy: Any, data: Any) -> None:
    """Overwrite every slot of `strategy` (a fresh instance of the same class) with a `strategy_state()`."""
    if type(data) is not list or len(data) != 3 or data[0] != "O" or data[1] != _name(type(strategy)):
        raise EngineError(STRATEGY_BAD_STATE, f"not a state of a {type(strategy).__name__}")
    allowed = _allowed()
    values = {k: load(v, allowed) for k, v in data[2].items()}
    for k, v in values.items():
        setattr(strategy, k, v)
