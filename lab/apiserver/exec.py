"""Pod exec over the Kubernetes WebSocket channel protocol (v5/v4): runs the command for real in the
node's debug-pod namespace (argv = exec_prefix + [pod_netns] + command) and streams its output.

With `stdin=true` the client's channel-0 frames are the command's stdin; v5's close frame (255, 0)
closes it, as a client's EOF does (docs/client-libraries.md#exec-with-stdin)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
STATUS_CHANNEL = 3
CLOSE_CHANNEL = 255
"""v5.channel.k8s.io: a frame (255, N) closes stream N."""
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
EXEC_MAX_SECONDS = 600.0
READ_CHUNK_BYTES = 65536
RUNNING = web.AppKey("exec_processes", set)
"""The app's exec'd processes still running: ended at shutdown (`stop_running`), so none outlives the
stand-in (a resident shell's does, until its client closes the WebSocket)."""
STOP_WAIT_SECONDS = 5.0


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


async def _from_client(ws: web.WebSocketResponse, stdin: asyncio.StreamWriter | None) -> None:
    """The client's frames: channel 0 into the command's stdin (when it has one), (255, 0) closes
    that; returns when the client closes the connection."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return
        # text frames too: the official Python client's write_stdin sends a str as one, and the API
        # server reads either kind the same way
        data = message.data.encode() if message.type == WSMsgType.TEXT else message.data \
            if message.type == WSMsgType.BINARY else b""
        if stdin is None or not data:
            continue
        if data[0] == STDIN_CHANNEL and not stdin.is_closing():
            stdin.write(data[1:])
            with contextlib.suppress(ConnectionError):
                await stdin.drain()
        elif data[:2] == bytes([CLOSE_CHANNEL, STDIN_CHANNEL]):
            stdin.close()


def wants_stdin(request: web.Request) -> bool:
    return request.query.get("stdin", "").lower() in ("true", "1")


async def run_exec(request: web.Request, argv: list[str], command: list[str]) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True)
    await ws.prepare(request)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if wants_stdin(request) else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        await ws.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(start_failure(str(exc))).encode())
        await ws.close()
        return ws
    running: set[asyncio.subprocess.Process] = request.app.get(RUNNING, set())
    running.add(process)
    client = asyncio.create_task(_from_client(ws, process.stdin))
    assert process.stdout is not None and process.stderr is not None
    output = asyncio.gather(
        _pump(process.stdout, ws, STDOUT_CHANNEL), _pump(process.stderr, ws, STDERR_CHANNEL), process.wait()
    )
    try:
        done, _ = await asyncio.wait(
            {output, client}, timeout=EXEC_MAX_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if output in done:
            returncode = process.returncode or 0
            # killed by signal N (asyncio: -N): the runtime reports 128 + N, as a shell does
            status = exit_status(128 - returncode if returncode < 0 else returncode, command)
            await ws.send_bytes(bytes([STATUS_CHANNEL]) + json.dumps(status).encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        running.discard(process)  # reaped (cancelled before that, `stop_running` reaps it)
        output.cancel()
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await output
        with contextlib.suppress(asyncio.CancelledError):
            await client
        await ws.close()
    return ws


async def stop_running(app: web.Application) -> None:
    """Kill every exec'd process still running and reap it (the stand-in shuts down)."""
    running: set[asyncio.subprocess.Process] = app.get(RUNNING, set())
    for process in list(running):
        if process.returncode is None:
            process.kill()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STOP_WAIT_SECONDS):
            await asyncio.gather(*(process.wait() for process in running))
