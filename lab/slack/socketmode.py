"""Socket Mode stand-in: a WebSocket endpoint that says hello, pushes envelopes and collects acks.

Point the Web API stand-in's `socket_url` at `url` so apps.connections.open hands it out. Used by
tests/bot/test_slack_socket.py and `netcheck demo`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web


class SocketModeStandIn:
    def __init__(self) -> None:
        self.url = ""
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._ack_events: dict[str, asyncio.Event] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self.url

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws = ws
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "standin"}})
        self.connected.set()
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            envelope_id = data.get("envelope_id")
            if envelope_id:
                self.acks[envelope_id] = data
                self._ack_events.setdefault(envelope_id, asyncio.Event()).set()
        return ws

    async def push(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = True) -> str:
        """Send an envelope (`slash_commands`, `interactive`, `events_api`); returns its envelope_id."""
        if self._ws is None:
            raise RuntimeError("no Socket Mode client connected")
        envelope_id = str(uuid.uuid4())
        self._ack_events.setdefault(envelope_id, asyncio.Event())
        await self._ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
            }
        )
        return envelope_id

    async def ack(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            await self._ack_events.setdefault(envelope_id, asyncio.Event()).wait()
        return self.acks[envelope_id]
