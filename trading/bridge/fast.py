"""A faster decoder for the two market-data events that make up most of the stream (the bridge's main thread).

`Codec.decode_event` validates every message twice over: msgspec checks the `Meta` constraints in C while decoding,
then each struct's generated `__post_init__` checks the same constraints again in Python (so that messages built
in-process are valid too), then `Codec.check` looks the symbol up. For a frame that arrived over the wire the
second pass adds nothing, and for a TopOfBookChanged it is most of the cost. These mirror structs carry exactly the
protocol's field types and constraints (engine/protocol.py: Symbol, Ticks, Lots, Nanos, Side...), so msgspec's C
checks are the whole structural validation; `decode_fast` adds the version and symbol checks the Codec makes.

Anything else, including any frame these structs refuse, goes through the full `Codec.decode_event`: a malformed
tick still becomes a dead letter with the Codec's own reason code, and a field the engine appends later merely
sends that event type down the slow path until these mirrors learn it.
"""

from __future__ import annotations

import msgspec

from engine.protocol import (
    PROTOCOL_VERSION,
    Count,
    Id,
    Lots,
    Nanos,
    PositiveLots,
    PositiveTicks,
    Seq,
    Side,
    Symbol,
    Ticks,
)


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type", gc=False):
    """gc=False: these hold only scalars and each other, so they can never be in a reference cycle; untracked by the
    garbage collector, a batch of them decodes about three times faster."""

    v: int = PROTOCOL_VERSION


class FastTopOfBook(_Base, frozen=True, kw_only=True, tag="TopOfBookChanged"):
    symbol: Symbol
    bid_price: Ticks
    bid_size: Lots
    ask_price: Ticks
    ask_size: Lots
    venue_ts: Nanos = 0


class FastMarketTrade(_Base, frozen=True, kw_only=True, tag="MarketTrade"):
    symbol: Symbol
    price: PositiveTicks
    quantity: PositiveLots
    aggressor: Side
    venue_ts: Nanos = 0
    trade_id: Count = 0


class FastEnvelope(_Base, frozen=True, kw_only=True, tag="EventEnvelope"):
    engine_id: Id
    seq: Seq
    ts: Nanos
    event: FastTopOfBook | FastMarketTrade

    # It also stands for its own `writer.Pending` (seq, env, dead): the loop holds hundreds of thousands of these a
    # second, and a wrapper object each would be a third of the cost of holding them.
    dead = None

    @property
    def env(self) -> FastEnvelope:
        return self


_DECODER = msgspec.msgpack.Decoder(FastEnvelope)
_MANY = msgspec.msgpack.Decoder(list[FastEnvelope])


def decode_fast(data: bytes, symbols: frozenset[str] | set[str]) -> FastEnvelope | None:
    """The envelope if `data` is a valid TopOfBookChanged or MarketTrade frame on a known symbol, else None (the
    caller then uses the full Codec, which also explains what is wrong)."""
    try:
        env = _DECODER.decode(data)
    except (msgspec.MsgspecError, ValueError):
        return None
    if env.v != PROTOCOL_VERSION or env.event.symbol not in symbols:
        return None
    return env


def decode_many_fast(
    frames: list[bytes], symbols: frozenset[str] | set[str], engine_id: str
) -> list[FastEnvelope] | None:
    """All of `frames` in one call, when every one is a valid market-data frame of `engine_id` on a known symbol;
    else None. The frames are MessagePack maps, so their concatenation behind an array header is one MessagePack
    array: one trip into msgspec's C decoder instead of one per frame."""
    count = len(frames)
    header = b"\xdd" + count.to_bytes(4, "big")  # array 32
    try:
        envs = _MANY.decode(header + b"".join(frames))
    except (msgspec.MsgspecError, ValueError):
        return None
    return envs if valid_run(envs, symbols, engine_id) else None


def valid_run(envs: list[FastEnvelope], symbols: frozenset[str] | set[str], engine_id: str) -> bool:
    """The checks the Codec makes beyond msgspec's: protocol version, this engine, a known symbol."""
    for env in envs:
        if env.v != PROTOCOL_VERSION or env.engine_id != engine_id or env.event.symbol not in symbols:
            return False
    return True
