"""Instrument reference data and the only decimal <-> integer conversions in the engine (any thread: immutable).

Inside the engine a price is an integer count of ticks and a quantity an integer count of lots.
Decimals exist only at the edges (operator commands, recorded files, FIX, the database); they are
converted here, exactly, and a value that is not on the grid is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded, Underflow
from pathlib import Path

import msgspec

from engine.errors import EngineError

DEFAULT_INSTRUMENTS_PATH = Path(__file__).resolve().parent.parent / "config" / "instruments.toml"


# Enough digits to quantize any step to any allowed precision without InvalidOperation.
_EXACT_Q = Context(prec=60)


class InstrumentError(EngineError):
    """An instrument definition or a conversion against it is invalid."""


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    price_precision: int
    size_precision: int
    multiplier: Decimal = Decimal(1)
    venue: str = "SIM"
    currency: str = "USD"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.replace(".", "").replace("-", "").replace("/", "").isalnum():
            raise InstrumentError("INSTRUMENT_BAD_SYMBOL", f"bad symbol {self.symbol!r}")
        for name in ("tick_size", "lot_size", "multiplier"):
            value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise InstrumentError("INSTRUMENT_BAD_FIELD", f"{self.symbol}.{name} must be positive, got {value}")
        for name, step in (("price_precision", self.tick_size), ("size_precision", self.lot_size)):
            precision = getattr(self, name)
            if not 0 <= precision <= 18 or step != step.quantize(Decimal(1).scaleb(-precision), context=_EXACT_Q):
                raise InstrumentError(
                    "INSTRUMENT_BAD_FIELD", f"{self.symbol}.{name}={precision} cannot represent step {step}"
                )

    # Conversions. Each raises InstrumentError with a reason code; none rounds silently.

    def price_to_ticks(self, price: Decimal | str | int) -> int:
        return _to_steps(self, price, self.tick_size, "PRICE_OFF_TICK", "price")

    def ticks_to_price(self, ticks: int) -> Decimal:
        return (self.tick_size * ticks).quantize(Decimal(1).scaleb(-self.price_precision))

    def qty_to_lots(self, quantity: Decimal | str | int) -> int:
        return _to_steps(self, quantity, self.lot_size, "QUANTITY_OFF_LOT", "quantity")

    def lots_to_qty(self, lots: int) -> Decimal:
        return (self.lot_size * lots).quantize(Decimal(1).scaleb(-self.size_precision))

    def notional(self, ticks: int, lots: int) -> Decimal:
        """Value of `lots` at `ticks` in the instrument's currency."""
        return self.ticks_to_price(ticks) * self.lots_to_qty(lots) * self.multiplier


# Exact arithmetic for grid checks: traps turn any rounding or overflow into an error instead of a
# silently wrong tick count (the default 28-digit context rounds 1e-999999999 to 0 and overflows on 1e30).
_EXACT = Context(prec=60, Emin=-999_999, Emax=999_999, traps=[Inexact, Rounded, InvalidOperation, Overflow, Underflow])
MAX_STEPS = 2**63 - 1  # prices and sizes travel as int64 on the wire and in the database


def _to_steps(instrument: Instrument, value: Decimal | str | int, step: Decimal, code: str, what: str) -> int:
    try:
        value = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InstrumentError(f"BAD_{what.upper()}", f"{instrument.symbol}: {what} {value!r} is not a number") from None
    if not value.is_finite():
        raise InstrumentError(f"BAD_{what.upper()}", f"{instrument.symbol}: {what} {value} is not finite")
    try:
        steps = _EXACT.divide(value, step)
        if steps != steps.to_integral_value(context=_EXACT):
            raise Inexact
    except ArithmeticError:
        raise InstrumentError(code, f"{instrument.symbol}: {what} {value} is not a multiple of {step}") from None
    if abs(steps) > MAX_STEPS:
        raise InstrumentError(f"BAD_{what.upper()}", f"{instrument.symbol}: {what} {value} is out of range")
    return int(steps)


class _InstrumentFile(msgspec.Struct, forbid_unknown_fields=True):
    instruments: list[Instrument]


class InstrumentRegistry:
    """The set of tradable instruments, keyed by symbol. Immutable after construction."""

    __slots__ = ("_by_symbol",)

    def __init__(self, instruments: list[Instrument] | tuple[Instrument, ...]) -> None:
        by_symbol: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.symbol in by_symbol:
                raise InstrumentError("INSTRUMENT_DUPLICATE", f"instrument {instrument.symbol} defined twice")
            by_symbol[instrument.symbol] = instrument
        self._by_symbol = by_symbol

    @classmethod
    def from_toml(cls, path: Path | str = DEFAULT_INSTRUMENTS_PATH) -> InstrumentRegistry:
        path = Path(path)
        try:
            parsed = msgspec.toml.decode(path.read_bytes(), type=_InstrumentFile)
        except FileNotFoundError:
            raise InstrumentError("INSTRUMENT_FILE_MISSING", f"instrument file {path} does not exist") from None
        except msgspec.ValidationError as exc:
            # msgspec names the failing path, e.g. "Expected `str`, got `int` - at `$.instruments[1].symbol`".
            raise InstrumentError("INSTRUMENT_FILE_INVALID", f"{path}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise InstrumentError("INSTRUMENT_FILE_INVALID", f"{path}: not valid TOML: {exc}") from None
        return cls(parsed.instruments)

    def get(self, symbol: str) -> Instrument:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise InstrumentError("UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}") from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __iter__(self):
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._by_symbol)
