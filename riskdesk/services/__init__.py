"""Risk desk use cases: limits, kill switches, triggers, alerts, VaR runs, the event watcher."""
