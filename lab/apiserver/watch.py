"""Watch requests: chunked NDJSON events from a resourceVersion, 410 Expired when it is too old."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from .state import State, Target
from .status import bad_request
from .store import Watcher, matches

WATCH_DEFAULT_SECONDS = 1800.0


async def watch(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    label_selector = request.query.get("labelSelector", "")
    field_selector = request.query.get("fieldSelector", "")
    if target.name:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
    timeout = float(request.query.get("timeoutSeconds") or WATCH_DEFAULT_SECONDS)
    since = request.query.get("resourceVersion", "")
    watcher = Watcher(target.resource, target.namespace)
    # Register before reading the backlog: nothing awaits in between, so no event is lost or doubled.
    state.store.watchers.add(watcher)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        if since in ("", "0"):
            backlog = [
                {"type": "ADDED", "object": o} for o in state.store.list(target.resource, target.namespace)
            ]
        else:
            if not since.isdigit():
                raise bad_request(f'invalid resource version "{since}"')
            backlog = state.store.events_since(target.resource, target.namespace, int(since))
        await response.prepare(request)
        if backlog is None:
            expired = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({state.store.history_start - 1})",
                "reason": "Expired",
                "code": 410,
            }
            await response.write(json.dumps({"type": "ERROR", "object": expired}).encode() + b"\n")
            return response
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for event in backlog:
                    await _write_event(response, event, label_selector, field_selector)
                while True:
                    event = await watcher.queue.get()
                    await _write_event(response, event, label_selector, field_selector)
        return response
    finally:
        state.store.watchers.discard(watcher)


async def _write_event(
    response: web.StreamResponse, event: dict[str, Any], label_selector: str, field_selector: str
) -> None:
    if matches(event["object"], label_selector, field_selector):
        await response.write(json.dumps(event).encode() + b"\n")
