"""Forms of the trading desk. They check what the console can know (types, the instrument grid, a reason); the
engine checks the rest (risk, the strategy's parameter schema) and its reason code is shown on the same form."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from console.selectors import instruments
from engine.protocol import OrderType, ScopeKind, Side, TimeInForce

MANUAL_STRATEGY = "manual"  # the strategy id of orders typed by a trader (the engine accepts any id for these)
REASON_HELP = "Why — recorded in the audit trail with your name."


def _enum_choices(enum) -> list[tuple[str, str]]:
    return [(member.name, member.name.replace("_", " ").title()) for member in enum]


def _off_grid(value: Decimal, step: Decimal) -> bool:
    return value % step != 0


class OrderTicketForm(forms.Form):
    strategy_id = forms.ChoiceField(label="Strategy")
    symbol = forms.ChoiceField(label="Instrument")
    side = forms.ChoiceField(choices=_enum_choices(Side), widget=forms.RadioSelect, initial="BUY")
    order_type = forms.ChoiceField(label="Type", choices=_enum_choices(OrderType), initial="LIMIT")
    time_in_force = forms.ChoiceField(
        label="Time in force",
        choices=[("GTC", "GTC — until cancelled"), ("IOC", "IOC — fill now or cancel"), ("FOK", "FOK — all or none"),
                 ("DAY", "DAY — until the session ends")],
        initial="GTC",
    )  # fmt: skip
    quantity = forms.DecimalField(max_digits=30, decimal_places=12, min_value=Decimal(0))
    price = forms.DecimalField(max_digits=30, decimal_places=12, min_value=Decimal(0), required=False)
    reason = forms.CharField(max_length=500, required=False, help_text=REASON_HELP)

    def __init__(self, *args, strategy_ids: list[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["strategy_id"].choices = [(MANUAL_STRATEGY, "manual (trader)")] + [(s, s) for s in strategy_ids]
        self.fields["symbol"].choices = [(s, s) for s in instruments().symbols]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        symbol, quantity, price = data.get("symbol"), data.get("quantity"), data.get("price")
        if symbol is None or quantity is None:
            return data
        instrument = instruments().get(symbol)
        if quantity <= 0:
            self.add_error("quantity", forms.ValidationError("must be positive", code="NON_POSITIVE_QUANTITY"))
        elif _off_grid(quantity, instrument.lot_size):
            self.add_error(
                "quantity",
                forms.ValidationError(f"not a multiple of the lot size {instrument.lot_size}", code="QUANTITY_OFF_LOT"),
            )
        if data.get("order_type") == "LIMIT":
            if price is None or price <= 0:
                self.add_error("price", forms.ValidationError("a limit order needs a price", code="NON_POSITIVE_PRICE"))
            elif _off_grid(price, instrument.tick_size):
                self.add_error(
                    "price",
                    forms.ValidationError(
                        f"not a multiple of the tick size {instrument.tick_size}", code="PRICE_OFF_TICK"
                    ),
                )
        else:
            data["price"] = None  # a market order carries no price
        return data

    def command_kwargs(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "strategy_id": d["strategy_id"],
            "symbol": d["symbol"],
            "side": Side[d["side"]],
            "order_type": OrderType[d["order_type"]],
            "time_in_force": TimeInForce[d["time_in_force"]],
            "quantity": d["quantity"].normalize() if d["quantity"] else d["quantity"],
            "price": d["price"],
            "reason": d["reason"] or "manual order",
        }


class CancelOrderForm(forms.Form):
    client_order_id = forms.CharField(max_length=64)
    symbol = forms.CharField(max_length=32)
    reason = forms.CharField(max_length=500, required=False)


class CancelAllForm(forms.Form):
    """Cancel every working order of one strategy or one instrument. `confirm` must repeat the scope's name: a
    misclick on the wrong row must not clear a book."""

    scope_kind = forms.ChoiceField(
        choices=[("STRATEGY", "Strategy"), ("INSTRUMENT", "Instrument")], label="Cancel all orders of"
    )
    scope_name = forms.CharField(max_length=64, label="Strategy id or symbol")
    confirm = forms.CharField(max_length=64, label="Type the name again to confirm")
    reason = forms.CharField(max_length=500, help_text=REASON_HELP)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, name = data.get("scope_kind"), data.get("scope_name")
        if kind == "INSTRUMENT" and name and name not in instruments():
            self.add_error("scope_name", forms.ValidationError(f"no instrument {name!r}", code="UNKNOWN_SYMBOL"))
        if name and data.get("confirm") != name:
            self.add_error(
                "confirm", forms.ValidationError("does not match the name above", code="CONFIRMATION_MISMATCH")
            )
        return data

    @property
    def kind(self) -> ScopeKind:
        return ScopeKind[self.cleaned_data["scope_kind"]]


class StrategyActionForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text=REASON_HELP)
    cancel_orders = forms.BooleanField(required=False, initial=True, label="Cancel its working orders")


# The engine's code for a compare-and-set on the parameter version that lost (engine/strategies/params.py); the
# console refuses with the same code when it can tell before sending.
PARAM_VERSION_CONFLICT = "STRATEGY_PARAM_VERSION_CONFLICT"


def _version_conflict(base_version: int, current_version: int) -> forms.ValidationError:
    return forms.ValidationError(
        f"{PARAM_VERSION_CONFLICT}: this page shows version {base_version} but version {current_version} is in "
        "force: reload the page and check the history before changing the parameters",
        code=PARAM_VERSION_CONFLICT,
    )


class RollbackForm(forms.Form):
    """Roll back from the version the page showed (`base_version`): an operator who has not seen a newer version
    cannot undo it without looking. Checked here against the version the console knows of, for an early message,
    and by the engine itself (compare-and-set), which also catches a change made in the same instant."""

    version = forms.IntegerField(min_value=1)
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = forms.CharField(max_length=500, help_text=REASON_HELP)

    def __init__(self, *args, current_version: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.current_version = current_version

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        base = data.get("base_version")
        if base is not None and base != self.current_version:
            raise _version_conflict(base, self.current_version)
        return data


# --- strategy parameters ------------------------------------------------------------------------------------------

_ENGINE_PATH = re.compile(r"at `\$\.(\w+)`")


class StrategyParamsForm(forms.Form):
    """One field per parameter the strategy has now, typed by its current value (the engine's schema is the
    authority: it checks ranges and cross-field rules, and `add_engine_error` puts its verdict on the field it
    names). Only changed parameters are sent, so a version records what the operator meant to change."""

    reason = forms.CharField(max_length=500, help_text=REASON_HELP)
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, data=None, *args, params: dict[str, Any], known_version: int = 0, **kwargs) -> None:
        # The set of parameters can grow between rendering and posting (the engine reports its full schema once it
        # publishes a version), so only the parameters the operator was shown are read back: `shown` lists them.
        # The others are filled with their current values, so a form shown again (with an error) is complete.
        self.shown = set(data.getlist("shown")) if data is not None else set(params)
        if data is not None:
            data = data.copy()
            for name, value in params.items():
                if name not in self.shown and not isinstance(value, bool):
                    data[f"p_{name}"] = str(value)
                elif name not in self.shown and value:
                    data[f"p_{name}"] = "on"
        super().__init__(data, *args, **kwargs)
        self.current = params
        # The version in force as far as the console knows (0: not heard from the engine yet).
        self.known_version = known_version
        for name, value in sorted(params.items()):
            self.fields[f"p_{name}"] = self._field_for(name, value)
        self.order_fields([f"p_{name}" for name in sorted(params)] + ["reason", "base_version"])

    @staticmethod
    def _field_for(name: str, value: Any) -> forms.Field:
        label = name.replace("_", " ")
        if isinstance(value, bool):
            return forms.BooleanField(label=label, required=False, initial=value)
        if isinstance(value, int):
            return forms.IntegerField(label=label, initial=value, required=False)
        if isinstance(value, float | Decimal) or _is_decimal(value):
            initial = Decimal(str(value))
            return forms.DecimalField(label=label, initial=initial, max_digits=30, decimal_places=15, required=False)
        return forms.CharField(label=label, initial=value, max_length=64, required=False)

    def param_fields(self):
        return [self[name] for name in self.fields if name.startswith("p_")]

    def changes(self) -> dict[str, Decimal | int | str | bool]:
        out: dict[str, Decimal | int | str | bool] = {}
        for key, value in self.cleaned_data.items():
            name = key[2:]
            if not key.startswith("p_") or name not in self.shown:
                continue
            current = self.current[name]
            if isinstance(value, Decimal):
                if Decimal(str(current)) != value:
                    out[name] = value.normalize()
            elif value != current:
                out[name] = value
        return out

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # base_version 0 means "no compare-and-set": the engine then takes the change whatever version is in
        # force. Only a page rendered before the console knew any version may send that; once it knows one, a 0
        # is a hand-made post skipping the stale-version check (the page always fills in the version it shows).
        if data.get("base_version") == 0 and self.known_version > 0:
            raise _version_conflict(0, self.known_version)
        for name in self.shown & self.current.keys():
            if data.get(f"p_{name}") is None and not isinstance(self.current[name], bool):
                self.add_error(f"p_{name}", forms.ValidationError("a value is needed", code="required"))
        if not self.errors and not self.changes():
            raise forms.ValidationError("no parameter changed", code="STRATEGY_PARAM_EMPTY")
        return data

    def add_engine_error(self, code: str, reason: str) -> None:
        """Show the engine's refusal on the parameter it names (msgspec's `at $.name`, or a name in the text)."""
        match = _ENGINE_PATH.search(reason)
        named = match.group(1) if match else next((n for n in self.changes() if re.search(rf"\b{n}\b", reason)), None)
        error = forms.ValidationError(f"{code}: {reason}", code=code)
        if named and f"p_{named}" in self.fields:
            self.add_error(f"p_{named}", error)
        else:
            self.add_error(None, error)


def _is_decimal(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False
