"""Celery beat entries of the riskdesk app, merged into CELERY_BEAT_SCHEDULE by console.settings.base.

Plain data only: settings import this module before Django is set up.
"""

BEAT: dict[str, dict] = {
    # Alerts must reach the officers within 5 s (RTS 6 Art. 16): the watcher reads the engine every second.
    "riskdesk-scan-engine-events": {"task": "riskdesk.tasks.scan_engine_events", "schedule": 1.0},
    "riskdesk-check-engine-heartbeat": {"task": "riskdesk.tasks.check_engine_heartbeat", "schedule": 5.0},
    "riskdesk-revert-expired-overrides": {"task": "riskdesk.tasks.revert_expired_overrides", "schedule": 5.0},
    "riskdesk-resend-unacknowledged-limits": {"task": "riskdesk.tasks.resend_unacknowledged_limits", "schedule": 5.0},
    "riskdesk-resend-unacknowledged-triggers": {
        "task": "riskdesk.tasks.resend_unacknowledged_triggers",
        "schedule": 5.0,
    },
    "riskdesk-compute-var": {"task": "riskdesk.tasks.compute_var", "schedule": 300.0},
}
