"""Fault switches of the API stand-in, through the official kubernetes client over TLS.

Covers: a node's pods held Pending (containers waiting with the given reason, like a kubelet that
cannot start them) and released again; unknown node and bad bodies refused; break_watches ends an
open node watch at once, the next watch requests fail with the given 5xx Status, then watches work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.lab.test_apiserver_support import CONTROL_TOKEN, Lab, running_lab

WAIT_S = 5.0


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with running_lab(tmp_path) as running:
        core = client.CoreV1Api(running.api_client())
        await asyncio.to_thread(core.create_namespace, {"metadata": {"name": "netcheck"}})
        yield running


def _pod(node: str, name: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "debug", "image": "netshoot"}]}}


async def _status_after_start(core: client.CoreV1Api, name: str) -> client.V1PodStatus:
    await asyncio.sleep(1.0)  # the stand-in's kubelet answers after 0.3 s
    return (await asyncio.to_thread(core.read_namespaced_pod, name, "netcheck")).status


async def test_held_pods_stay_pending_with_the_reason(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    held = await lab.control("PUT", "/lab/v1/nodes/worker2/pods", {"hold": "ContainerCreating"})
    assert held == {"node": "worker2", "hold": "ContainerCreating"}
    await asyncio.to_thread(core.create_namespaced_pod, "netcheck", _pod("worker2", "held"))
    await asyncio.to_thread(core.create_namespaced_pod, "netcheck", _pod("master", "free"))
    status = await _status_after_start(core, "held")
    assert status.phase == "Pending"
    assert status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    assert (await _status_after_start(core, "free")).phase == "Running"  # other nodes unaffected

    await lab.control("PUT", "/lab/v1/nodes/worker2/pods", {"hold": None})
    await asyncio.to_thread(core.create_namespaced_pod, "netcheck", _pod("worker2", "later"))
    assert (await _status_after_start(core, "later")).phase == "Running"


async def test_hold_pods_refuses_unknown_node_and_bad_body(lab: Lab) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body, code in (("/lab/v1/nodes/nope/pods", {"hold": "X"}, 404),
                                 ("/lab/v1/nodes/worker2/pods", {"hold": 3}, 400),
                                 ("/lab/v1/watches/break", {"resource": "nodes", "status": 404}, 400)):
            method = "POST" if "watches" in path else "PUT"
            async with session.request(method, lab.url + path, json=body, ssl=False,
                                       headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}) as resp:
                assert resp.status == code, (path, await resp.text())


def _watch_events(lab: Lab, resource_version: str) -> list[str]:
    core = client.CoreV1Api(lab.api_client())
    return [e["type"] for e in watch.Watch().stream(core.list_node, resource_version=resource_version,
                                                      timeout_seconds=30)]


async def test_break_watches_cuts_open_watches_and_fails_the_next(lab: Lab) -> None:
    core = client.CoreV1Api(lab.api_client())
    version = (await asyncio.to_thread(core.list_node)).metadata.resource_version
    started = time.monotonic()
    watching = asyncio.create_task(asyncio.to_thread(_watch_events, lab, version))
    await asyncio.sleep(0.3)
    answer = await lab.control("POST", "/lab/v1/watches/break",
                               {"resource": "nodes", "fail_next": 2, "status": 500})
    assert answer == {"resource": "nodes", "broken": 1, "fail_next": 2}
    assert await asyncio.wait_for(watching, WAIT_S) == []
    assert time.monotonic() - started < WAIT_S  # ended by the break, not by its 30 s timeout
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            await asyncio.to_thread(_watch_events, lab, version)
        assert failed.value.status == 500 and "InternalError" in failed.value.body
    await lab.control("PATCH", "/lab/v1/nodes/master/annotations", {"netcheck/x": "y"})

    def first_event() -> str:
        w = watch.Watch()
        for event in w.stream(core.list_node, resource_version=version, timeout_seconds=30):
            w.stop()
            return event["type"]
        return ""

    assert await asyncio.to_thread(first_event) == "MODIFIED"  # the third watch works again
