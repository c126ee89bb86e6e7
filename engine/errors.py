"""The engine's one error base class (any thread).

Every error the engine raises for bad input carries a machine-readable reason code
(`PRICE_OFF_TICK`, `UNKNOWN_SYMBOL`, ...) and a human sentence. Risk denials are not
errors: they are `OrderDenied` events with a reason code.
"""

from __future__ import annotations


class EngineError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
