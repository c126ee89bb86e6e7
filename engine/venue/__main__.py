"""`python -m engine.venue`: the simulated venue as its own process (main thread: start-up and signals; the venue
and QuickFIX threads do the work, see engine.fix.acceptor).

    python -m engine.venue --config config/venue.toml
    python -m engine.venue --port 9878 --pub tcp://127.0.0.1:9879 --snapshot tcp://127.0.0.1:9880 \\
        --symbols BTCUSDT --seed 1 --intensity 50 --var-dir var/venue
    python -m engine.venue --config config/venue.toml --replay binance --replay-file PATH

Flags override the config file. A bad value stops start-up with the name of the key. Prints one line
"VENUE READY ..." on stdout once the acceptor listens; SIGTERM / SIGINT log every session out (cancel-on-disconnect)
and exit.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.errors import EngineError
from engine.fix.settings import FixSessionConfig
from engine.instruments import DEFAULT_INSTRUMENTS_PATH, InstrumentRegistry
from engine.venue import FlowConfig, PoissonFlow, ReplayMarket, Venue, records_from_binance


class FlowSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    seed: int = 1
    intensity: Annotated[float, Meta(gt=0)] = 50.0
    cancel_rate: Annotated[float, Meta(ge=0)] = 0.2
    volatility: Annotated[float, Meta(ge=0)] = 0.0001
    initial_prices: dict[str, Decimal] = {}  # symbol -> price; required per symbol when the flow is on


class ReplaySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    source: Literal["", "binance"] = ""
    file: str = ""


class VenueProcessConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbols: Annotated[tuple[str, ...], Meta(min_length=1)] = ("BTCUSDT",)
    instruments: str = str(DEFAULT_INSTRUMENTS_PATH)
    var_dir: str = "var/venue"
    pub: str = "tcp://127.0.0.1:9879"
    snapshot: str = "tcp://127.0.0.1:9880"
    fix: FixSessionConfig = FixSessionConfig(
        role="acceptor", sender_comp_id="VENUE", target_comp_ids=("ENGINE",), port=9878
    )
    flow: FlowSection = FlowSection()
    replay: ReplaySection = ReplaySection()


def load_config(path: str | None) -> VenueProcessConfig:
    if path is None:
        return VenueProcessConfig()
    try:
        return msgspec.toml.decode(Path(path).read_bytes(), type=VenueProcessConfig)
    except FileNotFoundError:
        raise EngineError("VENUE_CONFIG_MISSING", f"config file {path} does not exist") from None
    except msgspec.ValidationError as exc:  # names the key: "... - at `$.fix.port`"
        raise EngineError("VENUE_CONFIG_INVALID", f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise EngineError("VENUE_CONFIG_INVALID", f"{path}: not valid TOML: {exc}") from None


def apply_flags(config: VenueProcessConfig, args: argparse.Namespace) -> VenueProcessConfig:
    fix_changes = {
        k: v
        for k, v in (("port", args.port), ("sender_comp_id", args.comp_id), ("file_log", args.file_log))
        if v is not None
    }
    if args.targets:
        fix_changes["target_comp_ids"] = tuple(args.targets.split(","))
    flow_changes = {k: v for k, v in (("seed", args.seed), ("intensity", args.intensity)) if v is not None}
    if args.no_flow:
        flow_changes["enabled"] = False
    changes = {
        k: v for k, v in (("pub", args.pub), ("snapshot", args.snapshot), ("var_dir", args.var_dir)) if v is not None
    }
    if args.instruments:
        changes["instruments"] = args.instruments
    if args.symbols:
        changes["symbols"] = tuple(args.symbols.split(","))
    if args.replay is not None:
        changes["replay"] = ReplaySection(source=args.replay, file=args.replay_file or config.replay.file)
        flow_changes["enabled"] = False
    merged = msgspec.structs.replace(
        config,
        fix=msgspec.structs.replace(config.fix, **fix_changes),
        flow=msgspec.structs.replace(config.flow, **flow_changes),
        **changes,
    )
    try:
        # `structs.replace` does not validate: a round trip through builtins runs every constraint on the flags too.
        return msgspec.convert(msgspec.to_builtins(merged), VenueProcessConfig)
    except msgspec.ValidationError as exc:
        raise EngineError("VENUE_CONFIG_INVALID", f"command line: {exc}") from None


def build_drivers(config: VenueProcessConfig, venue: Venue, instruments: InstrumentRegistry, clock) -> list:
    drivers: list = []
    if config.replay.source == "binance":
        from engine.marketdata.paths import shared_data_dir

        path = Path(config.replay.file or shared_data_dir() / "hftbacktest/examples/usdm/btcusdt_20240808.gz")
        symbol = config.symbols[0]
        records = records_from_binance(path, instruments.get(symbol))
        first = next(records, None)
        if first is None:
            raise EngineError("VENUE_REPLAY_EMPTY", f"{path} holds no records")
        # Recorded time runs at wall-clock speed from start-up: the replay sees the recording's own clock.
        offset = clock() - first.ts

        def replay_clock() -> int:
            return clock() - offset

        def chained():
            yield first
            yield from records

        drivers.append(ReplayMarket(chained(), symbol=symbol, send=venue.handle, clock=replay_clock))
    elif config.flow.enabled:
        for i, symbol in enumerate(config.symbols):
            price = config.flow.initial_prices.get(symbol)
            if price is None:
                raise EngineError("VENUE_CONFIG_INVALID", f"flow.initial_prices.{symbol} is required with the flow on")
            flow_config = FlowConfig(
                symbol=symbol,
                initial_price=instruments.get(symbol).price_to_ticks(price),
                intensity=config.flow.intensity,
                cancel_rate=config.flow.cancel_rate,
                volatility=config.flow.volatility,
            )
            drivers.append(PoissonFlow(flow_config, send=venue.handle, clock=clock, seed=config.flow.seed + i))
    return drivers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.venue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config")
    parser.add_argument("--port", type=int)
    parser.add_argument("--comp-id")
    parser.add_argument("--targets", help="comma-separated counterparty comp ids")
    parser.add_argument("--pub")
    parser.add_argument("--snapshot")
    parser.add_argument("--symbols", help="comma-separated")
    parser.add_argument("--instruments")
    parser.add_argument("--var-dir")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--intensity", type=float)
    parser.add_argument("--no-flow", action="store_true")
    parser.add_argument("--replay", choices=["binance"])
    parser.add_argument("--replay-file")
    parser.add_argument("--file-log", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s venue %(levelname)s %(message)s", stream=sys.stderr)

    from engine.fix.acceptor import VenueService  # imports quickfix and zmq: only when actually starting

    try:
        config = apply_flags(load_config(args.config), args)
        instruments = InstrumentRegistry.from_toml(config.instruments)
        for symbol in config.symbols:
            instruments.get(symbol)
        clock = time.time_ns
        venue = Venue(config.symbols, clock=clock)
        service = VenueService(
            venue=venue,
            instruments=instruments,
            fix_config=config.fix,
            var_dir=config.var_dir,
            pub_endpoint=config.pub,
            snapshot_endpoint=config.snapshot,
            drivers=build_drivers(config, venue, instruments, clock),
            clock=clock,
        )
    except EngineError as exc:
        print(f"venue: {exc.code}: {exc.reason}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    print(
        f"VENUE READY fix={config.fix.port} pub={config.pub} snapshot={config.snapshot} boot={service.boot}",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
