"""Number formatting and the desk's sub-navigation for the trading templates."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from console.selectors import instruments
from trading.models import Strategy

register = template.Library()
MINUS = "\u2212"  # a real minus sign: a hyphen is easy to miss in a column of P&L


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@register.filter
def money(value) -> str:
    """2 decimals, thousands separated, minus sign: 1234.5 -> 1,234.50; -3 -> −3.00."""
    d = _decimal(value)
    if d is None:
        return "—"
    text = f"{abs(d):,.2f}"
    return f"{MINUS}{text}" if d < 0 and text.strip("0.,") else text


@register.filter
def qty(value) -> str:
    """A price or quantity as stored, without trailing zeros, thousands separated: 0.002000 -> 0.002."""
    d = _decimal(value)
    if d is None:
        return "—"
    d = d.normalize()
    text = f"{abs(d):,f}"
    return f"{MINUS}{text}" if d < 0 else text


@register.filter
def signclass(value) -> str:
    d = _decimal(value)
    if d is None or d == 0:
        return "zero"
    return "pos" if d > 0 else "neg"


@register.inclusion_tag("trading/_nav.html", takes_context=True)
def trading_nav(context, active: str = ""):
    user = context["request"].user
    return {
        "active": active,
        "symbols": instruments().symbols,
        "strategy_ids": list(Strategy.objects.order_by("strategy_id").values_list("strategy_id", flat=True)),
        "can_submit": user.has_perm("trading.submit_order"),
    }
