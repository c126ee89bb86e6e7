"""Every compliance beat entry reaches a task the worker knows."""

from __future__ import annotations

from compliance.schedule import BEAT


def test_every_compliance_beat_entry_names_a_registered_task(settings):
    from console.celery import app

    app.loader.import_default_modules()

    assert BEAT, "the compliance app schedules its checks"
    for name, entry in BEAT.items():
        assert settings.CELERY_BEAT_SCHEDULE[name] == entry
        assert entry["task"] in app.tasks, name
