"""Forms of the risk desk: types and ranges here; consistency, concurrency and engine rules in the services."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from riskdesk.services import limit_rules
from riskdesk.services.triggers import ACTIONS, TRIGGER_FIELDS

NS_PER_MS = 1_000_000
MAX_DECIMAL = Decimal("1e18")  # the protocol's bound on a Decimal at the edge (|value| < 10**19)


def _ms_name(name: str) -> str:
    return name.removesuffix("_ns") + "_ms"


class LimitForm(forms.Form):
    """Every control of the engine's risk gate for one scope; an empty field means no limit at this scope.
    Windows are entered in milliseconds (the engine counts nanoseconds)."""

    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=500)
    # A datetime-local input sends a wall-clock time with no zone, and the server reads it in TIME_ZONE (UTC):
    # the label says so, or an officer east of Greenwich would set an override that ends hours late.
    expires_at = forms.DateTimeField(
        required=False,
        label="Override expires at (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Temporary override, in UTC (not your local time): the limits in force now come back then.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in limit_rules.FIELDS:
            label = f"{spec.label} ({spec.unit})" if spec.unit not in ("", "ns") else spec.label
            if spec.kind == "decimal":
                upper = Decimal(100) if spec.name == "price_collar_pct" else MAX_DECIMAL
                field = forms.DecimalField(required=False, min_value=Decimal(0), max_value=upper, label=label)
                self.fields[spec.name] = field
            elif spec.unit == "ns":
                self.fields[_ms_name(spec.name)] = forms.IntegerField(
                    required=False, min_value=1, max_value=9_000_000_000, label=f"{spec.label} (ms)"
                )
            elif spec.kind == "int":
                self.fields[spec.name] = forms.IntegerField(
                    required=False, min_value=1, max_value=2**63 - 1, label=label
                )
            else:
                self.fields[spec.name] = forms.CharField(
                    required=False, label=f"{spec.label} (comma-separated)", max_length=2000
                )

    @staticmethod
    def initial_from(limits: dict[str, Any]) -> dict[str, Any]:
        values = limit_rules.parse(limits)
        initial: dict[str, Any] = {}
        for spec in limit_rules.FIELDS:
            value = values.get(spec.name)
            if value is None:
                continue
            if spec.unit == "ns":
                initial[_ms_name(spec.name)] = value // NS_PER_MS
            elif spec.kind == "symbols":
                initial[spec.name] = ", ".join(value)
            else:
                initial[spec.name] = value
        return initial

    def clean_price_collar_pct(self) -> Decimal | None:
        value = self.cleaned_data.get("price_collar_pct")
        if value is not None and value <= 0:
            raise forms.ValidationError("A collar must be above 0 % (0 would deny every order).", code="range")
        return value

    def limits(self) -> dict[str, Any]:
        """The limits as the services take them (call after is_valid)."""
        data = self.cleaned_data
        out: dict[str, Any] = {}
        for spec in limit_rules.FIELDS:
            if spec.unit == "ns":
                value = data.get(_ms_name(spec.name))
                out[spec.name] = None if value is None else value * NS_PER_MS
            elif spec.kind == "symbols":
                raw = data.get(spec.name) or ""
                symbols = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
                out[spec.name] = symbols or None
            else:
                out[spec.name] = data.get(spec.name)
        return out

    def field_name(self, service_field: str | None) -> str | None:
        """The form field for a service error's field (windows are entered in ms)."""
        if service_field is None:
            return None
        if service_field in self.fields:
            return service_field
        ms = _ms_name(service_field)
        return ms if ms in self.fields else None


class ReviewForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=500)


class TradingStateForm(forms.Form):
    action = forms.ChoiceField(choices=[("halt", "Halt"), ("reduce", "Reduce only"), ("resume", "Resume")])
    scope = forms.CharField(max_length=80)
    reason = forms.CharField(max_length=512, widget=forms.Textarea(attrs={"rows": 2}))
    confirm = forms.BooleanField(required=False)


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class TriggerForm(forms.Form):
    """A scope's whole trigger set (empty disables a trigger); `base_version` is the newest version the officer saw."""

    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=500)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, kind, label in TRIGGER_FIELDS:
            if kind == "decimal":
                upper = Decimal(1) if name == "reject_rate" else MAX_DECIMAL
                self.fields[name] = forms.DecimalField(
                    required=False, min_value=Decimal(0), max_value=upper, label=label
                )
            elif kind == "int":
                self.fields[name] = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label=label)
            else:
                self.fields[name] = forms.ChoiceField(
                    required=False, choices=[("", "—")] + [(a, a) for a in ACTIONS], label=label
                )

    def config(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name, _kind, _label in TRIGGER_FIELDS}
