"""The risk desk's one error type: a stable `code`, a reason for the officer, and the form field at fault."""

from __future__ import annotations


class DeskError(Exception):
    """Bad input or an action that may not be taken; nothing was changed."""

    def __init__(self, code: str, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.field = field
