"""Input of the compliance pages: typed, validated, with the reason for a refusal next to the field."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

from compliance.models import AuditAction, ExportFormat, ExportKind

# datetime-local inputs only accept the ISO form with a "T"; Django would render a space.
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S")


class _Period(forms.Form):
    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            raise forms.ValidationError("The period must end after it starts.", code="EXPORT_BAD_PERIOD")
        return data


class AuditSearchForm(_Period):
    start = forms.DateTimeField(required=False, widget=DATETIME, label="From (UTC)")
    end = forms.DateTimeField(required=False, widget=DATETIME, label="To (UTC)")
    user = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(required=False, choices=[("", "All actions"), *AuditAction.choices])
    strategy_id = forms.CharField(required=False, max_length=64, label="Strategy")
    symbol = forms.CharField(required=False, max_length=32, label="Instrument")


class ExportForm(_Period):
    kind = forms.ChoiceField(choices=ExportKind.choices, label="Report")
    format = forms.ChoiceField(choices=ExportFormat.choices)
    start = forms.DateTimeField(widget=DATETIME, label="From (UTC)")
    end = forms.DateTimeField(widget=DATETIME, label="To (UTC)")
    user = forms.CharField(required=False, max_length=150, help_text="Audit trail only")
    action = forms.ChoiceField(required=False, choices=[("", "All actions"), *AuditAction.choices])
    strategy_id = forms.CharField(required=False, max_length=64, label="Strategy")
    symbol = forms.CharField(required=False, max_length=32, label="Instrument")

    @classmethod
    def today(cls) -> ExportForm:
        midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(initial={"start": midnight, "end": midnight + timedelta(days=1)})

    def filters(self) -> dict[str, str]:
        return {key: self.cleaned_data[key] for key in ("user", "action", "strategy_id", "symbol")}


class ResolveBreakForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
