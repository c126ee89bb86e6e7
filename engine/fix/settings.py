"""QuickFIX session settings built from a small typed config (startup thread: read once, then immutable).

QuickFIX reads its settings from an INI-style file. Rather than ship hand-written files, each process renders one
from a `FixSessionConfig` into its var dir (where the FileStore keeps sequence numbers and messages and the
FileLog its traces) and loads it: the file on disk is exactly what QuickFIX ran with, which is what one wants to
read after an incident. The FIX 4.4 data dictionary is the one the quickfix package installs
(`<venv>/share/quickfix/FIX44.xml`), found at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import quickfix as fix
from msgspec import Meta

from engine.errors import EngineError

CompId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Port = Annotated[int, Meta(ge=1, le=65535)]


class FixConfigError(EngineError):
    """A FIX setting is missing or invalid; the reason names it."""


def data_dictionary_path() -> Path:
    """FIX44.xml as installed by the quickfix package (the venv's share/quickfix), or FixConfigError."""
    candidates = [Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"]
    candidates += [Path(p).parent.parent.parent.parent / "share" / "quickfix" / "FIX44.xml" for p in sys.path if p]
    for path in candidates:
        if path.is_file():
            return path
    raise FixConfigError("FIX_NO_DATA_DICTIONARY", f"FIX44.xml not found (looked in {candidates[0].parent})")


class FixSessionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One side's sessions. An initiator has one counterparty (`target_comp_ids[0]`) at `host:port`; an acceptor
    listens on `port` for every comp id in `target_comp_ids`.

    Sequence numbers persist in the FileStore and are never reset on logon, logout or disconnect: a restart on
    either side resumes the session and the gap is filled by resend requests. `reset_on_logon` exists for
    counterparties that insist on starting each day at 1.
    """

    role: Literal["initiator", "acceptor"]
    sender_comp_id: CompId
    target_comp_ids: Annotated[tuple[CompId, ...], Meta(min_length=1)]
    port: Port
    host: str = "127.0.0.1"
    heartbeat_s: Annotated[int, Meta(ge=1, le=3600)] = 5
    reconnect_s: Annotated[int, Meta(ge=1, le=3600)] = 1
    # Initiator only: while the venue stays unreachable, pause reconnecting for 1, 2, 4 ... up to this many seconds
    # between windows of attempts (0 = QuickFIX's fixed `reconnect_s` forever). Reset by every logon.
    reconnect_backoff_max_s: Annotated[int, Meta(ge=0, le=3600)] = 30
    logon_timeout_s: Annotated[int, Meta(ge=1, le=600)] = 10
    reset_on_logon: bool = False
    file_log: bool = True  # every message in <var>/log: the audit trail of the session, at a cost per message


def render(config: FixSessionConfig, var_dir: Path | str) -> str:
    """The settings file text for `config`, with store and log under `var_dir`."""
    var = Path(var_dir).resolve()
    reset = "Y" if config.reset_on_logon else "N"
    lines = [
        "[DEFAULT]",
        f"ConnectionType={config.role}",
        "BeginString=FIX.4.4",
        f"SenderCompID={config.sender_comp_id}",
        "NonStopSession=Y",
        f"HeartBtInt={config.heartbeat_s}",
        f"ReconnectInterval={config.reconnect_s}",
        f"LogonTimeout={config.logon_timeout_s}",
        f"FileStorePath={var / 'store'}",
        f"FileLogPath={var / 'log'}",
        "UseDataDictionary=Y",
        f"DataDictionary={data_dictionary_path()}",
        f"ResetOnLogon={reset}",
        "ResetOnLogout=N",
        "ResetOnDisconnect=N",
        "PersistMessages=Y",
        "RefreshOnLogon=Y",
        "SocketNodelay=Y",
        "TimeStampPrecision=9",
        "ValidateFieldsOutOfOrder=N",
    ]
    if config.role == "acceptor":
        lines += [f"SocketAcceptPort={config.port}", "SocketReuseAddress=Y"]
    else:
        lines += [f"SocketConnectHost={config.host}", f"SocketConnectPort={config.port}"]
    for target in config.target_comp_ids if config.role == "acceptor" else config.target_comp_ids[:1]:
        lines += ["", "[SESSION]", f"TargetCompID={target}"]
    return "\n".join(lines) + "\n"


def session_settings(config: FixSessionConfig, var_dir: Path | str) -> fix.SessionSettings:
    """Write `<var_dir>/quickfix.cfg` for `config` and load it."""
    var = Path(var_dir)
    (var / "store").mkdir(parents=True, exist_ok=True)
    (var / "log").mkdir(parents=True, exist_ok=True)
    path = var / "quickfix.cfg"
    path.write_text(render(config, var))
    try:
        return fix.SessionSettings(str(path))
    except fix.ConfigError as exc:
        raise FixConfigError("FIX_BAD_SETTINGS", f"{path}: {exc}") from None


def session_ids(config: FixSessionConfig) -> list[fix.SessionID]:
    targets = config.target_comp_ids if config.role == "acceptor" else config.target_comp_ids[:1]
    return [fix.SessionID("FIX.4.4", config.sender_comp_id, target) for target in targets]
