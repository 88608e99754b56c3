"""Watch requests: chunked NDJSON events from a resourceVersion, 410 Expired when it is too old.

Fault switches (control API): `break_watches` ends every open watch of a resource at once (a
`None` in the watcher's queue), and the next N watch requests of it fail with the given status, as
while an API server restarts behind a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from .state import State, Target
from .status import ApiError, bad_request
from .store import Watcher, matches

WATCH_DEFAULT_SECONDS = 1800.0


async def watch(request: web.Request, state: State, target: Target) -> web.StreamResponse:
    label_selector = request.query.get("labelSelector", "")
    field_selector = request.query.get("fieldSelector", "")
    if target.name:
        field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
    _fail_if_broken(state, target)
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
                while (event := await watcher.queue.get()) is not None:  # None: broken off
                    await _write_event(response, event, label_selector, field_selector)
        return response
    finally:
        state.store.watchers.discard(watcher)


def break_watches(state: State, plural: str, fail_next: int, status: int) -> int:
    """End every open watch of `plural` now; the next `fail_next` watch requests get `status`."""
    broken = 0
    for watcher in list(state.store.watchers):
        if watcher.resource.plural == plural:
            watcher.queue.put_nowait(None)
            broken += 1
    if fail_next > 0:
        state.failing_watches[plural] = (fail_next, status)
    return broken


def _fail_if_broken(state: State, target: Target) -> None:
    left, status = state.failing_watches.get(target.resource.plural, (0, 0))
    if left <= 0:
        return
    if left == 1:
        state.failing_watches.pop(target.resource.plural)
    else:
        state.failing_watches[target.resource.plural] = (left - 1, status)
    reason = {503: "ServiceUnavailable", 504: "Timeout"}.get(status, "InternalError")
    raise ApiError(status, reason, f'an error on the server ("{reason}") has prevented the request '
                   "from succeeding")


async def _write_event(
    response: web.StreamResponse, event: dict[str, Any], label_selector: str, field_selector: str
) -> None:
    if matches(event["object"], label_selector, field_selector):
        await response.write(json.dumps(event).encode() + b"\n")
