"""The engine's venue links never let a full ZeroMQ send queue raise through the engine thread."""

from __future__ import annotations

from collections import deque

import zmq

from engine.enums import OrderType, Side, TimeInForce
from engine.instruments import InstrumentRegistry
from engine.protocol import Codec, VenueCommandRejected, VenuePlaceOrder
from engine.server.venue_link import _ZmqGateway


def test_an_order_the_full_send_queue_cannot_take_comes_back_as_a_reasoned_rejection():
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.sndhwm = 1
    socket.connect("tcp://127.0.0.1:1")  # no peer: the queue never drains
    inbox: deque = deque()
    gateway = _ZmqGateway(socket, Codec(InstrumentRegistry.from_toml()), inbox)
    order = VenuePlaceOrder(
        client_order_id="c1",
        account="A",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=1,
        quantity=1,
    )

    try:
        for _ in range(3):
            gateway.send(order)
    finally:
        context.destroy(linger=0)

    assert inbox, "a full queue must be reported, not swallowed"
    refusal = inbox[0]
    assert type(refusal) is VenueCommandRejected
    assert (refusal.command, refusal.code, refusal.client_order_id) == ("VenuePlaceOrder", "GATEWAY_BACKPRESSURE", "c1")
