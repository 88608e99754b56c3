"""Socket Mode stand-in: a WebSocket endpoint that says hello, pushes envelopes and collects acks.

Point the Web API stand-in's `socket_url` at `url` so apps.connections.open hands it out (with a
ticket per call, as Slack does). Like Slack, it keeps every open connection of the app and delivers an
envelope to one of them (the newest); `open_connections`, `max_open` and `hellos` let a test see how
many replicas hold a connection. Used by tests/bot/test_slack_socket.py,
tests/bot/test_serve_socket_replicas.py and `netcheck demo`.
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
        self._open: list[web.WebSocketResponse] = []
        self.max_open = 0
        """The most connections open at the same time since start."""
        self.hellos: list[str] = []
        """The ticket of every connection that got its hello, in order."""
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

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def stop(self) -> None:
        for ws in list(self._open):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._open.append(ws)
        self.max_open = max(self.max_open, len(self._open))
        self._ws = ws
        try:
            await ws.send_json({"type": "hello", "num_connections": len(self._open),
                                "debug_info": {"host": "standin"}})
            self.hellos.append(request.query.get("ticket", ""))
            self.connected.set()
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                envelope_id = data.get("envelope_id")
                if envelope_id:
                    self.acks[envelope_id] = data
                    self._ack_events.setdefault(envelope_id, asyncio.Event()).set()
        finally:
            self._open.remove(ws)
            self._ws = self._open[-1] if self._open else None
            if not self._open:
                self.connected.clear()
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
