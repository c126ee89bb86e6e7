"""`python -m engine --var-dir D` keeps all of the engine's state under D/engine, whatever the config file says."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
instruments_file = "{root}/config/instruments.toml"
[engine]
engine_id = "var-dir-test"
[endpoints]
commands = "ipc://{tmp}/cmd"
events = "ipc://{tmp}/ev"
[security]
curve = false
keys_dir = "{tmp}/config-keys"
[journal]
path = "{tmp}/config-journal.bin"
snapshot_dir = "{tmp}/config-snapshots"
[venue]
kind = "inprocess"
"""


def test_the_engine_writes_its_journal_under_the_var_dir_it_is_given_and_not_where_the_config_says(tmp_path):
    (tmp_path / "engine.toml").write_text(CONFIG.format(root=ROOT, tmp=tmp_path))
    var_dir = tmp_path / "var"
    with open(tmp_path / "engine.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--config", str(tmp_path / "engine.toml"), "--var-dir", str(var_dir)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 60
        while not (var_dir / "engine" / "journal.bin").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "engine.log").read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    assert (var_dir / "engine" / "journal.bin").exists()
    assert not (tmp_path / "config-journal.bin").exists()
