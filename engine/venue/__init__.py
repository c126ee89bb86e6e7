"""Simulated exchange: matching core, in-process venue, background order flow and file replay (venue thread).

`MatchingCore` is one symbol's book and matching rules on plain ints; `Venue` wraps cores in the protocol's
`Venue*` commands and `ExecutionReport` / `BookDeltas` / `TradePrinted` / `BookSnapshot` events; `PoissonFlow`
supplies seeded background participants; `ReplayMarket` turns a recorded file into resting liquidity and trades.
"""

from engine.venue.flow import FlowConfig, FlowError, PoissonFlow
from engine.venue.matching import MatchingCore
from engine.venue.orders import Reason, VenueError, VenueOrder
from engine.venue.replay import BookReset, LevelUpdate, ReplayMarket, TopOfBook, TradeRecord, records_from_binance
from engine.venue.venue import Venue

__all__ = [
    "BookReset",
    "FlowConfig",
    "FlowError",
    "LevelUpdate",
    "MatchingCore",
    "PoissonFlow",
    "Reason",
    "ReplayMarket",
    "TopOfBook",
    "TradeRecord",
    "Venue",
    "VenueError",
    "VenueOrder",
    "records_from_binance",
]
