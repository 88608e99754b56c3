"""`ShellStreams` (resident.py) of a pod exec WebSocket running `sh` with stdin.

Used by `KubePodExec` (pod.py). The Kubernetes exec protocol (channel.k8s.io, v4) multiplexes the
streams in binary frames whose first byte is the channel: 0 stdin (client to server), 1 stdout, 2
stderr, 3 the Status object once the command ended (docs/client-libraries.md#exec-with-stdin).
A reader task files each frame under its channel as it arrives, so stdout and stderr are read
independently, as from a pipe each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from probes.transports.resident import Stream

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
STATUS_CHANNEL = 3
_CHANNELS: dict[Stream, int] = {"stdout": STDOUT_CHANNEL, "stderr": STDERR_CHANNEL}


class ExecStreams:
    """The streams of one exec WebSocket (aiohttp's `ClientWebSocketResponse`, already upgraded)."""

    def __init__(self, ws: Any, exit_status_from: Any) -> None:
        """`exit_status_from(status_text) -> int` reads the Status channel (pod.py's parser)."""
        self._ws = ws
        self._exit_status_from = exit_status_from
        self._received: dict[int, bytearray] = {STDOUT_CHANNEL: bytearray(), STDERR_CHANNEL: bytearray(),
                                                STATUS_CHANNEL: bytearray()}
        self._searched = {STDOUT_CHANNEL: 0, STDERR_CHANNEL: 0}
        """Where the next search for a separator may begin: what lies before was searched."""
        self._arrived = asyncio.Condition()
        self._ended = False
        self._reader = asyncio.get_running_loop().create_task(self._receive())

    @property
    def running(self) -> bool:
        return not self._ended and not self._ws.closed

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                data = message.data
                if isinstance(data, str):
                    data = data.encode()
                if isinstance(data, bytes) and len(data) > 1 and data[0] in self._received:
                    async with self._arrived:
                        self._received[data[0]] += data[1:]
                        self._arrived.notify_all()
        finally:
            self._ended = True
            async with self._arrived:
                self._arrived.notify_all()

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(bytes([STDIN_CHANNEL]) + data)

    async def read_until(self, stream: Stream, separator: bytes) -> bytes:
        channel = _CHANNELS[stream]
        received = self._received[channel]
        async with self._arrived:
            while True:
                found = received.find(separator, self._searched[channel])
                if found >= 0:
                    end = found + len(separator)
                    data = bytes(received[:end])
                    del received[:end]
                    self._searched[channel] = 0
                    return data
                # a separator split across frames begins in the last len(separator) - 1 bytes
                self._searched[channel] = max(0, len(received) - len(separator) + 1)
                if self._ended:
                    partial = bytes(received)
                    received.clear()
                    raise asyncio.IncompleteReadError(partial, None)
                await self._arrived.wait()

    async def ended_status(self) -> int:
        await asyncio.shield(self._reader)
        return int(self._exit_status_from(self._received[STATUS_CHANNEL].decode(errors="replace")))

    async def close(self) -> None:
        await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
