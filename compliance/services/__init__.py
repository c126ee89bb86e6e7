"""Compliance use cases. `record_audit_event` stays importable from here: every app audits through it."""

from compliance.services.audit import record_audit_event, run_chain_verification

__all__ = ["record_audit_event", "run_chain_verification"]
