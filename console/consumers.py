"""The console's websocket: authenticated, one connection per page; this issue carries heartbeats only."""

from __future__ import annotations

import json
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from console.realtime import BROADCAST_GROUP
from console.roles import roles_of

# Close codes in the private-use range (4000-4999) that browsers see when the handshake is refused.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_ROLE = 4403
MAX_FRAME_BYTES = 8192


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Closing before accept() refuses the handshake (HTTP 403): an anonymous client never gets a socket.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.roles = [role.value for role in await database_sync_to_async(roles_of)(user)]
        if not self.roles:
            await self.close(code=CLOSE_NO_ROLE)
            return
        await self.channel_layer.group_add(BROADCAST_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "roles": self.roles, "ts": time.time()})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(BROADCAST_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # Parse here rather than in the base class so a malformed frame gets a reasoned error, not a dropped socket.
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self._error("BAD_FRAME", "frames must be JSON text of at most 8 KiB")
            return
        try:
            content = json.loads(text_data)
        except json.JSONDecodeError as exc:
            await self._error("MALFORMED", f"not JSON: {exc.msg}")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("MALFORMED", "a message is a JSON object with a string 'type'")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if content["type"] == "ping":
            await self.send_json({"type": "pong", "id": content.get("id"), "ts": time.time()})
            return
        await self._error("UNKNOWN_MESSAGE_TYPE", f"unknown message type {content['type'][:64]!r}")

    async def console_heartbeat(self, event) -> None:
        await self.send_json({"type": "heartbeat", "ts": event["ts"], "source": event["source"]})

    async def _error(self, code: str, reason: str) -> None:
        await self.send_json({"type": "error", "code": code, "reason": reason})
