"""Read-only admin pages for the trading tables.

Everything here is written by the engine bridge or synced from the engine's config files, so the admin never
edits: an edit would silently diverge from the engine (the system of truth for live state) or from the files.
The big time-series tables (ticks, trades, order events, fills) have their desk pages and blotters instead.
"""

from django.contrib import admin

from trading.models import (
    Account,
    BridgeCheckpoint,
    DeadLetter,
    Instrument,
    Order,
    Position,
    RiskLimitVersion,
    Strategy,
    StrategyParamVersion,
    TradingStateChange,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    # The order blotter has 100 K rows a day: no exact total on every changelist page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("trading.view_trading_desk")


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "description", "currency", "tick_size", "lot_size", "multiplier", "active")
    list_filter = ("active", "currency")
    search_fields = ("symbol", "description")


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "name")


@admin.register(Strategy)
class StrategyAdmin(ReadOnlyAdmin):
    list_display = ("strategy_id", "name", "symbol", "account", "state", "params_version", "updated_at")
    list_filter = ("state",)


@admin.register(StrategyParamVersion)
class StrategyParamVersionAdmin(ReadOnlyAdmin):
    list_display = ("strategy_id", "version", "operator", "rolled_back_to", "ts")
    list_filter = ("strategy_id",)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "client_order_id", "strategy_id", "symbol", "side", "price", "quantity", "status")
    list_filter = ("status", "side", "symbol")
    search_fields = ("=client_order_id",)


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ("strategy_id", "symbol", "quantity", "avg_price", "realized_pnl", "unrealized_pnl", "fees")


@admin.register(RiskLimitVersion)
class RiskLimitVersionAdmin(ReadOnlyAdmin):
    list_display = ("ts", "scope_kind", "scope_name", "operator", "command_id")
    list_filter = ("scope_kind",)


@admin.register(TradingStateChange)
class TradingStateChangeAdmin(ReadOnlyAdmin):
    list_display = ("ts", "scope_kind", "scope_name", "previous", "state", "operator", "code")
    list_filter = ("state", "scope_kind")


@admin.register(BridgeCheckpoint)
class BridgeCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("engine_id", "last_seq", "updated_at")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "engine_id", "seq", "reason_code", "reason")
    list_filter = ("reason_code",)
