"""Where the recorded market data lives (any thread: pure function)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The recorded-data folder: $SHARED_DATA_DIR, else `shared/data` beside the repository checkout."""
    override = os.environ.get("SHARED_DATA_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"
