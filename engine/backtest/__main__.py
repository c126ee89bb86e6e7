"""`python -m engine.backtest`: run a strategy over recorded data or the simulated venue and print the report.

Examples:
    python -m engine.backtest --data binance --strategy avellaneda --param gamma=0.001 --json report.json
    python -m engine.backtest --venue-seed 7 --duration 60s --latency-ms 2
"""

from __future__ import annotations

import argparse
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from engine.backtest import BacktestConfig, binance_file, format_report, load_binance, run_recorded, run_venue
from engine.instruments import Instrument, InstrumentRegistry

_ALIASES = {"avellaneda": "avellaneda_stoikov", "as": "avellaneda_stoikov"}
MS = 1_000_000

# Defaults sized for BTCUSDT at 0.1 tick: sigma ~20 ticks/sqrt(s), a spread of a few ticks, 1-lot quotes.
BINANCE_PARAMS = {
    "gamma": Decimal("0.001"),
    "k": Decimal("0.3"),
    "sigma": Decimal("20"),
    "horizon_s": Decimal("1"),
    "order_size": 1,
    "max_inventory": 10,
    "requote_threshold_ticks": 1,
}
VENUE_PARAMS = {
    "gamma": Decimal("0.05"),
    "k": Decimal("1.5"),
    "sigma": Decimal("2"),
    "horizon_s": Decimal("1"),
    "order_size": 2,
    "max_inventory": 20,
    "requote_threshold_ticks": 1,
}


def _duration(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 60s, 500ms, 5m)")
    value, unit = Decimal(match[1]), match[2] or "s"
    return int(value * {"ms": MS, "s": 1_000 * MS, "m": 60_000 * MS, "h": 3_600_000 * MS}[unit])


def _param(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if raw.lower() in ("true", "false"):
        return name, raw.lower() == "true"
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return name, raw
    return name, int(number) if number == number.to_integral_value() and "." not in raw else number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.backtest", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", choices=["binance"], help="recorded data set from ../shared/data")
    source.add_argument("--venue-seed", type=int, help="simulated venue with seeded background flow")
    parser.add_argument("--file", type=Path, help="recorded file (default: the shared Binance BTCUSDT capture)")
    parser.add_argument("--duration", type=_duration, default=_duration("60s"), help="simulated venue run length")
    parser.add_argument("--strategy", default="avellaneda")
    parser.add_argument("--param", type=_param, action="append", default=[], help="strategy parameter NAME=VALUE")
    parser.add_argument("--latency-ms", type=Decimal, default=Decimal(5), help="order entry latency, one way")
    parser.add_argument("--response-latency-ms", type=Decimal, default=None, help="default: --latency-ms")
    parser.add_argument("--md-latency-ms", type=Decimal, default=Decimal(5), help="market data latency")
    parser.add_argument("--timer-ms", type=int, default=1000, help="engine timer period (0: none)")
    parser.add_argument("--cancel-model", choices=["proportional", "behind"], default="proportional")
    parser.add_argument("--max-events", type=int, default=None, help="stop the recorded data after N events")
    parser.add_argument("--maker-fee-bps", type=Decimal, default=Decimal(0))
    parser.add_argument("--taker-fee-bps", type=Decimal, default=Decimal(0))
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    strategy = _ALIASES.get(args.strategy, args.strategy)
    defaults = BINANCE_PARAMS if args.data else VENUE_PARAMS
    params = {**defaults, **dict(args.param)} if strategy == "avellaneda_stoikov" else dict(args.param)
    response = args.response_latency_ms if args.response_latency_ms is not None else args.latency_ms
    config = BacktestConfig(
        strategy=strategy,
        params=params,
        entry_latency_ns=int(args.latency_ms * MS),
        response_latency_ns=int(response * MS),
        md_latency_ns=int(args.md_latency_ms * MS),
        timer_ns=args.timer_ms * MS,
        cancel_model=args.cancel_model,
        maker_fee_bps=args.maker_fee_bps,
        taker_fee_bps=args.taker_fee_bps,
    )
    if args.data:
        instruments = InstrumentRegistry.from_toml()
        symbol = "BTCUSDT"
        events = load_binance(args.file or binance_file(), instruments.get(symbol), max_events=args.max_events)
        report = run_recorded(events, instruments, symbol, config)
    else:
        symbol = "SIM-1"
        instruments = InstrumentRegistry(
            [
                Instrument(
                    symbol=symbol,
                    tick_size=Decimal("0.01"),
                    lot_size=Decimal("0.001"),
                    price_precision=2,
                    size_precision=3,
                )
            ]
        )
        report = run_venue(
            seed=args.venue_seed, duration_ns=args.duration, instruments=instruments, symbol=symbol, config=config
        )
    print(format_report(report))
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
