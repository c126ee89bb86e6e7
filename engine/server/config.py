"""The engine process's configuration file: load, validate, build (main thread, at start-up only).

One TOML file names everything `python -m engine` needs: the instruments file, the `EngineConfig` (strategies,
triggers and the core's knobs), the risk limits to put in force, the ZeroMQ endpoints, CURVE keys, the journal and
the venue connection. Every problem fails start-up with a `ServerConfigError` whose message begins with the dotted
name of the bad key (`venue.flow[0].symbol: unknown symbol 'BTCUSD'`), so an operator can fix the file without
reading code. `engine.config.EngineConfig` is built, not copied: its own validation runs too, and its errors are
re-labelled with the key they came from.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from engine.config import EngineConfig, ScopeTriggers, StrategyConfig
from engine.enums import TradingState
from engine.errors import EngineError
from engine.instruments import InstrumentRegistry
from engine.journal import FsyncPolicy
from engine.protocol import Codec, RiskLimits, Scope, SetLimits
from engine.strategies import registry
from engine.trading_state import TriggerConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH = ROOT / "config" / "engine.toml"
CONFIG_ERROR = "ENGINE_CONFIG_INVALID"
# Port 1-65535: ZeroMQ would silently bind 99999 as 34463.
_PORT = r"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})"
_ENDPOINT = re.compile(rf"^(tcp://[^\s:]+:{_PORT}|ipc://\S+|inproc://\S+)$")


class ServerConfigError(EngineError):
    """A bad engine config file. `key` is the dotted name of the offending value ("" for the file itself)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(CONFIG_ERROR, f"{key}: {reason}" if key else reason)
        self.key = key


class VenueKind(StrEnum):
    INPROCESS = "inprocess"  # the simulated venue on the engine thread, with background flow
    ZMQ = "zmq"  # a venue process speaking engine.protocol over ZeroMQ (DEALER orders, SUB market data)
    FIX = "fix"  # a FIX 4.4 venue through the FIX gateway (engine.fix), market data over ZeroMQ


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Endpoints(_Section, frozen=True, kw_only=True):
    commands: str = "tcp://127.0.0.1:7101"  # ROUTER: console commands, one reply each
    events: str = "tcp://127.0.0.1:7102"  # PUB: sequenced events, conflated topics


class Security(_Section, frozen=True, kw_only=True):
    curve: bool = True
    # engine.key_secret (the engine's pair) and console.key (the only public key allowed in) live here;
    # `manage.py engine_keys` writes them.
    keys_dir: str = "var/engine/keys"


class JournalSection(_Section, frozen=True, kw_only=True):
    path: str = "var/engine/journal.bin"
    snapshot_dir: str = "var/engine/snapshots"
    fsync: Annotated[str, Meta(pattern="^(every_record|batch|never)$")] = "batch"
    # batch: a syncer thread fsyncs the journal this often when it grew (off the engine thread, see loop.py).
    batch_ms: Annotated[int, Meta(ge=1, le=10_000)] = 2


class FlowSection(_Section, frozen=True, kw_only=True):
    """Background flow of the in-process venue for one symbol (engine.venue.FlowConfig, prices in ticks)."""

    symbol: str
    initial_price: Annotated[int, Meta(ge=1)]
    intensity: Annotated[float, Meta(gt=0)] = 50.0
    market_share: Annotated[float, Meta(ge=0, le=1)] = 0.1
    cancel_rate: Annotated[float, Meta(ge=0)] = 0.2
    volatility: Annotated[float, Meta(ge=0)] = 0.0001
    depth_ticks: Annotated[float, Meta(ge=0)] = 10.0
    size_mean: Annotated[float, Meta(ge=1)] = 5.0
    size_max: Annotated[int, Meta(ge=1)] = 100
    prime_levels: Annotated[int, Meta(ge=0)] = 10
    seed: int = 1


class VenueSection(_Section, frozen=True, kw_only=True):
    kind: VenueKind = VenueKind.INPROCESS
    flow: tuple[FlowSection, ...] = ()
    # zmq / fix: where the venue process publishes market data (PUB) and, for zmq, takes orders (ROUTER).
    market_data: str = "tcp://127.0.0.1:7201"
    orders: str = "tcp://127.0.0.1:7202"
    # fix: the venue's snapshot ROUTER (VenueRequestSnapshot -> BookSnapshot), the FIX session
    # (engine.fix.settings.FixSessionConfig, role "initiator") and where QuickFIX keeps its store and logs.
    snapshot: str = "tcp://127.0.0.1:9880"
    fix: dict[str, Any] = {}
    fix_var_dir: str = "var/engine/fix"


class LimitSection(_Section, frozen=True, kw_only=True):
    """Limits put in force at start-up, as a SetLimits command the engine journals like any other."""

    scope: str  # "firm", "strategy:<id>", "instrument:<symbol>"
    limits: dict[str, Any] = {}


class TriggerSection(_Section, frozen=True, kw_only=True):
    scope: str
    triggers: dict[str, Any] = {}


class Timers(_Section, frozen=True, kw_only=True):
    tick_ms: Annotated[int, Meta(ge=1, le=60_000)] = 50  # engine timer (triggers, heartbeat, requotes)
    # Busy-poll this long after the last input before blocking in poll (0 = always block). A thread that sleeps
    # between ticks wakes with a cold CPU: on the shared dev machine an idle-then-woken engine handled a tick in
    # ~190 us instead of ~30 us. Spinning trades a core for latency; give it one when you set this.
    busy_poll_us: Annotated[int, Meta(ge=0, le=60_000_000)] = 0


class _File(_Section, frozen=True, kw_only=True):
    instruments_file: str = "config/instruments.toml"
    engine: dict[str, Any] = {}
    strategies: tuple[dict[str, Any], ...] = ()
    limits: tuple[LimitSection, ...] = ()
    triggers: tuple[TriggerSection, ...] = ()
    endpoints: Endpoints = Endpoints()
    security: Security = Security()
    journal: JournalSection = JournalSection()
    venue: VenueSection = VenueSection()
    timers: Timers = Timers()


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The validated file: paths resolved against the file's directory's parent (the repo root by default)."""

    path: Path
    instruments: InstrumentRegistry
    engine: EngineConfig
    limits: tuple[SetLimits, ...]
    endpoints: Endpoints
    security: Security
    keys_dir: Path
    journal: JournalSection
    journal_path: Path
    snapshot_dir: Path
    fsync: FsyncPolicy
    venue: VenueSection
    timers: Timers
    fix_var_dir: Path


def load_config(path: Path | str = DEFAULT_CONFIG_PATH, *, base_dir: Path | None = None) -> ServerConfig:
    """Read and validate `path`. Relative paths inside are relative to `base_dir` (default: the repo root)."""
    path = Path(path)
    base = ROOT if base_dir is None else Path(base_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServerConfigError("", f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServerConfigError("", f"{path} is not valid TOML: {exc}") from None
    return build_config(raw, path=path, base_dir=base)


def build_config(raw: dict[str, Any], *, path: Path, base_dir: Path) -> ServerConfig:
    doc = _convert(raw, _File, "")

    def resolve(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base_dir / p

    try:
        instruments = InstrumentRegistry.from_toml(resolve(doc.instruments_file))
    except (OSError, EngineError, ValueError) as exc:
        raise ServerConfigError("instruments_file", str(exc)) from None
    symbols = set(instruments.symbols)

    strategies = tuple(_strategy(i, s, symbols) for i, s in enumerate(doc.strategies))
    strategy_ids = [s.strategy_id for s in strategies]
    for i, sid in enumerate(strategy_ids):
        if sid in strategy_ids[:i]:
            raise ServerConfigError(f"strategies[{i}].strategy_id", f"{sid!r} configured twice")
    triggers = tuple(
        ScopeTriggers(
            scope=_scope(f"triggers[{i}].scope", t.scope, symbols, strategy_ids),
            triggers=_convert(_trigger_values(t.triggers), TriggerConfig, f"triggers[{i}].triggers"),
        )
        for i, t in enumerate(doc.triggers)
    )
    for key in ("strategies", "triggers"):
        if key in doc.engine:
            raise ServerConfigError(f"engine.{key}", f"put {key} in their own [[{key}]] tables")
    engine = _convert({**doc.engine}, EngineConfig, "engine")
    try:
        engine = msgspec.structs.replace(engine, strategies=strategies, triggers=triggers)
    except (msgspec.ValidationError, EngineError, ValueError) as exc:
        raise ServerConfigError("engine", str(exc)) from None

    codec = Codec(instruments)
    limits = tuple(_limits(i, entry, codec, symbols, strategy_ids) for i, entry in enumerate(doc.limits))

    for key, value in (("endpoints.commands", doc.endpoints.commands), ("endpoints.events", doc.endpoints.events)):
        _endpoint(key, value)
    if doc.endpoints.commands == doc.endpoints.events:
        raise ServerConfigError("endpoints.events", "must differ from endpoints.commands")
    venue = doc.venue
    for i, flow in enumerate(venue.flow):
        if flow.symbol not in symbols:
            raise ServerConfigError(f"venue.flow[{i}].symbol", f"unknown symbol {flow.symbol!r}")
        if flow.size_mean > flow.size_max:
            raise ServerConfigError(f"venue.flow[{i}].size_mean", "must not exceed size_max")
    if venue.kind is not VenueKind.INPROCESS:
        _endpoint("venue.market_data", venue.market_data)
        if venue.kind is VenueKind.ZMQ:
            _endpoint("venue.orders", venue.orders)
        else:
            _endpoint("venue.snapshot", venue.snapshot)
            fix_session_config(venue)  # validated now, so a bad [venue.fix] key stops start-up by name
    fsync = {"every_record": FsyncPolicy.EVERY_RECORD, "batch": FsyncPolicy.BATCH, "never": FsyncPolicy.NEVER}
    return ServerConfig(
        path=path,
        instruments=instruments,
        engine=engine,
        limits=limits,
        endpoints=doc.endpoints,
        security=doc.security,
        keys_dir=resolve(doc.security.keys_dir),
        journal=doc.journal,
        journal_path=resolve(doc.journal.path),
        snapshot_dir=resolve(doc.journal.snapshot_dir),
        fsync=fsync[doc.journal.fsync],
        venue=venue,
        timers=doc.timers,
        fix_var_dir=resolve(venue.fix_var_dir),
    )


def fix_session_config(venue: VenueSection) -> Any:
    """The FIX gateway's session config from [venue.fix] (engine.fix is imported only when it is used)."""
    try:
        from engine.fix.settings import FixSessionConfig
    except ImportError as exc:
        raise ServerConfigError("venue.kind", f"the FIX gateway (engine.fix) is not available: {exc}") from None
    config = _convert({"role": "initiator", **venue.fix}, FixSessionConfig, "venue.fix")
    if config.role != "initiator":
        raise ServerConfigError("venue.fix.role", "the engine's FIX session is an initiator")
    return config


# --- helpers ----------------------------------------------------------------------------------------------------


def _convert(value: Any, kind: type, key: str) -> Any:
    """msgspec.convert with the error re-labelled: msgspec says `at $.venue.kind`, we say `venue.kind:`."""
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = ""
        match = re.search(r" - at `\$(.*)`$", message)
        if match:
            message = message[: match.start()]
            where = match.group(1).lstrip(".")
        unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
        if unknown:
            where = f"{where}.{unknown.group(1)}" if where else unknown.group(1)
            message = "unknown key"
        full = ".".join(p for p in (key, where) if p).replace(".[", "[")
        raise ServerConfigError(full or "(file)", message) from None
    except EngineError as exc:  # a struct's own __post_init__ (TriggerConfig, EngineConfig's nested structs)
        raise ServerConfigError(key or "(file)", exc.reason) from None


def _wire_values(values: dict[str, Any]) -> dict[str, Any]:
    """TOML floats become Decimals through their text, so 0.05 means exactly 0.05 (the protocol refuses floats)."""
    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in values.items()}


def _trigger_values(values: dict[str, Any]) -> dict[str, Any]:
    """Actions by name ("REDUCING", "HALTED") as well as by number."""
    out = _wire_values(values)
    for k, v in out.items():
        if k.endswith("_action") and isinstance(v, str) and v.upper() in TradingState.__members__:
            out[k] = TradingState[v.upper()]
    return out


def _strategy(i: int, raw: dict[str, Any], symbols: set[str]) -> StrategyConfig:
    key = f"strategies[{i}]"
    raw = dict(raw)
    raw["params"] = _wire_values(dict(raw.get("params", {})))
    sc = _convert(raw, StrategyConfig, key)
    if sc.symbol not in symbols:
        raise ServerConfigError(f"{key}.symbol", f"unknown symbol {sc.symbol!r}")
    try:
        registry.create(sc.name, sc.strategy_id, sc.symbol, dict(sc.params))
    except EngineError as exc:
        field = "name" if exc.code == registry.STRATEGY_UNKNOWN else "params"
        raise ServerConfigError(f"{key}.{field}", exc.reason) from None
    return sc


def _scope(key: str, text: str, symbols: set[str], strategy_ids: list[str]) -> Scope:
    kind, _, name = text.partition(":")
    if kind == "firm" and not name:
        return Scope.firm()
    if kind == "strategy" and name:
        if name not in strategy_ids:
            raise ServerConfigError(key, f"no strategy {name!r} is configured")
        return Scope.strategy(name)
    if kind == "instrument" and name:
        if name not in symbols:
            raise ServerConfigError(key, f"unknown symbol {name!r}")
        return Scope.instrument(name)
    raise ServerConfigError(key, f"{text!r} is not firm, strategy:<id> or instrument:<symbol>")


def _limits(i: int, entry: LimitSection, codec: Codec, symbols: set[str], strategy_ids: list[str]) -> SetLimits:
    key = f"limits[{i}]"
    scope = _scope(f"{key}.scope", entry.scope, symbols, strategy_ids)
    limits = _convert(_decimals(entry.limits), RiskLimits, f"{key}.limits")
    # A deterministic command id: a restart re-sends the same SetLimits and the engine's idempotency answers it
    # from the reply cache, so the journal gets one record per distinct limit set, never one per restart.
    digest = hashlib.sha256(msgspec.msgpack.encode([entry.scope, msgspec.to_builtins(limits)])).hexdigest()[:16]
    cmd = SetLimits(command_id=f"config-limits-{digest}", operator="engine-config", ts=0, scope=scope, limits=limits)
    try:
        codec.check(cmd)
    except EngineError as exc:
        raise ServerConfigError(f"{key}.limits", exc.reason) from None
    return cmd


_DECIMAL_LIMITS = {
    "max_order_quantity",
    "max_order_notional",
    "price_collar_pct",
    "max_position",
    "max_gross_exposure",
    "max_net_exposure",
    "max_daily_loss",
}


def _decimals(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        out[k] = v
        if k in _DECIMAL_LIMITS and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            try:
                out[k] = Decimal(str(v))
            except InvalidOperation:
                pass  # left as text: RiskLimits refuses it and names the key
    return out


def _endpoint(key: str, value: str) -> None:
    if not _ENDPOINT.match(value):
        raise ServerConfigError(key, f"{value!r} is not a tcp://host:port, ipc:// or inproc:// endpoint")
