"""The engine's risk limits as the desk edits them: field specs, canonical form, tighten-or-loosen, hierarchy checks.

Pure functions, no database: the limit services and the forms both use them. A limit set is a dict of
`RiskLimits` field name -> value (Decimal, int, or a tuple of symbols for `restricted_symbols`); absent or None
means "no limit at this scope". Stored in JSON with Decimals as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from engine.protocol import Codec, ProtocolError, RiskLimits, Scope, ScopeKind, SetLimits
from riskdesk.errors import DeskError


class LimitError(DeskError):
    """Bad limit input or a change that may not be made."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str  # "decimal" | "int" | "symbols"
    unit: str = ""
    # How the gate reads it: "lower" = a lower value is tighter; "higher" = a higher value is tighter.
    tighter: str = "lower"
    # Child scopes may not exceed their parents on this field (instrument <= strategy <= firm).
    hierarchical: bool = True
    utilisation: str = ""  # the RiskUtilisation figure this limit is measured against, if any


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("max_order_quantity", "Max order quantity", "decimal", "units"),
    FieldSpec("max_order_notional", "Max order notional", "decimal", "ccy"),
    FieldSpec("price_collar_pct", "Price collar", "decimal", "%"),
    FieldSpec("price_collar_ticks", "Price collar", "int", "ticks"),
    FieldSpec("max_position", "Max position (incl. working)", "decimal", "units", utilisation="position_quantity"),
    FieldSpec("max_gross_exposure", "Max gross exposure", "decimal", "ccy", utilisation="gross_exposure"),
    FieldSpec("max_net_exposure", "Max net exposure", "decimal", "ccy", utilisation="net_exposure"),
    FieldSpec("max_open_orders", "Max open orders", "int", "orders", utilisation="open_orders"),
    FieldSpec("max_orders_per_window", "Max orders per window", "int", "orders", utilisation="orders_in_window"),
    FieldSpec(
        "max_messages_per_window", "Max messages per window", "int", "messages", utilisation="messages_in_window"
    ),
    FieldSpec("rate_window_ns", "Rate window", "int", "ns", tighter="higher", hierarchical=False),
    FieldSpec("duplicate_window_ns", "Duplicate window", "int", "ns", tighter="higher", hierarchical=False),
    FieldSpec("max_daily_loss", "Max daily loss", "decimal", "ccy", utilisation="daily_pnl"),
    FieldSpec("restricted_symbols", "Restricted symbols", "symbols", tighter="more", hierarchical=False),
)
FIELD_BY_NAME = {spec.name: spec for spec in FIELDS}
RATE_FIELDS = ("max_orders_per_window", "max_messages_per_window")


def scope_of(kind: str, name: str) -> Scope:
    return Scope(kind=ScopeKind[kind.upper()], name="" if kind == "firm" else name)


def canonical(limits: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: only the fields that are set; Decimals as normalised strings; symbols as a sorted list."""
    out: dict[str, Any] = {}
    for spec in FIELDS:
        value = limits.get(spec.name)
        if value is None or value in ((), []):
            continue
        if spec.kind == "decimal":
            out[spec.name] = _decimal_text(Decimal(value))
        elif spec.kind == "int":
            out[spec.name] = int(value)
        else:
            out[spec.name] = sorted(set(value))
    return out


def _decimal_text(value: Decimal) -> str:
    # "5.0" and "5" are one limit: normalise, but never into exponent notation ("1E+1").
    text = format(value.normalize(), "f")
    return text


def parse(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON back into values (Decimals, ints, tuples)."""
    out: dict[str, Any] = {}
    for spec in FIELDS:
        value = stored.get(spec.name)
        if value is None:
            continue
        if spec.kind == "decimal":
            out[spec.name] = Decimal(str(value))
        elif spec.kind == "int":
            out[spec.name] = int(value)
        else:
            out[spec.name] = tuple(value)
    return out


def to_risk_limits(limits: dict[str, Any]) -> RiskLimits:
    values = parse(canonical(limits))
    return RiskLimits(**values)


def validate_for_engine(kind: str, name: str, limits: dict[str, Any], codec: Codec) -> RiskLimits:
    """Everything the engine would refuse, refused here first with the field that is wrong: the protocol's own
    checks (ranges, a rate limit without a window, symbols) and the instrument's lot grid for quantities."""
    if kind == "instrument" and limits.get("max_daily_loss") is not None:
        # The engine refuses it (RISK_UNSUPPORTED_LIMIT): the portfolio keeps no per-instrument daily P&L.
        raise LimitError(
            "LIMIT_UNSUPPORTED",
            "a daily loss limit is not supported at instrument scope (the engine keeps daily P&L per strategy "
            "and for the firm only)",
            field="max_daily_loss",
        )
    try:
        risk_limits = to_risk_limits(limits)
        scope = scope_of(kind, name)
        codec.check(SetLimits(command_id="check", operator="check", ts=0, scope=scope, limits=risk_limits))
    except ProtocolError as exc:
        field = next((spec.name for spec in FIELDS if spec.name in exc.reason), None)
        raise LimitError(f"LIMIT_{exc.code}", exc.reason, field=field) from None
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise LimitError("LIMIT_INVALID", str(exc)) from None
    return risk_limits


def _rate(limits: dict[str, Any], field: str) -> Fraction | None:
    count, window = limits.get(field), limits.get("rate_window_ns")
    if count is None or window is None:
        return None
    return Fraction(int(count), int(window))


def loosened_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The fields on which `new` lets through something `old` would deny. Removing a limit loosens it; adding one
    tightens; a rate limit is compared as a rate (count per window), so a longer window with the same count
    tightens."""
    old, new = parse(canonical(old)), parse(canonical(new))
    loosened: list[str] = []
    for spec in FIELDS:
        if spec.name == "rate_window_ns":
            continue  # judged through the rates it qualifies
        before, after = old.get(spec.name), new.get(spec.name)
        if spec.name in RATE_FIELDS:
            before_rate, after_rate = _rate(old, spec.name), _rate(new, spec.name)
            if before_rate is not None and (after_rate is None or after_rate > before_rate):
                loosened.append(spec.name)
            continue
        if before is None:
            continue
        if after is None:
            loosened.append(spec.name)
        elif spec.kind == "symbols":
            if set(before) - set(after):
                loosened.append(spec.name)
        elif (spec.tighter == "lower" and after > before) or (spec.tighter == "higher" and after < before):
            loosened.append(spec.name)
    return loosened


def hierarchy_errors(
    kind: str,
    name: str,
    limits: dict[str, Any],
    *,
    others: dict[tuple[str, str], dict[str, Any]],
    strategy_symbols: dict[str, str],
) -> list[LimitError]:
    """Where `limits` for (kind, name) would break instrument <= strategy <= firm against the limits in force in
    the other scopes (`others`, keyed by (kind, name)). An instrument's strategies are those trading its symbol."""
    mine = parse(canonical(limits))
    parents: list[tuple[str, str]] = []
    children: list[tuple[str, str]] = []
    if kind == "instrument":
        parents = [("firm", "")] + [("strategy", s) for s, sym in strategy_symbols.items() if sym == name]
    elif kind == "strategy":
        parents = [("firm", "")]
        symbol = strategy_symbols.get(name)
        children = [key for key in others if key[0] == "instrument" and key[1] == symbol]
    else:
        children = [key for key in others if key[0] in ("strategy", "instrument")]
    errors: list[LimitError] = []
    for spec in FIELDS:
        if not spec.hierarchical:
            continue
        for other_key, above in [(k, True) for k in parents] + [(k, False) for k in children]:
            other = others.get(other_key)
            if not other:
                continue
            other = parse(canonical(other))
            if spec.name in RATE_FIELDS:
                mine_value, other_value = _rate(mine, spec.name), _rate(other, spec.name)
            else:
                mine_value, other_value = mine.get(spec.name), other.get(spec.name)
            if mine_value is None or other_value is None:
                continue
            label = "firm" if other_key[0] == "firm" else f"{other_key[0]} {other_key[1]}"
            if above and mine_value > other_value:
                errors.append(
                    LimitError(
                        "LIMIT_ABOVE_PARENT",
                        f"{spec.label} {_show(spec, mine)} is above the {label} limit {_show(spec, other)}",
                        field=spec.name,
                    )
                )
            elif not above and mine_value < other_value:
                errors.append(
                    LimitError(
                        "LIMIT_BELOW_CHILD",
                        f"{spec.label} {_show(spec, mine)} is below the {label} limit {_show(spec, other)}; "
                        f"lower that one first",
                        field=spec.name,
                    )
                )
    return errors


def _show(spec: FieldSpec, limits: dict[str, Any]) -> str:
    if spec.name in RATE_FIELDS:
        return f"{limits[spec.name]} per {int(limits['rate_window_ns']) / 1e6:g} ms"
    return f"{limits[spec.name]}{'' if spec.unit in ('', 'ccy') else ' ' + spec.unit}"


def utilisation_percent(
    spec: FieldSpec, limit: Any, figures: dict[str, Any], *, lot_size: Decimal | None = None
) -> float | None:
    """How much of `limit` the engine's RiskUtilisation `figures` use, in percent (None if not measured), each
    figure against the limit in the limit's own unit: the worst-case position in instrument units
    (`position_quantity`, never `position`, which is in lots), exposures and P&L in money, orders and messages as
    counts in the scope's own rate window. The daily loss is used as far as the day's P&L is negative; net exposure
    and position count by magnitude.

    The position limit is measured against what the gate enforces: `max_position` rounded down to the lot grid of
    the symbol (`lot_size`), so the bar reaches exactly 100 % when the next order that grows the position would be
    denied. Every gate check denies at the limit (open orders, rates, daily loss) or beyond it (position,
    exposures), so at 100 % nothing more that adds risk passes."""
    if not spec.utilisation or limit is None:
        return None
    raw = figures.get(spec.utilisation)
    if raw is None:
        return None
    value = Decimal(str(raw))
    if spec.utilisation == "daily_pnl":
        value = max(Decimal(0), -value)
    value = abs(value)
    limit = Decimal(str(limit))
    if spec.utilisation == "position_quantity" and lot_size:
        limit = grid_limit(limit, lot_size)
    if limit <= 0:
        return 100.0 if value > 0 else 0.0
    return float(value / limit * 100)


def grid_limit(limit: Any, lot_size: Decimal) -> Decimal:
    """`limit` rounded down to the lot grid (what the gate compares a position with, in instrument units)."""
    return (Decimal(str(limit)) / lot_size).to_integral_value(rounding=ROUND_FLOOR) * lot_size
