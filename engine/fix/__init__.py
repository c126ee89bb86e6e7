"""FIX 4.4 over QuickFIX: the venue's acceptor (`acceptor`), the engine's gateway (`initiator`), the message mapping
(`convert`) and session settings (`settings`). See docs/fix.md."""
