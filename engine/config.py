"""The engine's typed configuration (any thread: immutable; issue 5 loads it from a file).

Every field has a default that makes a working single-account engine, so tests and the backtester build one with
a couple of keyword arguments. Bad values fail at construction with the name of the field.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from engine.protocol import Scope
from engine.trading_state import TriggerConfig


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One strategy instance: `name` is a key of `engine.strategies.registry`, `params` wire values."""

    strategy_id: Annotated[str, Meta(min_length=1, max_length=64)]
    name: str = "avellaneda_stoikov"
    symbol: Annotated[str, Meta(min_length=1, max_length=32)]
    params: dict[str, Any] = {}
    autostart: bool = False


class ScopeTriggers(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The automatic kill-switch triggers of one scope (daily loss, drawdown, reject rate, dead-man heartbeat),
    applied with `TradingStates.configure_triggers` when the engine starts."""

    scope: Scope
    triggers: TriggerConfig


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    engine_id: Annotated[str, Meta(min_length=1, max_length=64)] = "engine-1"
    account: Annotated[str, Meta(min_length=1, max_length=64)] = "MM1"
    strategies: tuple[StrategyConfig, ...] = ()
    # Write a snapshot after this many journal records (0 = only when `Engine.snapshot()` is called).
    snapshot_every_records: Annotated[int, Meta(ge=0)] = 0
    keep_snapshots: Annotated[int, Meta(ge=1)] = 3
    # Recent outbound events kept in memory to answer RequestReplay without reading the journal.
    replay_ring_size: Annotated[int, Meta(ge=0)] = 100_000
    # Replies remembered for idempotency (a repeated command_id gets the first reply); oldest forgotten first.
    reply_cache_size: Annotated[int, Meta(ge=1)] = 100_000
    publish_top_of_book: bool = True
    # On timer ticks: PnlUpdated per strategy and for the firm, and an EngineHeartbeat at most every interval.
    publish_pnl_on_timer: bool = True
    heartbeat_interval_ns: Annotated[int, Meta(ge=0)] = 1_000_000_000
    day_start_offset_ns: int = 0
    # Commission per fill in basis points of notional (negative = rebate).
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(0)
    # Order-book snapshots the feed asks for after a gap are requested through the gateway.
    feed_max_buffer: Annotated[int, Meta(ge=1)] = 10_000
    # Whether the market data shows our own resting orders. True for a venue's feed (the simulated venue, a live
    # exchange): strategies are then told which levels are ours so they do not quote off their own orders. False
    # only for a recorded market our simulated orders never entered (the backtester over a capture), where
    # subtracting them would remove liquidity that was someone else's.
    market_data_includes_own_orders: bool = True
    # Market data replayed from a file its reader already validated (the backtester): in-sequence book deltas and
    # prints skip the feed's per-level checks. Never for a live or simulated venue's feed.
    market_data_trusted: bool = False
    # Automatic trading-state triggers per scope, configured at start-up (issue 5's config file carries them).
    triggers: tuple[ScopeTriggers, ...] = ()
    # MarketTrade per public trade the venue prints.
    publish_market_trades: bool = True
    # BookDepth (10 levels) at most this often per symbol, and only when the book changed (0 = never). Engine time:
    # a change inside the interval is sent by the first book update or timer tick after it ends.
    depth_interval_ns: Annotated[int, Meta(ge=0)] = 100_000_000
    # RiskUtilisation on the timer at most this often (0 = never; StateSnapshot carries it regardless).
    utilisation_interval_ns: Annotated[int, Meta(ge=0)] = 1_000_000_000
    # How long a QueryVenueOrders waits for the venue's answers before VenueStatusComplete(timed_out=True), when the
    # command does not say (engine time, checked on timer ticks).
    venue_query_timeout_ns: Annotated[int, Meta(ge=1)] = 2_000_000_000
