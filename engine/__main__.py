"""`python -m engine [--config config/engine.toml]`: the trading engine as a process (main thread = engine thread).

Start-up: validate the config file (a bad key exits with status 2 and one line naming it), recover the engine from
its journal (a fresh journal starts a fresh engine), put the configured limits in force (idempotent command ids,
so a restart does not re-journal them), open the venue session (reconciling working orders), bind the CURVE
command ROUTER and event PUB, and run the loop until SIGTERM or SIGINT; then sync and close the journal and the
sockets.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import msgspec
import zmq

from engine.clock import WallClock
from engine.core import Engine, replay_events_from_journal
from engine.errors import EngineError
from engine.journal import FsyncPolicy
from engine.server.config import DEFAULT_CONFIG_PATH, ServerConfig, ServerConfigError, VenueKind, load_config
from engine.server.loop import EngineLoop, JournalSyncer
from engine.server.venue_link import FixVenueLink, InProcessVenueLink, ZmqVenueLink
from engine.server.zmq_io import CommandSocket, EventPublisher

log = logging.getLogger("engine.server")


def build(config: ServerConfig, context: zmq.Context) -> tuple[EngineLoop, object]:
    """Recover the engine, open the venue session and bind the sockets; returns the loop and the authenticator."""
    from engine.server import curve

    clock = WallClock()
    auth = None
    keys_dir = None
    if config.security.curve:
        keys_dir = config.keys_dir
        auth = curve.start_authenticator(context, keys_dir)
    if config.venue.kind is VenueKind.INPROCESS:
        venue = InProcessVenueLink(config, clock)
    elif config.venue.kind is VenueKind.ZMQ:
        venue = ZmqVenueLink(config, context)
    else:
        venue = FixVenueLink(config, context)

    config.journal_path.parent.mkdir(parents=True, exist_ok=True)
    config.snapshot_dir.mkdir(parents=True, exist_ok=True)
    # BATCH is done by a syncer thread (see engine/server/loop.py), so the journal itself never fsyncs inline.
    policy = FsyncPolicy.NEVER if config.fsync is FsyncPolicy.BATCH else config.fsync
    engine = Engine.recover(
        config.engine,
        clock,
        config.instruments,
        venue.gateway,
        config.journal_path,
        snapshot_dir=config.snapshot_dir,
        policy=policy,
    )
    # Replay must choose mass cancel vs per-order cancels exactly as the live run did, or the ids issued after a
    # halt (and so the events) differ from the ones published.
    mass_cancel = getattr(venue.gateway, "supports_mass_cancel", False)
    engine.replay_source = lambda from_seq: replay_events_from_journal(
        config.engine, config.instruments, config.journal_path, from_seq, supports_mass_cancel=mass_cancel
    )
    log.info(
        "recovered: journal seq %d, event seq %d, %d working orders, state %s",
        engine.journal_seq,
        engine.seq,
        len(engine.oms.working_orders()),
        engine.state_hash(),
    )
    commands = CommandSocket(context, config.endpoints.commands, keys_dir=keys_dir)
    events = EventPublisher(context, config.endpoints.events, keys_dir=keys_dir)
    loop = EngineLoop(
        engine,
        commands=commands,
        events=events,
        venue=venue,
        clock=clock,
        tick_ns=config.timers.tick_ms * 1_000_000,
        busy_poll_ns=config.timers.busy_poll_us * 1000,
    )
    for cmd in config.limits:
        reply = engine.handle_command(cmd)
        if type(reply).__name__ == "CommandRejected":
            raise ServerConfigError("limits", f"{reply.code}: {reply.reason}")
    venue.wake = loop.wake  # QuickFIX's thread (FIX link) wakes the engine thread's poll
    venue.start(engine)
    loop.turn()
    if config.fsync is FsyncPolicy.BATCH:
        loop.syncer = JournalSyncer(engine.journal, config.journal.batch_ms / 1000)
        loop.syncer.start()
    return loop, auth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("ENGINE_CONFIG", str(DEFAULT_CONFIG_PATH)))
    parser.add_argument(
        "--venue",
        choices=[k.value for k in VenueKind],
        default=os.environ.get("ENGINE_VENUE") or None,
        help="override [venue] kind (e.g. fix to trade with `python -m engine.venue`)",
    )
    parser.add_argument(
        "--var-dir",
        default=None,
        help="put the engine's state (journal, snapshots, CURVE keys, FIX store) under VAR_DIR/engine instead of "
        "the config file's paths, so one checkout can run several isolated systems (bin/run passes its VAR_DIR)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(Path(args.config))
        if args.venue:
            venue = msgspec.structs.replace(config.venue, kind=VenueKind(args.venue))
            config = msgspec.structs.replace(config, venue=venue)
        if args.var_dir:
            state = Path(args.var_dir).resolve() / "engine"
            config = msgspec.structs.replace(
                config,
                keys_dir=state / "keys",
                journal_path=state / "journal.bin",
                snapshot_dir=state / "snapshots",
                fix_var_dir=state / "fix",
            )
    except ServerConfigError as exc:
        print(f"engine configuration error: {exc.reason}", file=sys.stderr)
        return 2
    context = zmq.Context()
    loop = auth = None
    try:
        try:
            loop, auth = build(config, context)
        except ServerConfigError as exc:
            print(f"engine configuration error: {exc.reason}", file=sys.stderr)
            return 2
        except EngineError as exc:
            print(f"engine start-up error: {exc}", file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
        signal.signal(signal.SIGINT, lambda *_: loop.stop())
        log.info(
            "engine %s ready: commands %s, events %s, venue %s, curve %s",
            config.engine.engine_id,
            config.endpoints.commands,
            config.endpoints.events,
            config.venue.kind.value,
            "on" if config.security.curve else "OFF",
        )
        loop.run()
        log.info("stopping: journal seq %d, event seq %d", loop.engine.journal_seq, loop.engine.seq)
        return 0
    finally:
        if loop is not None:
            if loop.syncer is not None:
                loop.syncer.stop()
            loop.close()
        if auth is not None:
            auth.stop()
        context.destroy(linger=1000)


if __name__ == "__main__":
    sys.exit(main())
