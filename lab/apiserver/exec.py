"""Pod exec over the Kubernetes WebSocket channel protocol (v5/v4): runs the command for real in the
node's debug-pod namespace (argv = exec_prefix + [pod_netns] + command) and streams its output."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
STATUS_CHANNEL = 3
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
EXEC_MAX_SECONDS = 600.0
READ_CHUNK_BYTES = 65536


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def start_failure(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


async def _pump(stream: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int) -> None:
    while chunk := await stream.read(READ_CHUNK_BYTES):
        await ws.send_bytes(bytes([channel]) + chunk)


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends; returns when it closes the connection."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


async def run_exec(request: web.Request, argv: list[str], command: list[str]) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True)
    await ws.prepare(request)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        await ws.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(start_failure(str(exc))).encode())
        await ws.close()
        return ws
    client = asyncio.create_task(_drain_client(ws))
    assert process.stdout is not None and process.stderr is not None
    output = asyncio.gather(
        _pump(process.stdout, ws, STDOUT_CHANNEL), _pump(process.stderr, ws, STDERR_CHANNEL), process.wait()
    )
    try:
        done, _ = await asyncio.wait(
            {output, client}, timeout=EXEC_MAX_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if output in done:
            status = exit_status(process.returncode or 0, command)
            await ws.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(status).encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        output.cancel()
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await output
        with contextlib.suppress(asyncio.CancelledError):
            await client
        await ws.close()
    return ws
