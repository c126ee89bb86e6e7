"""Names and senders for the channel-layer groups that the console's websockets listen to."""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

BROADCAST_GROUP = "console.broadcast"


def broadcast_heartbeat(*, source: str) -> dict:
    message = {"type": "console.heartbeat", "ts": time.time(), "source": source}
    async_to_sync(get_channel_layer().group_send)(BROADCAST_GROUP, message)
    return message
