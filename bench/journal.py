"""Journal appends per second, without fsync (policy NEVER: one os.write per record) and with fsync per record.

Run from the repo root: .venv/bin/python bench/journal.py [--records N] [--fsync-records N] [--runs 3]
The record is a typical inbound message: a three-level BookDeltas. Per-append latency percentiles come from an
HDR histogram; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.enums import Side
from engine.instruments import Instrument, InstrumentRegistry
from engine.journal import FsyncPolicy, Journal, RecordKind, scan
from engine.protocol import BookDeltas, Codec


def _codec() -> Codec:
    instrument = Instrument(
        symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), price_precision=2, size_precision=3
    )
    return Codec(InstrumentRegistry([instrument]))


def run(records: int, policy: FsyncPolicy, directory: Path) -> tuple[float, HdrHistogram]:
    codec = _codec()
    messages = [
        BookDeltas(
            symbol="BTC-USD",
            seq=i + 1,
            ts=i,
            deltas=((Side.BUY, 5_000_000 + i % 7, 100 + i % 13), (Side.SELL, 5_000_010, i % 5), (Side.BUY, 4, 1)),
        )
        for i in range(records)
    ]
    path = directory / f"bench-{policy.name}.journal"
    path.unlink(missing_ok=True)
    journal = Journal(path, codec, policy=policy)
    hist = HdrHistogram(1, 10_000_000_000, 3)
    clock = time.perf_counter_ns
    append = journal.append
    kind = RecordKind.MARKET_DATA
    start = clock()
    for i, msg in enumerate(messages):
        t0 = clock()
        append(kind, i, msg)
        hist.record_value(max(1, clock() - t0))
    elapsed = clock() - start
    journal.close()
    assert scan(path).last_seq == records
    path.unlink()
    return records / (elapsed / 1e9), hist


def _pcts(hist: HdrHistogram) -> str:
    return ", ".join(f"p{p}={hist.get_value_at_percentile(p) / 1000:.1f}us" for p in (50, 99, 99.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--fsync-records", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        plain, synced = [], []
        for i in range(args.runs):
            rate, hist = run(args.records, FsyncPolicy.NEVER, directory)
            plain.append(rate)
            print(f"run {i + 1}: no fsync      {rate:>12,.0f} appends/s  {_pcts(hist)}")
            rate, hist = run(args.fsync_records, FsyncPolicy.EVERY_RECORD, directory)
            synced.append(rate)
            print(f"run {i + 1}: fsync/record  {rate:>12,.0f} appends/s  {_pcts(hist)}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plain_median, synced_median = statistics.median(plain), statistics.median(synced)
    print(f"median of {args.runs}: no fsync {plain_median:,.0f}/s, fsync {synced_median:,.0f}/s")
    print(f"max RSS {rss_mb:.1f} MB; fsync speed depends on the disk under {args.dir or tempfile.gettempdir()}")
    print(
        json.dumps(
            {
                "journal_appends_per_s": round(statistics.median(plain)),
                "journal_appends_fsync_per_s": round(statistics.median(synced)),
            }
        )
    )


if __name__ == "__main__":
    main()
