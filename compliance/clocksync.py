"""Clock-sync status: how far the console's and the engine's clocks are from the reference, and the host's NTP.

The reference is the database server's clock (one clock every process can reach). Offsets are measured the NTP
way: read the remote clock once between two local readings and compare it with their midpoint; half the round trip
bounds the error, so the best of a few samples (the shortest round trip) is kept.

- console: `SELECT clock_timestamp()` against the console's time.time_ns() midpoint.
- engine: a Heartbeat command's `CommandAccepted.ts` (the engine's clock) against the console's midpoint, then
  moved onto the database reference by adding the console's own offset.
- ntp: `chronyc tracking` ("System time : x seconds fast/slow of NTP time"), else `timedatectl show` (synchronised
  or not, no offset), when the host has them.

CAT (Rule 613(d)(1) / CAT NMS Plan 6.8) allows 50 ms of drift from NIST for Industry Members; MiFID II RTS 25
allows 100 us for HFT. The threshold is COMPLIANCE_CLOCK_THRESHOLD_US (default 50,000); an alert fires past it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from compliance.models import ClockSource, ClockSyncSample
from console.engine_client import EngineClient, EngineClientError
from engine.protocol import CommandAccepted

SAMPLES = 5
_CHRONY_RE = re.compile(r"System time\s*:\s*([0-9.]+) seconds (fast|slow) of NTP time")


@dataclass(frozen=True)
class Measurement:
    source: str
    offset_ns: int | None
    round_trip_ns: int | None
    detail: str


def threshold_ns() -> int:
    return int(getattr(settings, "COMPLIANCE_CLOCK_THRESHOLD_US", 50_000)) * 1000


def _best(samples: list[tuple[int, int]]) -> tuple[int, int]:
    """(offset, round trip) of the sample with the shortest round trip."""
    return min(samples, key=lambda sample: sample[1])


def measure_console() -> Measurement:
    samples = []
    with connection.cursor() as cursor:
        for _ in range(SAMPLES):
            before = time.time_ns()
            cursor.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
            after = time.time_ns()
            server_ns = cursor.fetchone()[0] * 1000
            samples.append(((before + after) // 2 - server_ns, after - before))
    offset, rtt = _best(samples)
    return Measurement(ClockSource.CONSOLE, offset, rtt, "console clock minus the database server's clock_timestamp()")


def measure_engine(console_offset_ns: int | None) -> Measurement:
    try:
        client = EngineClient.from_settings(retries=1)
    except EngineClientError as exc:
        return Measurement(ClockSource.ENGINE, None, None, f"engine not reachable: {exc}")
    samples = []
    try:
        for _ in range(SAMPLES):
            before = time.time_ns()
            reply = client.heartbeat(operator="compliance")
            after = time.time_ns()
            if type(reply) is CommandAccepted:
                samples.append((reply.ts - (before + after) // 2, after - before))
    except EngineClientError as exc:
        return Measurement(ClockSource.ENGINE, None, None, f"engine not reachable: {exc}")
    finally:
        client.close()
    if not samples:
        return Measurement(ClockSource.ENGINE, None, None, "the engine refused every heartbeat")
    vs_console, rtt = _best(samples)
    if console_offset_ns is None:
        return Measurement(ClockSource.ENGINE, None, rtt, f"engine {vs_console} ns vs console; no database reference")
    return Measurement(
        ClockSource.ENGINE,
        vs_console + console_offset_ns,
        rtt,
        f"engine clock minus the database server's ({vs_console} ns vs the console's clock)",
    )


def measure_ntp() -> Measurement:
    chronyc = shutil.which("chronyc")
    if chronyc:
        output = _run([chronyc, "tracking"])
        match = _CHRONY_RE.search(output or "")
        if match:
            seconds = float(match[1]) * (1 if match[2] == "fast" else -1)
            return Measurement(ClockSource.NTP, int(seconds * 1e9), None, "chronyc tracking: system clock vs NTP")
    timedatectl = shutil.which("timedatectl")
    if timedatectl:
        output = _run([timedatectl, "show", "--property=NTPSynchronized", "--value"])
        if output is not None and output.strip() in ("yes", "no"):
            synced = output.strip() == "yes"
            return Measurement(
                ClockSource.NTP, None, None, f"timedatectl: NTP {'synchronised' if synced else 'NOT synchronised'}"
            )
    return Measurement(ClockSource.NTP, None, None, "no chronyc or timedatectl on this host")


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def record(measurement: Measurement) -> ClockSyncSample:
    limit = threshold_ns()
    within = None if measurement.offset_ns is None else abs(measurement.offset_ns) <= limit
    sample = ClockSyncSample.objects.create(
        source=measurement.source,
        offset_ns=measurement.offset_ns,
        round_trip_ns=measurement.round_trip_ns,
        threshold_ns=limit,
        within_threshold=within,
        detail=measurement.detail,
    )
    if within is False:
        _alert(sample)
    return sample


def _alert(sample: ClockSyncSample) -> None:
    try:
        from riskdesk.services.alerts import raise_alert
    except ImportError:
        return
    raise_alert(
        kind="clock_offset",
        severity="critical" if abs(sample.offset_ns) > 2 * sample.threshold_ns else "warning",
        title=f"{sample.get_source_display()}: clock offset {sample.offset_ns / 1e6:.3f} ms past "
        f"{sample.threshold_ns / 1e6:g} ms",
        detail={"source": sample.source, "offset_ns": sample.offset_ns, "threshold_ns": sample.threshold_ns},
        source="compliance.clocksync",
        dedupe_key=f"clock:{sample.source}",
        audience=("compliance_officer", "risk_officer"),
    )


def measure_clocks() -> list[ClockSyncSample]:
    """Measure and store all three; the beat task's one call."""
    console = measure_console()
    return [record(console), record(measure_engine(console.offset_ns)), record(measure_ntp())]
