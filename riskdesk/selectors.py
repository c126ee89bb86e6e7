"""Reads for the risk desk pages: the engine's view (one StateSnapshot) next to the database's, per scope."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from console.selectors import instrument_universe
from riskdesk.models import (
    LimitScope,
    LimitStatus,
    LimitVersion,
    ScopeKind,
    TriggerSetting,
    TriggerStatus,
    scope_slug,
)
from riskdesk.services import limit_rules, triggers
from riskdesk.services.engine import scope_key, snapshot_limits, state_snapshot
from riskdesk.services.scopes import scope_choices


@dataclass
class EngineView:
    available: bool
    engine_id: str = ""
    seq: int = 0
    states: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    limits: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    utilisation: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    working_orders: int = 0
    positions: list[dict[str, Any]] = field(default_factory=list)
    triggers: dict[tuple[str, str], Any] = field(default_factory=dict)  # (kind, name) -> TriggerSettings


def engine_view(*, operator: str) -> EngineView:
    snapshot = state_snapshot(operator=operator)
    if snapshot is None:
        return EngineView(available=False)
    lots = {i.symbol: i.lot_size for i in instrument_universe()}
    view = EngineView(available=True, engine_id=snapshot.engine_id, seq=snapshot.seq)
    for entry in snapshot.trading_states:
        view.states[scope_key(entry.scope)] = {
            "state": entry.state.name,
            "operator": entry.operator,
            "reason": entry.reason,
        }
    view.limits = snapshot_limits(snapshot)
    view.triggers = triggers.snapshot_triggers(snapshot)
    for entry in snapshot.utilisation:
        # `position` is in lots; `position_quantity` is the same figure in instrument units, as max_position is.
        figures = msgspec.to_builtins(entry)
        figures.pop("scope", None)
        view.utilisation[scope_key(entry.scope)] = figures
    view.working_orders = len(snapshot.orders)
    for position in snapshot.positions:
        lot = lots.get(position.symbol)
        view.positions.append(
            {
                "strategy_id": position.strategy_id,
                "symbol": position.symbol,
                "quantity": position.quantity * lot if lot is not None else position.quantity,
                "avg_price": position.avg_price,
                "realized": position.realized_pnl,
                "unrealized": position.unrealized_pnl,
            }
        )
    return view


@dataclass
class ExposureRow:
    label: str
    slug: str
    figures: dict[str, Any]
    loss_limit: Decimal | None

    @property
    def loss_used(self) -> float | None:
        return limit_rules.utilisation_percent(
            limit_rules.FIELD_BY_NAME["max_daily_loss"], self.loss_limit, self.figures
        )


def exposure_rows(panels: list[ScopePanel]) -> list[ExposureRow]:
    """Gross, net and open-order exposure and P&L against the loss limit, per scope the engine measures."""
    rows = []
    for panel in panels:
        if panel.utilisation is None:
            continue
        loss = next((r.engine_value for r in panel.rows if r.spec.name == "max_daily_loss"), None)
        rows.append(ExposureRow(panel.label, panel.slug, panel.utilisation, loss))
    return rows


@dataclass
class LimitRow:
    spec: limit_rules.FieldSpec
    db_value: Any
    engine_value: Any
    percent: float | None
    # max_position per symbol on the symbol's lot grid (what the gate enforces), for the page's live bars.
    grid_limits: dict[str, str] = field(default_factory=dict)

    @property
    def grid_limits_json(self) -> str:
        return json.dumps(self.grid_limits, sort_keys=True)

    @property
    def differs(self) -> bool:
        return _same(self.db_value) != _same(self.engine_value)

    @property
    def limit_in_force(self) -> Any:
        """The value the engine enforces (the database's when the engine did not answer)."""
        return self.engine_value if self.engine_value is not None else self.db_value

    @property
    def level(self) -> str:
        if self.percent is None:
            return ""
        return "breach" if self.percent >= 100 else "warn" if self.percent >= 80 else "ok"

    @property
    def bar_width(self) -> float:
        return min(100.0, self.percent or 0.0)


def _same(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return value


@dataclass
class ScopePanel:
    kind: str
    name: str
    label: str
    slug: str
    state: dict[str, str]
    version: int
    in_force: LimitVersion | None
    pending: LimitVersion | None
    unacknowledged: LimitVersion | None
    rows: list[LimitRow]
    utilisation: dict[str, Any] | None
    engine_only: bool

    @property
    def drift(self) -> bool:
        return any(row.differs for row in self.rows)


def scope_panels(view: EngineView) -> list[ScopePanel]:
    """One panel per scope: state, the limits in force in the database and in the engine, their utilisation."""
    scopes = {(s.kind, s.name): s for s in LimitScope.objects.select_related("in_force")}
    pending = {
        (v.scope.kind, v.scope.name): v
        for v in LimitVersion.objects.select_related("scope", "proposed_by").filter(status=LimitStatus.PENDING_APPROVAL)
    }
    waiting = {
        (v.scope.kind, v.scope.name): v
        for v in LimitVersion.objects.select_related("scope").filter(status=LimitStatus.APPROVED)
    }
    lots = {i.symbol: i.lot_size for i in instrument_universe()}
    panels = []
    for kind, name, label in scope_choices():
        key = (kind, name)
        row = scopes.get(key)
        db_limits = limit_rules.parse(row.in_force.limits) if row and row.in_force else {}
        engine_limits = limit_rules.parse(view.limits.get(key, {}))
        figures = view.utilisation.get(key)
        rows = []
        for spec in limit_rules.FIELDS:
            db_value, engine_value = db_limits.get(spec.name), engine_limits.get(spec.name)
            if db_value is None and engine_value is None:
                continue
            shown = engine_value if engine_value is not None else db_value
            lot = lots.get(figures.get("position_symbol", "")) if figures else None
            percent = limit_rules.utilisation_percent(spec, shown, figures, lot_size=lot) if figures else None
            grid = {}
            if spec.utilisation == "position_quantity" and shown is not None:
                symbols = [name] if kind == ScopeKind.INSTRUMENT else list(lots)
                grid = {sym: str(limit_rules.grid_limit(shown, lots[sym])) for sym in symbols if sym in lots}
            rows.append(LimitRow(spec, db_value, engine_value if view.available else db_value, percent, grid))
        panels.append(
            ScopePanel(
                kind=kind,
                name=name,
                label=label,
                slug=scope_slug(kind, name),
                state=view.states.get(key, {"state": "ACTIVE" if view.available else "unknown"}),
                version=row.version if row else 0,
                in_force=row.in_force if row else None,
                pending=pending.get(key),
                unacknowledged=waiting.get(key),
                rows=rows,
                utilisation=figures,
                engine_only=bool(engine_limits) and not db_limits,
            )
        )
    return panels


def limit_history(kind: str, name: str) -> list[LimitVersion]:
    return list(
        LimitVersion.objects.select_related("proposed_by", "approved_by", "scope")
        .filter(scope__kind=kind, scope__name=name)
        .order_by("-version")
    )


def pending_approvals() -> list[LimitVersion]:
    return list(
        LimitVersion.objects.select_related("scope", "proposed_by", "scope__in_force")
        .filter(status=LimitStatus.PENDING_APPROVAL)
        .order_by("proposed_at")
    )


def pending_trigger_approvals() -> list[TriggerSetting]:
    return list(
        TriggerSetting.objects.select_related("changed_by")
        .filter(status=TriggerStatus.PENDING_APPROVAL)
        .order_by("changed_at")
    )


@dataclass
class TriggerRow:
    name: str
    label: str
    db_value: Any
    engine_value: Any

    @property
    def differs(self) -> bool:
        return self.db_value != self.engine_value


@dataclass
class TriggerPanel:
    kind: str
    name: str
    label: str
    slug: str
    newest: int
    in_force: TriggerSetting | None
    unacknowledged: TriggerSetting | None
    refused: TriggerSetting | None
    rows: list[TriggerRow]
    drift: bool


def trigger_panels(view: EngineView) -> list[TriggerPanel]:
    """Per scope with triggers on either side: the version in force in the database next to the engine's own
    (StateSnapshot.triggers; config/engine.toml's for scopes the desk never set), field by field."""
    by_scope: dict[tuple[str, str], list[TriggerSetting]] = {}
    for setting in TriggerSetting.objects.select_related("changed_by").order_by("-version"):
        by_scope.setdefault((setting.scope_kind, setting.scope_name), []).append(setting)
    empty = triggers.TriggerSettings()
    panels = []
    for kind, name, label in scope_choices():
        key = (kind, name)
        versions = by_scope.get(key, [])
        in_force = next((s for s in versions if s.status == TriggerStatus.IN_FORCE), None)
        engine_settings = view.triggers.get(key)
        if not versions and (engine_settings is None or engine_settings.empty):
            continue
        db_shown = triggers.shown(triggers.to_settings(in_force.config)) if in_force else {}
        engine_shown = triggers.shown(engine_settings or empty) if view.available else db_shown
        rows = [
            TriggerRow(field_name, field_label, db_shown.get(field_name), engine_shown.get(field_name))
            for field_name, _kind, field_label in triggers.TRIGGER_FIELDS
            if field_name in db_shown or field_name in engine_shown
        ]
        newest = versions[0] if versions else None
        panels.append(
            TriggerPanel(
                kind=kind,
                name=name,
                label=label,
                slug=scope_slug(kind, name),
                newest=newest.version if newest else 0,
                in_force=in_force,
                # Not only the newest: a version waiting for a second officer may sit above one sent, unanswered.
                unacknowledged=next((s for s in versions if s.status == TriggerStatus.APPROVED), None),
                refused=newest if newest and newest.status == TriggerStatus.ENGINE_REJECTED else None,
                rows=rows,
                drift=db_shown != engine_shown,
            )
        )
    return panels


def trigger_history(kind: str, name: str) -> list[TriggerSetting]:
    return list(
        TriggerSetting.objects.select_related("changed_by", "approved_by")
        .filter(scope_kind=kind, scope_name=name)
        .order_by("-version")
    )
