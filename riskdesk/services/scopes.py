"""The scopes the desk can act on: the firm, the configured strategies, the configured instruments."""

from __future__ import annotations

from console.selectors import instrument_universe
from riskdesk.models import ScopeKind, scope_label
from riskdesk.services.limit_rules import LimitError
from trading.models import Strategy


def strategy_symbols() -> dict[str, str]:
    """strategy id -> the symbol it trades (the trading app's strategy table, synced from the engine)."""
    return dict(Strategy.objects.values_list("strategy_id", "symbol"))


def instrument_symbols() -> list[str]:
    return [instrument.symbol for instrument in instrument_universe()]


def scope_choices() -> list[tuple[str, str, str]]:
    """(kind, name, label) of every scope, firm first."""
    scopes = [(ScopeKind.FIRM.value, "")]
    scopes += [(ScopeKind.STRATEGY.value, sid) for sid in sorted(strategy_symbols())]
    scopes += [(ScopeKind.INSTRUMENT.value, sym) for sym in instrument_symbols()]
    return [(kind, name, scope_label(kind, name)) for kind, name in scopes]


def validate_scope(kind: str, name: str) -> None:
    """Raise LimitError(SCOPE_UNKNOWN) for a scope the engine does not have."""
    if kind == ScopeKind.FIRM:
        if name:
            raise LimitError("SCOPE_UNKNOWN", "the firm scope has no name", field="scope")
        return
    if kind == ScopeKind.STRATEGY:
        known = strategy_symbols()
    elif kind == ScopeKind.INSTRUMENT:
        known = instrument_symbols()
    else:
        raise LimitError("SCOPE_UNKNOWN", f"unknown scope kind {kind!r}", field="scope")
    if name not in known:
        raise LimitError("SCOPE_UNKNOWN", f"no {kind} {name!r}", field="scope")


def parse_scope(value: str) -> tuple[str, str]:
    """'firm', 'strategy:as-btc', 'instrument:BTCUSDT' -> (kind, name), validated."""
    kind, _, name = (value or "").partition(":")
    validate_scope(kind, name)
    return kind, name
