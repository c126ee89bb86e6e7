"""Strategy parameter sets: schema validation, atomic apply, versions and rollback (engine thread only).

A strategy's parameters are a frozen `msgspec.Struct` whose field annotations carry the ranges (`Meta(gt=0)`...).
`ParamSet` holds the version in force and every earlier one. `update` merges the changes into the current set,
validates the *merged* set against the schema (so cross-field rules such as max_inventory >= order_size see the
final values) and only then swaps it in: a refused change raises a reason-coded `StrategyError` and leaves the
current set untouched, so a strategy never runs with half an update.

On the wire (`UpdateStrategyParams.params`) values are Decimal | int | str | bool. Float fields are built from
Decimals (or ints) and sent back as `Decimal(repr(value))`, which round-trips exactly for any value typed with at
most 15 significant digits, so the console shows what the operator typed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

from engine.errors import EngineError

PARAM_INVALID = "STRATEGY_PARAM_INVALID"  # a value out of range, of the wrong type, or a cross-field rule broken
PARAM_UNKNOWN = "STRATEGY_PARAM_UNKNOWN"  # a name the schema does not have
PARAM_EMPTY = "STRATEGY_PARAM_EMPTY"  # an update that changes nothing is refused, so versions mean something
PARAM_VERSION_UNKNOWN = "STRATEGY_PARAM_VERSION_UNKNOWN"  # rollback to a version that never existed
PARAM_VERSION_CONFLICT = "STRATEGY_PARAM_VERSION_CONFLICT"  # compare-and-set base_version is not the current one


class StrategyError(EngineError):
    """A refused strategy operation; `code` is a STRATEGY_* reason code."""


class ParamVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the history: the full set in force from `ts` on, who made it and why."""

    version: int
    params: Any  # the strategy's params Struct
    operator: str
    reason: str
    ts: int  # ns, from the caller's clock
    rolled_back_to: int = 0  # the earlier version copied by a rollback, 0 for an ordinary update


_INT_FIELDS: dict[type, frozenset[str]] = {}


def _int_fields(schema: type) -> frozenset[str]:
    names = _INT_FIELDS.get(schema)
    if names is None:
        info = msgspec.inspect.type_info(schema)
        names = frozenset(f.name for f in info.fields if isinstance(f.type, msgspec.inspect.IntType))
        _INT_FIELDS[schema] = names
    return names


def _validate(schema: type, merged: dict[str, Any]) -> Any:
    # msgspec converts a Decimal to a float field but refuses it for an int field; an integral Decimal is what the
    # console sends when an operator types "5", so it is accepted for int fields, exactly (5.5 is still refused).
    # msgspec also refuses Decimal subclasses (the protocol decodes parameters as one), so those become Decimals.
    int_fields = _int_fields(schema)
    for name, value in merged.items():
        if isinstance(value, Decimal):
            if name in int_fields and value.is_finite() and value == value.to_integral_value():
                merged[name] = int(value)
            elif type(value) is not Decimal:
                merged[name] = Decimal(value)
    try:
        return msgspec.convert(merged, schema)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = PARAM_UNKNOWN if text.startswith("Object contains unknown field") else PARAM_INVALID
        raise StrategyError(code, text) from None


def params_to_wire(params: msgspec.Struct) -> dict[str, Decimal | int | str | bool]:
    """The set as protocol values: floats as exact-repr Decimals, enums as their values."""
    out: dict[str, Decimal | int | str | bool] = {}
    for name in params.__struct_fields__:
        value = getattr(params, name)
        if isinstance(value, float):
            value = Decimal(repr(value))
        elif isinstance(value, Enum):
            value = value.value
        out[name] = value
    return out


class ParamSet:
    """The versions of one strategy's parameters (1, 2, ...); version `current` is in force.

    `schema` is the params Struct type; `initial` (an instance, or a dict of changes from the defaults) becomes
    version 1. Every method is engine thread only; `ts` is supplied by the caller from its clock.
    """

    __slots__ = ("_history", "schema")

    def __init__(
        self,
        schema: type,
        initial: msgspec.Struct | dict[str, Any] | None = None,
        *,
        operator: str = "system",
        reason: str = "initial parameters",
        ts: int = 0,
    ) -> None:
        self.schema = schema
        if initial is None or isinstance(initial, dict):
            params = _validate(schema, dict(initial or {}))
        elif type(initial) is schema:
            # Re-validate: a Struct built in code skips Meta checks unless built through msgspec.
            params = _validate(schema, msgspec.structs.asdict(initial))
        else:
            raise StrategyError(
                PARAM_INVALID, f"initial parameters are a {type(initial).__name__}, not a {schema.__name__}"
            )
        self._history: list[ParamVersion] = [
            ParamVersion(version=1, params=params, operator=operator, reason=reason, ts=ts)
        ]

    @property
    def current(self) -> Any:
        return self._history[-1].params

    @property
    def version(self) -> int:
        return self._history[-1].version

    @property
    def history(self) -> tuple[ParamVersion, ...]:
        return tuple(self._history)

    def get(self, version: int) -> ParamVersion:
        if not 1 <= version <= len(self._history):
            raise StrategyError(PARAM_VERSION_UNKNOWN, f"no parameter version {version} (have 1..{self.version})")
        return self._history[version - 1]

    def validate(self, changes: dict[str, Any]) -> Any:
        """The merged set `changes` would produce, validated, without applying it (raises StrategyError)."""
        if not changes:
            raise StrategyError(PARAM_EMPTY, "no parameters to change")
        merged = msgspec.structs.asdict(self.current)
        unknown = sorted(changes.keys() - merged.keys())
        if unknown:
            raise StrategyError(PARAM_UNKNOWN, f"unknown parameter(s) {', '.join(unknown)} for {self.schema.__name__}")
        merged.update(changes)
        return _validate(self.schema, merged)

    def update(
        self,
        changes: dict[str, Any],
        *,
        operator: str,
        reason: str = "",
        ts: int,
        base_version: int | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> int:
        """Apply `changes` atomically and return the new version, or raise StrategyError with nothing changed.

        `base_version`, when given, makes it compare-and-set: refused unless it is the version in force. `check`,
        when given, sees the validated candidate before it is applied and may refuse it by raising StrategyError.
        """
        self._check_base(base_version)
        params = self.validate(changes)
        if check is not None:
            check(params)
        return self._append(params, operator=operator, reason=reason, ts=ts, rolled_back_to=0)

    def rollback(
        self,
        version: int,
        *,
        operator: str,
        reason: str = "",
        ts: int,
        base_version: int | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> int:
        """Put the set of an earlier `version` back in force as a new version (history is never rewritten);
        `base_version` is compare-and-set as for `update`."""
        self._check_base(base_version)
        params = self.get(version).params
        if check is not None:
            check(params)
        return self._append(params, operator=operator, reason=reason, ts=ts, rolled_back_to=version)

    def _check_base(self, base_version: int | None) -> None:
        if base_version is not None and base_version != self.version:
            raise StrategyError(
                PARAM_VERSION_CONFLICT, f"base version {base_version} is not the current version {self.version}"
            )

    def _append(self, params: Any, *, operator: str, reason: str, ts: int, rolled_back_to: int) -> int:
        version = self.version + 1
        self._history.append(
            ParamVersion(
                version=version, params=params, operator=operator, reason=reason, ts=ts, rolled_back_to=rolled_back_to
            )
        )
        return version
