"""`manage.py engine_bridge`: persist the engine's event stream and publish live updates (docs/bridge.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from engine.protocol import InstrumentRegistry
from trading.bridge.service import Bridge, BridgeOptions, BridgeStats
from trading.bridge.writer import conninfo_from_settings


class Command(BaseCommand):
    help = (
        "Subscribe to the engine's event stream, write it to PostgreSQL in batches (exactly once, from the "
        "checkpoint) and publish conflated live updates. SIGTERM flushes and exits 0."
    )

    def add_arguments(self, parser):
        parser.add_argument("--flush-ms", type=int, default=50, help="commit a batch at most this long after it began")
        parser.add_argument("--max-batch", type=int, default=20_000, help="events per transaction at most")
        parser.add_argument("--no-live", action="store_true", help="do not publish live updates (benchmarks)")
        parser.add_argument(
            "--stats-file", type=Path, default=None, help="on exit, write counters and the event-to-commit lag here"
        )

    def handle(self, *args, flush_ms, max_batch, no_live, stats_file, **options):
        stats = BridgeStats(lag_histogram=stats_file is not None)
        bridge = Bridge(
            conninfo=conninfo_from_settings(settings.DATABASES["default"]),
            command_endpoint=settings.ENGINE_COMMAND_ENDPOINT,
            event_endpoint=settings.ENGINE_EVENT_ENDPOINT,
            keys_dir=Path(settings.ENGINE_CURVE_KEYS_DIR),
            instruments=InstrumentRegistry.from_toml(settings.ENGINE_INSTRUMENTS_FILE),
            timeout_ms=settings.ENGINE_TIMEOUT_MS,
            options=BridgeOptions(flush_interval_s=flush_ms / 1000, max_batch=max_batch, publish_live=not no_live),
            stats=stats,
        )
        bridge.install_signal_handlers()
        status = bridge.run()
        if stats_file is not None:
            stats_file.write_text(json.dumps(stats.as_dict()))
        sys.exit(status)
