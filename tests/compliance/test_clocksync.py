"""Clock offsets against the database server's clock, the engine's, and the host's NTP status; alerts past the
threshold."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from django.urls import reverse

from compliance.clocksync import Measurement, measure_clocks, measure_console, measure_engine, measure_ntp, record
from compliance.models import ClockSource, ClockSyncSample
from tests.engine_process import engine_process  # noqa: F401  (fixture)


def test_the_console_offset_is_measured_against_the_database_clock(db):
    measurement = measure_console()

    assert measurement.source == ClockSource.CONSOLE
    assert measurement.offset_ns is not None
    assert measurement.round_trip_ns > 0
    # Console and database share this host's clock: far inside CAT's 50 ms.
    assert abs(measurement.offset_ns) < 50_000_000


def test_the_engine_offset_is_measured_from_heartbeat_round_trips(engine_process, settings, db):  # noqa: F811
    engine_process().apply_settings(settings)

    measurement = measure_engine(console_offset_ns=1_000)

    assert measurement.offset_ns is not None, measurement.detail
    assert measurement.round_trip_ns > 0
    assert "vs the console's clock" in measurement.detail


def test_an_unreachable_engine_is_stored_as_unmeasured_not_as_zero(db, settings, tmp_path):
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "none"

    sample = record(measure_engine(console_offset_ns=0))

    assert sample.offset_ns is None
    assert sample.within_threshold is None
    assert "engine not reachable" in sample.detail


@pytest.fixture
def fake_chronyc(tmp_path, monkeypatch):
    """chronyc is outside the project: a stand-in on PATH that prints what chronyc tracking prints."""

    def install(offset_line: str) -> None:
        script = Path(tmp_path) / "chronyc"
        script.write_text(f"#!/bin/sh\necho 'Reference ID    : C0A80001 (ntp.example)'\necho '{offset_line}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    return install


def test_chrony_tracking_gives_the_system_clock_offset(fake_chronyc):
    fake_chronyc("System time     : 0.000123456 seconds slow of NTP time")

    measurement = measure_ntp()

    assert measurement.offset_ns == -123_456
    assert "chronyc" in measurement.detail


def test_an_offset_past_the_rts25_threshold_alerts_compliance_and_risk(db, settings):
    from riskdesk.models import Alert

    settings.COMPLIANCE_CLOCK_THRESHOLD_US = 100  # MiFID II RTS 25, HFT

    inside = record(Measurement(ClockSource.ENGINE, 90_000, 1_000, "test"))
    outside = record(Measurement(ClockSource.ENGINE, -500_000, 1_000, "test"))

    assert inside.within_threshold is True
    assert outside.within_threshold is False
    alert = Alert.objects.get(kind="clock_offset")
    assert alert.severity == "critical"
    assert set(alert.audience) == {"compliance_officer", "risk_officer"}


def test_all_three_sources_are_stored_and_shown_on_the_page(client, compliance_officer, settings, tmp_path):
    settings.ENGINE_CURVE_KEYS_DIR = tmp_path / "none"

    measure_clocks()
    client.force_login(compliance_officer)
    page = client.get(reverse("compliance:clock")).content.decode()

    assert set(ClockSyncSample.objects.values_list("source", flat=True)) == {"console", "engine", "ntp"}
    assert "Console vs database server" in page and "50000 µs" in page
