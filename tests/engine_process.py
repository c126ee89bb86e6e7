"""A real `python -m engine` process for tests, reusable by every test package.

`EngineProcess` writes a config file (strategies, limits, triggers, background flow, engine knobs) into a short
temporary directory (ipc socket paths are limited to ~100 bytes), creates the CURVE key pairs the console uses,
and starts, stops (SIGTERM), kills (SIGKILL), pauses and restarts the process on the *same* journal, so a test can
crash the engine and watch it recover. `client()` / `subscriber()` give the console's own `EngineClient` and
`EventSubscriber` for it; `env()` and `apply_settings()` point subprocesses (daphne, Celery, the bridge) or the
test's Django settings at it.

    from tests.engine_process import EngineProcess, engine_process  # noqa: F401  (the fixture)

    def test_something(engine_process):
        engine = engine_process(strategies=[AS_BTC], limits=[("firm", {"max_open_orders": 50})])
        client = engine.client()
        reply = client.request(engine.command(SubmitOrder, strategy_id="manual", ...))

Waits are upper bounds only (the machine is shared and slow): nothing here asserts how long anything took.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTRUMENTS_FILE = ROOT / "config" / "instruments.toml"
WAIT_S = 60.0

# The demo strategy of config/engine.toml, stopped until a test starts it (its quotes would make every count in a
# scripted session depend on timing).
AS_BTC = {
    "strategy_id": "as-btc",
    "name": "avellaneda_stoikov",
    "symbol": "BTCUSDT",
    "autostart": False,
    "params": {"gamma": 0.05, "k": 1.5, "sigma": 2.0, "horizon_s": 60.0, "order_size": 2, "max_inventory": 20},
}

# Background flow of the in-process venue: a live BTCUSDT book near 65,000.0 (ticks of 0.1) with trades.
BTC_FLOW = {
    "symbol": "BTCUSDT",
    "initial_price": 650000,
    "intensity": 40.0,
    "market_share": 0.1,
    "size_mean": 20.0,
    "size_max": 200,
    "seed": 3,
}


def toml_value(value: Any) -> str:
    """One TOML value: strings quoted, Decimals as strings (the engine refuses floats for money), inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table(name: str, values: Mapping[str, Any], *, array: bool = False) -> str:
    header = f"[[{name}]]" if array else f"[{name}]"
    return "\n".join([header, *(f"{k} = {toml_value(v)}" for k, v in values.items())]) + "\n"


class EngineProcess:
    """One engine process and its directory (config, keys, journal, snapshots, log).

    `limits` entries are (scope, limits) with scope "firm", "strategy:<id>" or "instrument:<symbol>" and limits as
    in config/engine.toml (money and quantities as Decimal or str); `triggers` likewise. `engine` holds extra
    `[engine]` keys (engine.config.EngineConfig fields), `timers` the `[timers]` keys. `instruments_file` is the
    engine's registry (clients built here use it too; `env()` hands it to subprocesses).
    """

    def __init__(
        self,
        *,
        engine_id: str = "test-engine",
        strategies: Iterable[Mapping[str, Any]] = (),
        limits: Iterable[tuple[str, Mapping[str, Any]]] = (),
        triggers: Iterable[tuple[str, Mapping[str, Any]]] = (),
        flow: Iterable[Mapping[str, Any]] = (BTC_FLOW,),
        engine: Mapping[str, Any] | None = None,
        timers: Mapping[str, Any] | None = None,
        journal: Mapping[str, Any] | None = None,
        instruments_file: Path = INSTRUMENTS_FILE,
        extra: str = "",
    ) -> None:
        self.engine_id = engine_id
        self.dir = Path(tempfile.mkdtemp(prefix="eng", dir="/tmp"))
        self.keys_dir = self.dir / "keys"
        self.journal_path = self.dir / "journal.bin"
        self.config = self.dir / "engine.toml"
        self.log = self.dir / "engine.log"
        self.command_endpoint = f"ipc://{self.dir}/cmd"
        self.event_endpoint = f"ipc://{self.dir}/ev"
        self.instruments_file = Path(instruments_file)
        self.proc: subprocess.Popen | None = None
        self._clients: list[Any] = []
        from engine.server import curve

        curve.generate_keys(self.keys_dir)
        self.config.write_text(
            self._config_text(
                strategies=list(strategies),
                limits=list(limits),
                triggers=list(triggers),
                flow=list(flow),
                engine=dict(engine or {}),
                timers={"tick_ms": 50, **(timers or {})},
                journal={"fsync": "batch", **(journal or {})},
                extra=extra,
            )
        )

    def _config_text(self, *, strategies, limits, triggers, flow, engine, timers, journal, extra) -> str:
        parts = [f"instruments_file = {toml_value(str(self.instruments_file))}\n"]
        parts.append(_table("engine", {"engine_id": self.engine_id, "account": "MM1", **engine}))
        parts += [_table("strategies", s, array=True) for s in strategies]
        parts += [_table("limits", {"scope": scope, "limits": dict(values)}, array=True) for scope, values in limits]
        parts += [
            _table("triggers", {"scope": scope, "triggers": dict(values)}, array=True) for scope, values in triggers
        ]
        parts.append(_table("endpoints", {"commands": self.command_endpoint, "events": self.event_endpoint}))
        parts.append(_table("security", {"curve": True, "keys_dir": str(self.keys_dir)}))
        paths = {"path": str(self.journal_path), "snapshot_dir": str(self.dir / "snapshots")}
        parts.append(_table("journal", {**paths, **journal}))
        parts.append(_table("timers", timers))
        parts.append(_table("venue", {"kind": "inprocess"}))
        parts += [_table("venue.flow", f, array=True) for f in flow]
        parts.append(extra)
        return "\n".join(parts)

    # --- the process --------------------------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> EngineProcess:
        """Start the process (again, on the same journal after a stop or kill); by default wait until it answers."""
        assert self.proc is None or self.proc.poll() is not None, "the engine is already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--config", str(self.config)], cwd=ROOT, stdout=log, stderr=log
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = WAIT_S) -> Any:
        """The engine's StateSnapshot, once it answers (the first one may take a while on a loaded machine)."""
        from engine.protocol import RequestStateSnapshot

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}:\n{self.log_text()}")
            # A fresh client per attempt: an unanswered DEALER would otherwise get the late reply to the last one.
            client = self.client(timeout_ms=1000, retries=1, track=False)
            try:
                return client.request(self.command(RequestStateSnapshot))
            except Exception:  # EngineUnavailable while it starts
                continue
            finally:
                client.close()
        raise AssertionError(f"engine did not answer within {timeout} s:\n{self.log_text()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = WAIT_S) -> int:
        """SIGTERM and wait: the engine fsyncs its journal and exits 0."""
        return self.kill(signal.SIGTERM, timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = WAIT_S) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process would not act on SIGTERM
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def restart(self, *, sig: int = signal.SIGKILL, wait: bool = True) -> EngineProcess:
        """Kill (SIGKILL by default: a crash) and start again on the same journal: the engine recovers from it."""
        self.kill(sig)
        return self.start(wait=wait)

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cleanup(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- talking to it ------------------------------------------------------------------------------------------

    def codec(self) -> Any:
        from engine.protocol import Codec, InstrumentRegistry

        return Codec(InstrumentRegistry.from_toml(self.instruments_file))

    def client(self, *, timeout_ms: int = 2000, retries: int = 15, track: bool = True) -> Any:
        """The console's `EngineClient` on this engine (closed by `cleanup`). One per thread."""
        from console.engine_client import EngineClient

        client = EngineClient(
            command_endpoint=self.command_endpoint,
            keys_dir=self.keys_dir,
            codec=self.codec(),
            timeout_ms=timeout_ms,
            retries=retries,
        )
        if track:
            self._clients.append(client)
        return client

    def subscriber(self, client: Any | None = None, *, last_seq: int = 0, operator: str = "tester") -> Any:
        """The console's gap-filling `EventSubscriber` on this engine's `all` topic (closed by `cleanup`)."""
        from console.engine_client import EventSubscriber

        subscriber = EventSubscriber(
            event_endpoint=self.event_endpoint,
            keys_dir=self.keys_dir,
            client=client or self.client(),
            operator=operator,
            last_seq=last_seq,
        )
        self._clients.append(subscriber)
        return subscriber

    @staticmethod
    def command(message: type, *, operator: str = "tester", **fields: Any) -> Any:
        """A console command with a fresh command id, the operator and the wall-clock time filled in."""
        return message(command_id=uuid.uuid4().hex, operator=operator, ts=time.time_ns(), **fields)

    def snapshot(self) -> Any:
        from engine.protocol import RequestStateSnapshot

        client = self.client(track=False)
        try:
            return client.request(self.command(RequestStateSnapshot))
        finally:
            client.close()

    def events(self, from_seq: int = 1) -> list:
        """Every event the engine has published from `from_seq` (its replay: ring, else journal)."""
        client = self.client(track=False, timeout_ms=10_000)
        try:
            return client.replay(from_seq, operator="tester")
        finally:
            client.close()

    def wait_for_seq(self, seq: int, timeout: float = WAIT_S) -> int:
        """Wait until the engine's event seq reaches `seq`; returns the seq it reached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.snapshot().seq
            if current >= seq:
                return current
            time.sleep(0.05)
        raise AssertionError(f"engine event seq did not reach {seq} within {timeout} s")

    # --- pointing others at it ----------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment variables for a subprocess using console settings (merge into `subprocess_env`)."""
        return {
            "ENGINE_COMMAND_ENDPOINT": self.command_endpoint,
            "ENGINE_EVENT_ENDPOINT": self.event_endpoint,
            "ENGINE_CURVE_KEYS_DIR": str(self.keys_dir),
            "ENGINE_INSTRUMENTS_FILE": str(self.instruments_file),
        }

    def apply_settings(self, settings: Any, *, timeout_ms: int = 2000, retries: int = 15) -> None:
        """Point this test's Django settings (pytest-django's `settings` fixture) at this engine."""
        settings.ENGINE_COMMAND_ENDPOINT = self.command_endpoint
        settings.ENGINE_EVENT_ENDPOINT = self.event_endpoint
        settings.ENGINE_CURVE_KEYS_DIR = self.keys_dir
        settings.ENGINE_INSTRUMENTS_FILE = self.instruments_file
        settings.ENGINE_TIMEOUT_MS = timeout_ms
        settings.ENGINE_COMMAND_RETRIES = retries


@pytest.fixture
def engine_process():
    """A factory: `engine_process(**EngineProcess options)` starts an engine and waits until it answers; every
    engine made is killed and its directory removed at the end of the test. `start=False` only writes it."""
    made: list[EngineProcess] = []

    def make(*, start: bool = True, **options: Any) -> EngineProcess:
        engine = EngineProcess(**options)
        made.append(engine)
        if start:
            engine.start()
        return engine

    try:
        yield make
    finally:
        for engine in made:
            engine.cleanup()
